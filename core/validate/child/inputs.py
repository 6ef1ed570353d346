"""Validation inputs: the user's face images or deterministic synthetic faces, and the stress
inputs every pass adds (numpy only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ...errors import FsprecError
from ..options import IMAGE_SUFFIXES
from ..result import STRESS_INPUTS


def synthetic_faces(batch: int, height: int, width: int, channels: int = 3,
                    seed: int = 0) -> np.ndarray:
    """Smooth, face-sized structure in [0, 1]: a skin-toned oval with eyes, a mouth and soft
    lighting, varied per image. Deterministic for a seed; never plain noise, never all zeros."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype("float32")
    y, x = y / max(height - 1, 1) * 2 - 1, x / max(width - 1, 1) * 2 - 1
    images = np.empty((batch, height, width, channels), "float32")
    for index in range(batch):
        cx, cy = rng.uniform(-0.1, 0.1, 2)
        rx, ry = rng.uniform(0.55, 0.7), rng.uniform(0.7, 0.85)
        skin = rng.uniform([0.55, 0.35, 0.25], [0.9, 0.7, 0.55])
        background = rng.uniform(0.05, 0.5, 3)
        face = np.clip(1 - ((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2, 0, 1) ** 0.3
        light = 0.75 + 0.25 * (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1))
        features = np.zeros_like(x)
        for ex in (-0.3, 0.3):  # eyes
            features += np.exp(-(((x - cx - ex) / 0.1) ** 2 + ((y - cy + 0.2) / 0.06) ** 2))
        features += np.exp(-(((x - cx) / 0.25) ** 2 + ((y - cy - 0.4) / 0.05) ** 2))  # mouth
        features += 0.5 * np.exp(-(((x - cx) / 0.06) ** 2 + ((y - cy) / 0.2) ** 2))  # nose
        for channel in range(channels):
            colour = skin[channel % 3] * light * (1 - 0.6 * features)
            images[index, ..., channel] = face * colour + (1 - face) * background[channel % 3]
    return np.clip(images, 0.0, 1.0)


def load_images(folder: str | Path, batch: int, height: int, width: int,
                channels: int = 3) -> np.ndarray:
    """Up to ``batch`` images from a folder (sorted; repeated if fewer), resized, in [0, 1]."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FsprecError(f"The image folder {folder} does not exist.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FsprecError(f"No PNG or JPG images in {folder}.")
    images = []
    for path in files[:batch]:
        try:
            with Image.open(path) as image:
                image = image.convert("RGB").resize((width, height), Image.BILINEAR)
                images.append(np.asarray(image, "float32") / 255.0)
        except (OSError, UnidentifiedImageError) as err:
            raise FsprecError(f"{path.name} is not a readable image: {err}") from err
    stack = np.stack([images[i % len(images)] for i in range(batch)])
    if channels != 3:
        stack = np.repeat(stack.mean(axis=-1, keepdims=True), channels, axis=-1)
    return stack


def stress_inputs(height: int, width: int, channels: int = 3) -> np.ndarray:
    """One image per :data:`~..result.STRESS_INPUTS` entry, in that order: a black frame (a
    fade, a masked area), constant mid-grey, saturated white, and a face at 2% contrast."""
    face = synthetic_faces(1, height, width, channels, seed=99)[0]
    images = {"black": np.zeros_like(face), "mid-grey": np.full_like(face, 0.5),
              "white": np.ones_like(face), "low contrast": 0.5 + 0.02 * (face - face.mean())}
    return np.stack([images[name] for name in STRESS_INPUTS]).astype("float32")

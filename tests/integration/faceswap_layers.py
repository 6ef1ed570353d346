"""Each fsprec compat class against Faceswap's own; run in the Faceswap venv, in a Faceswap tree.

``python faceswap_layers.py REPORT.json`` with the current directory a Faceswap tree and
``fsprec`` importable. Every constructor option Faceswap's plugins use, on random inputs, in
float32 and mixed_float16: both layers get the same random weights; the report lists, per case,
the relative L2 error of fsprec's output against Faceswap's (float64 arithmetic), the output
dtypes, whether weight names and shapes agree, and the config keys only one side writes.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.getcwd())

import keras
import numpy as np

import lib.model.initializers as fs_init
import lib.model.layers as fs_layers
import lib.model.normalization as fs_norm
from fsprec.core.keras import compat

RNG = np.random.default_rng(0)
IMAGE = (RNG.standard_normal((2, 8, 8, 64)) * 3).astype("float32")
ODD = IMAGE[:, :7, :7]
FLAT = IMAGE[:, 0, 0]
STYLE = [IMAGE, (RNG.standard_normal((2, 1, 1, 64)) + 1).astype("float32"),
         RNG.standard_normal((2, 1, 1, 64)).astype("float32")]

# (class, options, input): every form Faceswap's plugins and blocks construct.
CASES = [
    ("PixelShuffler", {}, IMAGE),  # Original, Dfaker, Lightweight ... upscale blocks
    ("PixelShuffler", {"size": 2}, IMAGE),  # Phaze-A upscale_hybrid / subpixel (scale_factor)
    ("PixelShuffler", {"size": (2, 2), "data_format": "channels_first"},
     IMAGE.transpose(0, 3, 1, 2)),
    ("ReflectionPadding2D", {"stride": 2, "kernel_size": 5}, IMAGE),  # Conv2DBlock, reflect
    ("ReflectionPadding2D", {"stride": 2, "kernel_size": 5}, ODD),
    ("ReflectionPadding2D", {"stride": 1, "kernel_size": 3}, IMAGE),  # ResidualBlock, reflect
    ("ReflectionPadding2D", {"stride": 1, "kernel_size": 4}, ODD),
    ("KResizeImages", {"size": 2, "interpolation": "nearest"}, IMAGE),  # Phaze-A resize_images
    ("KResizeImages", {"size": 2, "interpolation": "bilinear"}, IMAGE),  # UpscaleResizeImages
    ("KResizeImages", {"size": 4, "interpolation": "bilinear"}, IMAGE),
    ("Swish", {}, IMAGE), ("Swish", {"beta": 1.5}, IMAGE),
    ("QuickGELU", {}, IMAGE),  # CLIP
    ("L2Normalize", {"axis": -1}, IMAGE), ("L2Normalize", {"axis": 1}, FLAT),
    ("GlobalMinPooling2D", {}, IMAGE), ("GlobalStdDevPooling2D", {}, IMAGE),
    ("ScalarOp", {"operation": "multiply", "value": 127.5}, IMAGE),  # EfficientNet (upgraded)
    ("ScalarOp", {"operation": "truediv", "value": 127.5}, IMAGE),
    ("ScalarOp", {"operation": "add", "value": -1.0}, IMAGE),
    ("ScalarOp", {"operation": "subtract", "value": 0.5}, IMAGE),
    ("InstanceNormalization", {}, IMAGE),  # Phaze-A bottleneck/decoder, Conv2DBlock "instance"
    ("InstanceNormalization", {}, FLAT),
    ("GroupNormalization", {}, IMAGE),  # Phaze-A dec_norm "group"
    ("RMSNormalization", {}, IMAGE),  # Phaze-A bottleneck_norm / dec_norm "rms"
    ("RMSNormalization", {}, FLAT * 1e-3),
    ("RMSNormalization", {"partial": 0.5, "bias": True}, FLAT),
    ("AdaInstanceNormalization", {}, STYLE),  # Phaze-A G-Block (built with dtype="float32")
]
POLICIES = ("float32", "mixed_float16")


def relative_l2(got: np.ndarray, want: np.ndarray) -> float:
    want64 = np.asarray(want, np.float64)
    norm = np.linalg.norm(want64)
    diff = np.linalg.norm(np.asarray(got, np.float64) - want64)
    return float(diff / norm) if norm else float(diff)


def run_case(name: str, options: dict, inputs, policy: str) -> dict:
    theirs = getattr(fs_layers, name, None) or getattr(fs_norm, name)
    ours = compat.custom_objects()[name]
    built = []
    for cls in (theirs, ours):
        layer = cls(dtype=policy, **options)
        layer(inputs)
        built.append(layer)
    weights = [RNG.standard_normal(w.shape).astype("float32") for w in built[0].weights]
    for layer in built:
        layer.set_weights(weights)
    want, got = (keras.ops.convert_to_numpy(layer(inputs)) for layer in built)
    return {"class": name, "options": options, "policy": policy,
            "error": relative_l2(got, want), "dtype": str(got.dtype),
            "faceswap_dtype": str(want.dtype),
            "weights_match": [(w.name, tuple(w.shape)) for w in built[0].weights]
            == [(w.name, tuple(w.shape)) for w in built[1].weights],
            "extra_config_keys": sorted(set(built[1].get_config()) - set(built[0].get_config())),
            "missing_config_keys": sorted(set(built[0].get_config())
                                          - set(built[1].get_config()))}


# Initializers (they only matter when a model is built, not when one is loaded): seeded kernels.
INITIALIZER_CASES = [
    ("ConvolutionAware", lambda m: m.ConvolutionAware(seed=3), (3, 3, 4, 8)),
    ("ConvolutionAware", lambda m: m.ConvolutionAware(seed=3), (5, 5, 64, 128)),
    ("ICNR", lambda m: m.ICNR(initializer=keras.initializers.HeUniform(seed=1)),
     (3, 3, 64, 256)),
    ("ICNR", lambda m: m.ICNR(initializer=m.ConvolutionAware(seed=2)), (3, 3, 32, 128)),
]


def initializer_row(name: str, make, shape: tuple[int, ...]) -> dict:
    want, got = (keras.ops.convert_to_numpy(make(module)(shape))
                 for module in (fs_init, compat))
    return {"class": name, "shape": list(shape), "identical": want.tobytes() == got.tobytes()}


def main() -> None:
    rows = [run_case(name, options, inputs, policy)
            for policy in POLICIES for name, options, inputs in CASES]
    kernels = [initializer_row(*case) for case in INITIALIZER_CASES]
    Path(sys.argv[1]).write_text(json.dumps({"backend": keras.backend.backend(),
                                             "keras": keras.__version__, "rows": rows,
                                             "initializers": kernels}))


if __name__ == "__main__":
    main()

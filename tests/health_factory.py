"""Model histories for the health tests: snapshots, backups and archives written from a real
Faceswap fixture, with NaN / Inf / float16-range weights planted in known layers (h5py)."""
from __future__ import annotations

import json
import shutil
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

from conftest import copy_tree, fixture_path
from fsprec.core.modelfile import ModelFolder, open_model
from fsprec.core.weights import WEIGHTS_MEMBER

SOURCE = "fs3/original-mixed-trained"
KERNEL_NAN = "encoder/conv_128_0_conv2d"  # a gzip-chunked kernel (h5py read path)
BIAS_INF = "decoder_b/upscale_64_1_conv2d_conv2d"  # a contiguous bias (raw read path)
BACKUP_NAN = "decoder_a/upscale_128_0_conv2d_conv2d"
OVERFLOW = "encoder/dense"  # mixed_float16: weights above 65504
UNDERFLOW = "decoder_a/face_out_a_0_conv2d"  # mixed_float16: many weights below 6e-8


def _dataset_path(model: ModelFolder, layer: str, contiguous: bool | None = None) -> str:
    weights = [w for w in model.weights.weights if w.layer == layer]
    if contiguous is not None:
        weights = [w for w in weights if (w.offset is not None) == contiguous] or weights
    return weights[0].h5path


def plant(model: ModelFolder, layer: str, values: np.ndarray | float, count: int | None = None,
          contiguous: bool | None = None) -> None:
    """Overwrite the first ``count`` values (all when None) of one of ``layer``'s weights in
    ``model``'s file (``.keras`` or ``.keras.bk``), keeping every other member as it was."""
    h5path = _dataset_path(model, layer, contiguous)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / WEIGHTS_MEMBER
        with zipfile.ZipFile(model.model_file) as zin:
            members = [(info, zin.read(info)) for info in zin.infolist()]
        weights.write_bytes(dict((i.filename, d) for i, d in members)[WEIGHTS_MEMBER])
        with h5py.File(weights, "r+") as h5:
            data = h5[h5path][()]
            flat = data.reshape(-1)
            flat[:count if count is not None else flat.size] = values
            h5[h5path][...] = data
        new = weights.read_bytes()
        with zipfile.ZipFile(model.model_file, "w") as zout:
            for info, data in members:
                zout.writestr(info, new if info.filename == WEIGHTS_MEMBER else data)


def set_iterations(state_file: Path, iterations: int) -> None:
    """Give a state file another iteration count (as an older save would have)."""
    state = json.loads(state_file.read_text())
    state["iterations"] = iterations
    state_file.write_text(json.dumps(state, indent=2))


def copy_version(model_dir: Path, dest: Path, iterations: int) -> Path:
    """A Faceswap-style copy of the live files (what a snapshot or an archive holds)."""
    dest.mkdir()
    for path in model_dir.iterdir():
        if path.name.startswith("original") and not path.name.endswith(".bk"):
            if path.is_dir() and path.name == "original_logs":
                shutil.copytree(path, dest / path.name)
            elif path.is_file():
                shutil.copyfile(path, dest / path.name)
    set_iterations(dest / "original_state.json", iterations)
    return dest


@dataclass
class History:
    """A model folder with its versions (ids: live, backup, snapshot-10, snapshot-5,
    archive-20260101_120000)."""

    model_dir: Path
    snapshot_clean: Path
    snapshot_at_risk: Path
    archive: Path


def make_history(root: Path, live_damaged: bool = True) -> History:
    """Live (12 iterations; damaged: NaN + Inf), backup (11; NaN), snapshot at 10 iterations
    (float16 overflow), snapshot at 5 (clean), an archive at 3 (clean)."""
    model_dir = copy_tree(fixture_path(SOURCE), root / "original")
    for extra in ("SKELETON.json", "reference.json", "reference.npz"):
        (model_dir / extra).unlink()
    clean = copy_version(model_dir, root / "original_snapshot_5_iters", 5)
    risky = copy_version(model_dir, root / "original_snapshot_10_iters", 10)
    plant(open_model(risky), OVERFLOW, 70000.0, count=7)
    plant(open_model(risky), UNDERFLOW, 1e-9, count=200)
    archive = copy_version(model_dir, model_dir / "original_archived_20260101_120000", 3)
    live = open_model(model_dir)
    shutil.copyfile(live.model_file, model_dir / "original.keras.bk")
    shutil.copyfile(live.state_file, model_dir / "original_state.json.bk")
    set_iterations(model_dir / "original_state.json.bk", 11)
    backup = ModelFolder(model_dir, "original", "keras3", model_dir / "original.keras.bk",
                         live.config, live.metadata)
    plant(backup, BACKUP_NAN, np.nan, count=3)
    if live_damaged:
        plant(live, KERNEL_NAN, np.nan, count=5, contiguous=False)
        plant(live, BIAS_INF, np.inf, count=2, contiguous=True)
    return History(model_dir, clean, risky, archive)


def write_events(path: Path, steps: list[int], sides: dict[str, list[float]]) -> None:
    """A TensorBoard event file as Faceswap writes it (TF2 scalar tensors, one per tag)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        def record(event: Event) -> None:
            data = event.SerializeToString()
            header = struct.pack("<Q", len(data))
            handle.write(header + struct.pack("<I", masked_crc32c(header)) + data
                         + struct.pack("<I", masked_crc32c(data)))
        record(Event(wall_time=1.0, file_version="brain.Event:2"))
        for index, step in enumerate(steps):
            for tag, values in sides.items():
                event = Event(wall_time=2.0 + index, step=step)
                value = event.summary.value.add(tag=f"batch_{tag}")
                value.tensor.dtype = 1
                value.tensor.float_val.append(values[index])
                record(event)

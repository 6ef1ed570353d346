"""Shared helpers of the Keras engine tests: the shared fixtures, rehydrated full-size models
(made once per test session, deleted at exit) and the parity measure."""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, HAVE_FIXTURES, REPO, needs_fixtures  # noqa: F401 (re-exported)
from fsprec.core.keras.backend import ensure_backend

ensure_backend()

FP32_TOLERANCE = 1e-4  # relative L2, the fixtures' contract for float32 models
FP16_TOLERANCE = 2.0 ** -10  # relative L2 within float16's machine epsilon


def reference_folders() -> list[str]:
    """``fs3/<name>`` and ``fs2/<name>`` of every fixture with Faceswap reference outputs."""
    if not HAVE_FIXTURES:
        return []
    return sorted(f"{p.parent.parent.name}/{p.parent.name}"
                  for kind in ("fs3", "fs2") for p in (FIXTURES / kind).glob("*/reference.npz"))


def reference(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """``reference.json`` and ``reference.npz`` of a fixture folder."""
    folder = FIXTURES / name
    with np.load(folder / "reference.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    return json.loads((folder / "reference.json").read_text()), arrays


def reference_inputs(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``input_0, input_1, ...`` in order."""
    count = sum(1 for key in arrays if key.startswith("input_"))
    return [arrays[f"input_{i}"] for i in range(count)]


def reference_outputs(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``output_0, output_1, ...`` in order."""
    count = sum(1 for key in arrays if key.startswith("output_"))
    return [arrays[f"output_{i}"] for i in range(count)]


def relative_l2(got: np.ndarray, want: np.ndarray) -> float:
    """``|got - want| / |want|`` in float64."""
    want64 = np.asarray(want, np.float64)
    return float(np.linalg.norm(np.asarray(got, np.float64) - want64) / np.linalg.norm(want64))


class Rehydrated:
    """Full-size copies of fixture folders, rebuilt on first use and removed at exit."""

    def __init__(self) -> None:
        self._root: Path | None = None

    def __call__(self, name: str) -> Path:
        if not HAVE_FIXTURES:
            pytest.skip(f"shared Faceswap fixtures not found at {FIXTURES}")
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="fsprec-rehydrated-"))
            atexit.register(shutil.rmtree, self._root, True)
        dest = self._root / name
        if not dest.is_dir():
            subprocess.run([sys.executable, str(FIXTURES / "rehydrate.py"), str(FIXTURES / name),
                            str(dest)], check=True, capture_output=True)
        return dest


rehydrated = Rehydrated()


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder for full-size copies, removed on exit (pytest keeps tmp_path)."""
    with tempfile.TemporaryDirectory(prefix="fsprec-scratch-") as folder:
        yield Path(folder)


def run_torch(script: str, *args: str) -> dict:
    """Run ``script`` in a child on the torch backend; it prints one JSON document."""
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    child = subprocess.run([sys.executable, "-c", script, *args], env=env,
                           capture_output=True, text=True, timeout=600, check=False)
    assert child.returncode == 0, child.stderr[-4000:]
    return json.loads(child.stdout.strip().splitlines()[-1])

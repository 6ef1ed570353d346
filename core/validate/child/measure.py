"""Measurements on Keras models: output parity, speed, device memory, a short training run."""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..result import FLAT_STD, OutputParity, Runtime, StressOutcome


def parity(reference: list[np.ndarray], candidate: list[np.ndarray]) -> list[OutputParity]:
    """Per output, as images in [0, 1]: ``candidate`` against the float32 ``reference``
    (over the values finite in both)."""
    rows = []
    for index, (ref, out) in enumerate(zip(reference, candidate, strict=True)):
        ref64, out64 = ref.astype("float64"), out.astype("float64")
        both = np.isfinite(ref64) & np.isfinite(out64)
        diff = (out64 - ref64)[both]
        mse = float(np.mean(diff ** 2)) if diff.size else 0.0
        std = float(np.std(ref64[both])) if diff.size else 0.0
        rmse = math.sqrt(mse)
        rows.append(OutputParity(
            index=index, shape=list(ref.shape),
            psnr_db=None if mse == 0 else 10 * math.log10(1.0 / mse),
            rmse=rmse, max_abs_err=float(np.max(np.abs(diff))) if diff.size else 0.0,
            std_float32=std, error_to_variation=rmse / std if std >= FLAT_STD else None,
            nonfinite_float32=int(ref.size - np.count_nonzero(np.isfinite(ref))),
            nonfinite_target=int(out.size - np.count_nonzero(np.isfinite(out)))))
    return rows


def stress(names: Sequence[str], reference: list[np.ndarray], candidate: list[np.ndarray]
           ) -> list[StressOutcome]:
    """Non-finite output values per stress image (row ``i`` of every output is ``names[i]``)."""
    def bad(outputs: list[np.ndarray], row: int) -> int:
        return sum(int(o[row].size - np.count_nonzero(np.isfinite(o[row]))) for o in outputs)
    return [StressOutcome(name, bad(reference, row), bad(candidate, row))
            for row, name in enumerate(names)]


def forward(model: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of one compiled inference call, as float32 numpy arrays."""
    import keras

    outputs = model.predict_on_batch(inputs if len(inputs) > 1 else inputs[0])
    return [np.asarray(keras.ops.convert_to_numpy(o)).astype("float32")
            for o in keras.tree.flatten(outputs)]


def throughput(step: Any, batch: int, budget: float = 1.0, minimum: int = 3) -> float:
    """Images per second of ``step()`` (one batch) after a warm-up call."""
    step()
    count, start = 0, time.perf_counter()
    while count < minimum or time.perf_counter() - start < budget:
        step()
        count += 1
    return batch * count / (time.perf_counter() - start)


def runtime() -> Runtime:
    """This Python, the backend, the Keras version and the device Keras computes on."""
    import keras

    info = device_info()
    return Runtime(sys.executable, sys.version.split()[0], info["backend"], keras.__version__,
                   info["kind"], info["name"])


def device_info() -> dict[str, Any]:
    """The backend and the device Keras computes on (GPU name, or CPU)."""
    import keras

    backend = keras.backend.backend()
    name = None
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    elif backend == "torch":
        import torch
        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
    elif backend == "jax":
        import jax
        gpu = [d for d in jax.devices() if d.platform == "gpu"]
        name = gpu[0].device_kind if gpu else None
    return {"backend": backend, "kind": "gpu" if name else "cpu", "name": name or "CPU"}


def reset_peak_memory() -> None:
    """Start a new peak-memory window on the GPU (no-op on the CPU)."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        import torch
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
    elif backend == "tensorflow":
        import tensorflow as tf
        if tf.config.list_physical_devices("GPU"):
            tf.config.experimental.reset_memory_stats("GPU:0")


def peak_memory_mb() -> float | None:
    """Peak device memory since :func:`reset_peak_memory` in MB (None on the CPU)."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        import torch
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 1e6
    elif backend == "tensorflow":
        import tensorflow as tf
        if tf.config.list_physical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 1e6
    elif backend == "jax":
        import jax
        gpu = [d for d in jax.devices() if d.platform == "gpu"]
        if gpu:
            return gpu[0].memory_stats().get("peak_bytes_in_use", 0) / 1e6
    return None



"""Measurements on Keras models: output parity, speed, device memory, a short training run."""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ...layers import MIXED_POLICIES


def parity(reference: list[np.ndarray], candidate: list[np.ndarray]) -> list[dict[str, Any]]:
    """Per output: errors of ``candidate`` against the float32 ``reference``."""
    rows = []
    for index, (ref, out) in enumerate(zip(reference, candidate)):
        ref64, out64 = ref.astype("float64"), out.astype("float64")
        finite = np.isfinite(out64)
        diff = np.where(finite, out64 - ref64, 0.0)
        norm = float(np.linalg.norm(ref64))
        mse = float(np.mean(diff ** 2))
        peak = float(np.max(ref64) - np.min(ref64)) or 1.0
        rows.append({
            "index": index, "shape": list(ref.shape),
            "max_abs_err": float(np.max(np.abs(diff))) if diff.size else 0.0,
            "mean_abs_err": float(np.mean(np.abs(diff))) if diff.size else 0.0,
            "rel_l2": float(np.linalg.norm(diff)) / norm if norm else float(np.linalg.norm(diff)),
            "psnr_db": None if mse == 0 else 10 * math.log10(peak ** 2 / mse),
            "nonfinite_fp32": int(ref.size - np.count_nonzero(np.isfinite(ref))),
            "nonfinite_target": int(out.size - np.count_nonzero(finite)),
        })
    return rows


def outputs_ok(rows: list[dict[str, Any]], tolerance: float) -> bool:
    """True when every output is finite and within ``tolerance`` relative L2 error."""
    return all(r["nonfinite_target"] == 0 and r["rel_l2"] <= tolerance for r in rows)


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


def targets_for(model: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Reconstruction targets: each output learns its side's input, resized to its shape
    (a one-channel output, such as a mask, learns the input's grey level)."""
    import keras

    targets = []
    for index, output in enumerate(keras.tree.flatten(model.outputs)):
        source = inputs[index % len(inputs)]
        height, width, channels = output.shape[1], output.shape[2], output.shape[3]
        resized = np.asarray(keras.ops.convert_to_numpy(
            keras.ops.image.resize(source, (height, width))), "float32")
        if channels != resized.shape[-1]:
            resized = np.repeat(resized.mean(axis=-1, keepdims=True), channels, axis=-1)
        targets.append(np.clip(resized, 0.0, 1.0))
    return targets


def training_run(model: Any, policy: str, inputs: list[np.ndarray], steps: int,
                 on_step: Any = lambda step: None) -> dict[str, Any]:
    """``steps`` Adam steps of the model learning to reconstruct its inputs.

    Under ``mixed_float16`` the optimizer is Faceswap's dynamic loss scaling; a step whose
    gradients are not finite is skipped by it (its scale halves), and counted.
    """
    import keras

    from ...keras.settings import Settings

    optimizer = keras.optimizers.Adam(learning_rate=5e-5)
    if policy == "mixed_float16":
        optimizer = Settings.loss_scale_optimizer(optimizer)
    model.compile(optimizer=optimizer, loss="mse")
    x = inputs if len(inputs) > 1 else inputs[0]
    targets = targets_for(model, inputs)
    y = targets if len(targets) > 1 else targets[0]
    losses, scales, skipped, times = [], [], 0, []
    for step in range(steps):
        before = _scale(optimizer)
        start = time.perf_counter()
        logs = model.train_on_batch(x, y, return_dict=True)
        times.append(time.perf_counter() - start)
        losses.append(float(logs["loss"]))
        after = _scale(optimizer)
        scales.append(after)
        if (before is not None and after is not None and after < before) or \
                not math.isfinite(losses[-1]):
            skipped += 1
        on_step(step + 1)
    steady = times[2:] or times
    batch = inputs[0].shape[0]
    return {"loss": losses, "loss_scale": scales if policy in MIXED_POLICIES else None,
            "skipped_steps": skipped,
            "images_per_s": batch * len(steady) / sum(steady) if sum(steady) else None}


def _scale(optimizer: Any) -> float | None:
    import keras

    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return None
    scale = getattr(optimizer, "dynamic_scale", None)  # created on the first step
    if scale is None:
        return float(optimizer.initial_scale)
    return float(keras.ops.convert_to_numpy(scale))

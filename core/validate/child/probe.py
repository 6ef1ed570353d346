"""Per-layer activation statistics, captured while a model runs (Keras, any backend).

Each layer's ``call`` is wrapped for one forward pass, nested sub-models and shared layers
included, so every layer output is measured where it is produced, in the dtype it is computed
in. float16's limits are in :mod:`..result`: values above 65504 overflow; non-zero values below
2**-14 (~6.1e-5) turn subnormal and below 2**-24 (~6e-8) flush to zero.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..result import FLOAT16_MAX, FLOAT16_MIN_NORMAL, FLOAT16_TINY


@dataclass
class LayerStats:
    """What one layer's outputs looked like over a forward pass."""

    path: str
    class_name: str
    values: int = 0
    max_abs: float = 0.0
    min_abs_nonzero: float = float("inf")
    nonfinite: int = 0
    above_fp16_max: int = 0
    below_fp16_normal: int = 0
    below_fp16_tiny: int = 0
    nonzero: int = 0
    nonfinite_inputs: int = 0

    def add_inputs(self, arrays: list[np.ndarray]) -> None:
        """Count non-finite values arriving at the layer (to tell who introduced them)."""
        for array in arrays:
            if np.issubdtype(array.dtype, np.floating):
                self.nonfinite_inputs += int(array.size - np.count_nonzero(np.isfinite(array)))

    @property
    def introduces_nonfinite(self) -> bool:
        """True when the layer turned finite inputs into non-finite outputs."""
        return self.nonfinite > 0 and self.nonfinite_inputs == 0

    def add(self, array: np.ndarray) -> None:
        """Fold one output array into the statistics."""
        if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
            return
        data = np.abs(array.astype("float32", copy=False))
        finite = np.isfinite(data)
        self.values += data.size
        self.nonfinite += int(data.size - np.count_nonzero(finite))
        data = data[finite]
        if data.size == 0:
            return
        self.max_abs = max(self.max_abs, float(data.max()))
        nonzero = data[data > 0]
        self.nonzero += nonzero.size
        if nonzero.size:
            self.min_abs_nonzero = min(self.min_abs_nonzero, float(nonzero.min()))
        self.above_fp16_max += int(np.count_nonzero(data > FLOAT16_MAX))
        self.below_fp16_normal += int(np.count_nonzero(nonzero < FLOAT16_MIN_NORMAL))
        self.below_fp16_tiny += int(np.count_nonzero(nonzero < FLOAT16_TINY))

    @property
    def overflow(self) -> bool:
        """Values beyond float16's range: inf in a float16 layer."""
        return self.above_fp16_max > 0

    @property
    def underflow_share(self) -> float:
        """The share of non-zero values that flush to zero in float16."""
        return self.below_fp16_tiny / self.nonzero if self.nonzero else 0.0


def walk_layers(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(path, layer)`` for every layer, sub-models' layers included (paths as in core)."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        yield path, layer
        if hasattr(layer, "layers") and layer.layers:
            yield from walk_layers(layer, f"{path}/")


@contextmanager
def recording(model: Any) -> Iterator[dict[str, LayerStats]]:
    """While active, every leaf layer's outputs are folded into the returned statistics."""
    import keras

    stats: dict[str, LayerStats] = {}
    wrapped = []
    for path, layer in walk_layers(model):
        if hasattr(layer, "layers") and layer.layers:
            continue
        record = stats.setdefault(path, LayerStats(path, type(layer).__name__))
        original = layer.call

        def call(*args, __original=original, __record=record, **kwargs):
            __record.add_inputs([np.asarray(keras.ops.convert_to_numpy(t))
                                 for t in keras.tree.flatten((args, kwargs))
                                 if keras.ops.is_tensor(t)])
            outputs = __original(*args, **kwargs)
            for tensor in keras.tree.flatten(outputs):
                __record.add(np.asarray(keras.ops.convert_to_numpy(tensor)))
            return outputs

        layer.call = call
        wrapped.append(layer)
    try:
        yield stats
    finally:
        for layer in wrapped:
            del layer.call


def layer_stats(model: Any, inputs: list[np.ndarray]) -> tuple[dict[str, LayerStats], list]:
    """Run ``model`` once on ``inputs`` (eagerly) and return the statistics and outputs."""
    import keras

    with recording(model) as stats:
        outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return stats, [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(outputs)]

"""Per-layer activation statistics, captured while a model runs (Keras, any backend).

Each layer's ``call`` is wrapped for one forward pass, nested sub-models and shared layers
included, so every layer output is measured where it is produced, in the dtype it is computed
in. float16's limits are in :mod:`..result`: values above 65504 overflow; non-zero values below
2**-14 (~6.1e-5) turn subnormal and below 2**-24 (~6e-8) flush to zero.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
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
    input_shape: list[int] | None = None  # the first floating input's shape, batch included
    max_abs_input: float = 0.0  # the largest finite |value| arriving at the layer

    def add_inputs(self, arrays: list[np.ndarray]) -> None:
        """Count non-finite values arriving at the layer (to tell who introduced them), and
        note the inputs' shape and largest magnitude (what a reduction in it sums)."""
        for array in arrays:
            if not np.issubdtype(array.dtype, np.floating):
                continue
            if self.input_shape is None:
                self.input_shape = list(array.shape)
            finite = np.isfinite(array)
            bad = int(array.size - np.count_nonzero(finite))
            self.nonfinite_inputs += bad
            values = array[finite] if bad else array
            if values.size:
                self.max_abs_input = max(self.max_abs_input, float(values.max()),
                                         -float(values.min()))

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


Hook = Callable[[str, Any, tuple, dict, Any], None]  # path, layer, args, kwargs, outputs


@contextmanager
def _hooked(model: Any, hook: Hook, paths: Collection[str] | None = None) -> Iterator[None]:
    """While active, ``hook`` sees every call of every leaf layer (or of those in ``paths``)."""
    wrapped = []
    for path, layer in walk_layers(model):
        if (hasattr(layer, "layers") and layer.layers) or (paths is not None
                                                          and path not in paths):
            continue
        original = layer.call

        def call(*args, __original=original, __path=path, __layer=layer, **kwargs):
            outputs = __original(*args, **kwargs)
            hook(__path, __layer, args, kwargs, outputs)
            return outputs

        layer.call = call
        wrapped.append(layer)
    try:
        yield
    finally:
        for layer in wrapped:
            del layer.call


def _numpy(tensors: Any) -> list[np.ndarray]:
    import keras

    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(tensors)
            if keras.ops.is_tensor(t)]


@contextmanager
def recording(model: Any) -> Iterator[dict[str, LayerStats]]:
    """While active, every leaf layer's outputs are folded into the returned statistics."""
    stats: dict[str, LayerStats] = {}

    def fold(path: str, layer: Any, args: tuple, kwargs: dict, outputs: Any) -> None:
        record = stats.setdefault(path, LayerStats(path, type(layer).__name__))
        record.add_inputs(_numpy((args, kwargs)))
        for array in _numpy(outputs):
            record.add(array)

    with _hooked(model, fold):
        yield stats


@dataclass
class Call:
    """One call of a layer: its arguments and outputs, as numpy arrays where they were tensors."""

    args: tuple
    kwargs: dict
    outputs: list[np.ndarray]


def layer_calls(model: Any, inputs: list[np.ndarray], paths: Collection[str]
                ) -> dict[str, list[Call]]:
    """Run ``model`` once on ``inputs`` (eagerly) and keep every call of the layers in
    ``paths`` (a shared layer has one call per use)."""
    import keras

    calls: dict[str, list[Call]] = {path: [] for path in paths}

    def keep(path: str, layer: Any, args: tuple, kwargs: dict, outputs: Any) -> None:
        def plain(value: Any) -> Any:
            return np.asarray(keras.ops.convert_to_numpy(value)) \
                if keras.ops.is_tensor(value) else value
        calls[path].append(Call(keras.tree.map_structure(plain, args),
                                keras.tree.map_structure(plain, kwargs), _numpy(outputs)))

    with _hooked(model, keep, set(paths)):
        model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return calls


def layer_stats(model: Any, inputs: list[np.ndarray]) -> tuple[dict[str, LayerStats], list]:
    """Run ``model`` once on ``inputs`` (eagerly) and return the statistics and outputs."""
    import keras

    with recording(model) as stats:
        outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return stats, [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(outputs)]

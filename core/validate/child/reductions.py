"""Which layers sum over many values, and how many, from a config entry and a measured shape.

A float16 sum of ``n`` values of magnitude up to ``m`` can reach ``n * m`` (and a sum of
squares ``n * m**2``); past 65504 it is Inf, and a backend that divides a float16 sum by the
count in float16 also fails once ``n`` alone passes 65504. Whether a layer really sums in
float16 depends on how it computes (``ops.mean`` and ``ops.var`` accumulate in float32 on every
backend, TensorFlow's ``ops.std`` does not) — so a reduction found here is a risk to measure,
not a verdict (see docs/validation.md, "Config risks"). No Keras, no numpy.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..result import FLOAT16_MAX, sig

# Keras ops (functional-model op nodes) that reduce: their module and class names.
OP_MODULE = "keras.src.ops"
REDUCING_OPS = {"Sum": "sum", "Mean": "mean", "Var": "variance", "Std": "standard deviation",
                "Norm": "norm", "Prod": "product", "Logsumexp": "log-sum-exp",
                "Average": "average", "Moments": "mean and variance"}


@dataclass(frozen=True)
class Reduction:
    """What a layer reduces, over how many values of one image (or of the batch)."""

    what: str  # "mean and standard deviation"
    count: int
    per: str = "image"  # "image" | "batch"

    def overflows(self, max_abs: float) -> bool:
        """True when a float16 sum of these values (or of their squares) can pass 65504."""
        return self.count * max(1.0, max_abs * max_abs) > FLOAT16_MAX

    def reason(self, max_abs: float) -> str:
        """The config risk, in words."""
        return (f"{self.what} over {self.count:,} values per {self.per} (|x| up to "
                f"{sig(max_abs)}); float16 sums overflow past 65504")


def _axes(shape: Sequence[int], axis: Any, kept: bool) -> list[int] | None:
    """Non-batch axes reduced: ``axis`` (an int or list) itself, or every axis but it when
    ``kept``; None (every non-batch axis) reduces them all."""
    ndim = len(shape)
    named = [] if axis is None else [a % ndim for a in (axis if isinstance(axis, (list, tuple))
                                                         else [axis])]
    if not all(isinstance(a, int) for a in named):
        return None
    if axis is None:
        return list(range(1, ndim))
    return [a for a in range(1, ndim) if a not in named] if kept else \
        [a for a in named if a != 0]


def _count(shape: Sequence[int], axes: list[int] | None) -> int | None:
    if axes is None or any(not isinstance(shape[a], int) for a in axes):
        return None
    return math.prod(shape[a] for a in axes)


def layer_reduction(class_name: str, config: Mapping[str, Any], shape: Sequence[int],
                    builtin: bool = False) -> Reduction | None:
    """The reduction a layer of ``class_name`` performs on an input of ``shape`` (batch
    first), or None. Faceswap's normalisation layers and Keras' LayerNormalization by their
    rules; any other layer that is not one of Keras' own (``builtin``) and whose config has
    ``axis: null`` or a list of axes is taken to reduce over those axes."""
    axis = config.get("axis", -1)
    if len(shape) < 2:
        return None
    if class_name in ("InstanceNormalization", "AdaInstanceNormalization"):
        count = _count(shape, _axes(shape, axis, kept=True))
        return Reduction("mean and standard deviation", count) if count else None
    if class_name == "GroupNormalization":
        if len(shape) == 2:  # Faceswap normalises a rank 2 input over the whole batch
            return Reduction("mean and variance", math.prod(shape), "batch")
        last = config.get("data_format", "channels_last") == "channels_last"
        channels = shape[-1] if last else shape[1]
        groups = max(int(config.get("group", 32)), 1)
        return Reduction("mean and variance per group",
                         math.prod(shape[2:] if not last else shape[1:-1]) * channels // groups)
    if class_name == "RMSNormalization":
        count = _count(shape, _axes(shape, axis, kept=False))
        partial = config.get("partial", 0.0)
        if count and 0 < partial < 1:
            count = int(count * partial)
        return Reduction("mean of squares", count) if count else None
    if class_name == "L2Normalize":
        count = _count(shape, _axes(shape, axis, kept=False))
        return Reduction("sum of squares", count) if count else None
    if class_name == "GlobalStdDevPooling2D":
        spatial = [1, 2] if config.get("data_format", "channels_last") == "channels_last" \
            else [2, 3]
        return Reduction("standard deviation", math.prod(shape[a] for a in spatial))
    if class_name == "LayerNormalization" or (not builtin and (axis is None
                                                                or isinstance(axis, list))):
        count = _count(shape, _axes(shape, axis, kept=False))
        return Reduction("mean and variance" if class_name == "LayerNormalization"
                         else f"{class_name}'s reduction", count) if count else None
    return None


def op_reduction(entry: Mapping[str, Any]) -> str | None:
    """The risk of a reducing op node in a functional config, in words (None: not one)."""
    module, name = str(entry.get("module", "")), entry.get("class_name", "")
    if not module.startswith(OP_MODULE) or name not in REDUCING_OPS:
        return None
    axis = entry.get("config", {}).get("axis")
    over = "every axis, the batch included" if axis is None else f"axis {axis}"
    return (f"keras.ops {REDUCING_OPS[name]} over {over} (an op node: it computes in its "
            "input's dtype; fsprec measures layers, not ops)")

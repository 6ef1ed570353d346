"""A config risk settled by measurement: the layer alone, in its target dtype, against float32.

The layer of the target model is called on exactly the inputs its float32 twin received in the
float32 run (faces and every stress input), cast to the layer's compute dtype as the mixed model
would hand them over. Its outputs are compared per input image with float32's, so an error that
only the white frame triggers is not averaged away, and a finite but wrong output (``x / Inf``
is 0) counts as much as an Inf.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .probe import Call
from ..result import sig


@dataclass
class LayerCheck:
    fails: bool
    measured: str  # in words, for ConfigRisk.measured


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values.size else 0.0


def _on(label: str) -> str:
    return "on the faces" if label == "faces" else f"on the {label} input"


def check_layer(layer: Any, calls: list[Call], rows: Sequence[str], tolerance: float
                ) -> LayerCheck:
    """Run ``layer`` on each float32 call's inputs; ``rows`` names the batch rows. It fails on
    Inf/NaN that float32 has not, or an RMS error past ``tolerance`` times float32's RMS (the
    error the whole model's outputs may have relative to their variation)."""
    import keras

    dtype = layer.compute_dtype

    def cast(value: Any) -> Any:
        if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
            return keras.ops.cast(value, dtype)
        return value

    worst, worst_label, new_nonfinite, nonfinite_at = 0.0, rows[0], 0, []
    for call in calls:
        got = layer(*keras.tree.map_structure(cast, call.args),
                    **keras.tree.map_structure(cast, call.kwargs))
        target = np.asarray(keras.ops.convert_to_numpy(keras.tree.flatten(got)[0]), "float64")
        reference = call.outputs[0].astype("float64")
        scale = _rms(reference[np.isfinite(reference)])
        split = len(reference) == len(rows)
        for index, label in enumerate(rows if split else ["all"]):
            ref, out = (reference[index], target[index]) if split else (reference, target)
            new = int(np.count_nonzero(np.isfinite(ref) & ~np.isfinite(out)))
            if new:
                new_nonfinite += new
                nonfinite_at.append(label)
            both = np.isfinite(ref) & np.isfinite(out)
            diff = _rms((out - ref)[both])
            denominator = max(_rms(ref[both]), scale)
            error = diff / denominator if denominator else (0.0 if diff == 0 else float("inf"))
            if error > worst:
                worst, worst_label = error, label
    if new_nonfinite:
        where = ", ".join(_on(label) for label in dict.fromkeys(nonfinite_at))
        return LayerCheck(True, f"alone in {dtype}, fed float32's inputs, it gives "
                                f"{new_nonfinite:,} Inf/NaN values that float32 does not ({where})")
    error = f"{sig(100 * worst)}% of float32's RMS {_on(worst_label)}"
    if worst > tolerance:
        return LayerCheck(True, f"alone in {dtype}, fed float32's inputs, its output is off by "
                                f"{error} (at most {sig(100 * tolerance)}% allowed)")
    return LayerCheck(False, f"alone in {dtype}, its largest error is {error}")

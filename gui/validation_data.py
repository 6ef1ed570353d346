"""What the validation plots show, read from a result document (schema ``fsprec.validation/1``).

Plain data, no Qt: the plots in :mod:`fsprec.gui.plots` draw these, and tests check them
against hand-written result documents.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

FLOAT16_MAX = 65504.0
FLOAT16_TINY = 2.0 ** -24  # ~6e-8: smaller non-zero values flush to zero in float16
STATUS_LABELS = {"safe": "Safe", "safe_with_pins": "Safe with pins", "not_safe": "Not safe"}
RISK_LABELS = {"overflow": "overflows float16", "underflow": "underflows float16",
               "nonfinite": "turns finite values into Inf/NaN in float16"}


@dataclass(frozen=True)
class LayerPoint:
    """One measured layer: its float32 output range and its float16 risk."""

    index: int  # position among the measured layers, in model order
    path: str
    class_name: str
    max_abs: float
    min_abs: float | None  # smallest non-zero |x|; None when every value was zero
    risk: str | None
    detail: str

    @property
    def tooltip(self) -> str:
        """What hovering the layer's point says."""
        low = "none (all zero)" if self.min_abs is None else f"{self.min_abs:.3g}"
        lines = [f"{self.path} ({self.class_name})",
                 f"max |x| {self.max_abs:.3g}, min non-zero |x| {low}"]
        if self.risk:
            lines.append(f"Risk: {RISK_LABELS[self.risk]}" + (f" ({self.detail})"
                                                              if self.detail else ""))
        return "\n".join(lines)


@dataclass(frozen=True)
class OutputError:
    """How far one model output moved from float32."""

    label: str
    rel_l2: float
    max_abs_err: float
    nonfinite: int


@dataclass(frozen=True)
class Bars:
    """Paired bars, float32 against the target policy, per group; None where not measured."""

    groups: list[str]
    float32: list[float | None]
    target: list[float | None]
    note: str = ""  # shown instead of bars when nothing was measured


@dataclass(frozen=True)
class Training:
    """The training check's curves (steps count from 1)."""

    steps: list[int]
    loss_float32: list[float]
    loss_target: list[float]
    loss_scale: list[float] | None
    skipped_steps: int


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def layer_points(result: dict[str, Any]) -> list[LayerPoint]:
    """Every layer the pass measured (layers that produced no values are left out)."""
    points: list[LayerPoint] = []
    for row in result["layers"]:
        if not row["values"]:
            continue
        detail = row.get("config_risk") or ""
        if not detail and row.get("risk") == "overflow":
            detail = f"{row['above_fp16_max']:,} values above 65504"
        elif not detail and row.get("risk") == "underflow":
            detail = f"{row['below_fp16_tiny']:,} values below 6e-8"
        elif not detail and row.get("risk") == "nonfinite":
            detail = f"{row['nonfinite_target']:,} non-finite values"
        points.append(LayerPoint(len(points), row["path"], row["class_name"],
                                 float(row["max_abs"]), finite(row["min_abs_nonzero"]),
                                 row.get("risk"), detail))
    return points


def output_errors(result: dict[str, Any]) -> list[OutputError]:
    """Relative L2 and max absolute error per output (over its finite values)."""
    return [OutputError(f"output {row['index']}", finite(row["rel_l2"]) or 0.0,
                        finite(row["max_abs_err"]) or 0.0, int(row["nonfinite_target"]))
            for row in result["outputs"]]


def speed_bars(result: dict[str, Any]) -> Bars:
    """Forward and training throughput (images per second)."""
    speed = result.get("speed")
    if not speed:
        return Bars([], [], [], "Speed was not measured.")
    return Bars(["forward", "training"],
                [finite(speed.get("forward_float32_ips")), finite(speed.get("train_float32_ips"))],
                [finite(speed.get("forward_target_ips")), finite(speed.get("train_target_ips"))])


def memory_bars(result: dict[str, Any]) -> Bars:
    """Peak device memory (MB) of the forward passes, where the backend reports it."""
    speed = result.get("speed") or {}
    fp32, target = (finite(speed.get("peak_memory_float32_mb")),
                    finite(speed.get("peak_memory_target_mb")))
    if fp32 is None and target is None:
        note = ("n/a on CPU" if result["device"]["kind"] == "cpu"
                else "not reported by this backend")
        return Bars([], [], [], note)
    return Bars(["peak memory"], [fp32], [target])


def training_curves(result: dict[str, Any]) -> Training | None:
    """The training check's losses and loss scale; None when it did not run."""
    training = result.get("training")
    if not training:
        return None
    fp32, target = training["float32"], training["target"]
    return Training(list(range(1, len(fp32["loss"]) + 1)),
                    [float(v) for v in fp32["loss"]], [float(v) for v in target["loss"]],
                    [float(v) for v in target["loss_scale"]] if target.get("loss_scale")
                    else None,
                    int(target.get("skipped_steps", 0)))


def run_summary(result: dict[str, Any]) -> str:
    """One line: what was compared, on which device and backend, with which inputs."""
    device, inputs = result["device"], result["inputs"]
    where = device["name"] if device["kind"] == "cpu" else f"GPU {device['name']}"
    training = result.get("training")
    steps = f", {training['steps']} training steps" if training else ", no training check"
    pins = result.get("pins") or []
    kept = f", {len(pins)} layer(s) kept float32" if pins else ""
    return (f"float32 vs {result['policy']}{kept} · {where}, {device['backend']} backend · "
            f"{inputs['source']} inputs, batch {inputs['batch']}{steps} · "
            f"{result.get('seconds', 0):.0f} s")

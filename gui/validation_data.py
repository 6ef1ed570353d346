"""What the validation plots show, read from a :class:`ValidationResult` (whole or partial).

Plain data, no Qt: the plots in :mod:`fsprec.gui.plots` draw these, and tests check them
against hand-made results. float16's limits and the wording come from the result module.
"""
from __future__ import annotations

from dataclasses import dataclass

from fsprec.core.validate.result import (RISK_LABELS, SEVERE_RISKS, UNDERFLOW_SHARE,
                                         ValidationResult, sig)

PENDING = "Not measured yet…"


@dataclass(frozen=True)
class LayerPoint:
    """One measured layer: its output range, its float16 underflow share and its risk."""

    index: int  # position among the measured layers, in model order
    path: str
    class_name: str
    max_abs: float
    min_abs: float | None  # smallest non-zero |x|; None when every value was zero
    underflow_share: float  # of non-zero values, flushed to zero in float16
    subnormal_share: float  # of non-zero values, subnormal or zero in float16
    risk: str | None
    detail: str
    config_risk: str | None = None

    @property
    def severe(self) -> bool:
        return self.risk in SEVERE_RISKS

    @property
    def tooltip(self) -> str:
        """What hovering the layer's point says."""
        low = "none (all zero)" if self.min_abs is None else sig(self.min_abs)
        lines = [f"{self.path} ({self.class_name})",
                 f"max |x| {sig(self.max_abs)}, min non-zero |x| {low}",
                 f"non-zero values flushed to zero in float16: "
                 f"{sig(100 * self.underflow_share)}%, subnormal: "
                 f"{sig(100 * self.subnormal_share)}%"]
        if self.risk:
            lines.append(f"Risk: {RISK_LABELS[self.risk]}" + (f" ({self.detail})"
                                                              if self.detail else ""))
        if self.config_risk:
            lines.append(f"Config: {self.config_risk}")
        return "\n".join(lines)


@dataclass(frozen=True)
class OutputError:
    """How far one model output moved from float32, as an image."""

    label: str
    psnr_db: float | None  # None: identical
    error_to_variation: float | None  # None: the output is flat
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
    scaler: str | None


def layer_points(result: ValidationResult) -> list[LayerPoint]:
    """Every layer the pass measured (layers that produced no values are left out)."""
    points: list[LayerPoint] = []
    for row in result.layers or []:
        if not row.values:
            continue
        points.append(LayerPoint(len(points), row.path, row.class_name, row.max_abs,
                                 row.min_abs_nonzero, row.underflow_share,
                                 row.subnormal_share, row.risk,
                                 row.detail, row.config_risk))
    return points


def riskiest(points: list[LayerPoint], count: int) -> list[LayerPoint]:
    """The ``count`` layers most worth naming: Inf/NaN and overflow first, then config risks,
    then the largest underflow shares."""
    flagged = [p for p in points if p.risk or p.config_risk]
    flagged.sort(key=lambda p: (not p.severe, p.config_risk is None, -p.underflow_share,
                                -p.max_abs))
    return flagged[:count]


def underflow_threshold() -> float:
    """The share (in %) past which a layer is flagged for underflow."""
    return 100 * UNDERFLOW_SHARE


def output_errors(result: ValidationResult) -> list[OutputError]:
    """PSNR and error relative to the output's variation, per output."""
    return [OutputError(f"output {row.index}", row.psnr_db, row.error_to_variation,
                        row.nonfinite_target) for row in result.outputs or []]


def speed_bars(result: ValidationResult) -> Bars:
    """Forward and (where timed) training throughput, images per second."""
    speed = result.speed
    if not speed:
        return Bars([], [], [], PENDING if not result.complete else "Speed was not measured.")
    groups, fp32, target = ["forward"], [speed.forward_float32_ips], [speed.forward_target_ips]
    if speed.train_float32_ips is not None or speed.train_target_ips is not None:
        groups.append("training")
        fp32.append(speed.train_float32_ips)
        target.append(speed.train_target_ips)
    return Bars(groups, fp32, target)


def memory_bars(result: ValidationResult) -> Bars:
    """Peak device memory (MB) of the forward passes, where the backend reports it."""
    speed = result.speed
    if not speed:
        return Bars([], [], [], PENDING if not result.complete else "Speed was not measured.")
    fp32, target = speed.peak_memory_float32_mb, speed.peak_memory_target_mb
    if fp32 is None and target is None:
        note = ("n/a on CPU" if result.runtime.kind == "cpu"
                else "not reported by this backend")
        return Bars([], [], [], note)
    return Bars(["peak memory"], [fp32], [target])


def training_curves(result: ValidationResult) -> Training | None:
    """The training check's losses and loss scale; None when it did not run (yet)."""
    training = result.training
    if not training:
        return None
    fp32, target = training.float32, training.target
    return Training(list(range(1, len(fp32.loss) + 1)), list(fp32.loss), list(target.loss),
                    list(target.loss_scale) if target.loss_scale else None,
                    target.skipped_steps, training.scaler)


def run_summary(result: ValidationResult) -> str:
    """One line: what was compared, where (Python, backend, Keras, device), with which inputs."""
    run, inputs = result.runtime, result.inputs
    training = result.training
    steps = (f", {training.steps} training steps" if training
             else "" if not result.complete else ", no training check")
    kept = f", {len(result.pins)} layer(s) kept float32" if result.pins else ""
    took = f" · {sig(result.seconds)} s" if result.complete else ""
    return (f"float32 vs {result.policy}{kept} · {run.where}, {run.backend} backend, Keras "
            f"{run.keras_version}, Python {run.python_version} ({run.python}) · "
            f"{inputs.source} inputs, batch {inputs.batch} + {len(inputs.stress)} stress"
            f"{steps}{took}" + "".join(f"\n{note}" for note in result.notes))

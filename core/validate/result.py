"""The validation result: typed, with one JSON form, the verdict rules and their wording.

The child process builds a :class:`ValidationResult` and sends ``to_json()``; the parent (CLI,
report, GUI) reads it back with :meth:`ValidationResult.from_json`. float16's limits, the
thresholds and every word of the verdict live here, once. No Keras, no numpy.
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

SCHEMA = "fsprec.validation/2"

FLOAT16_MAX = 65504.0  # larger magnitudes overflow to Inf in float16
FLOAT16_MIN_NORMAL = 2.0 ** -14  # ~6.1e-5: smaller values are subnormal (fewer bits) in float16
FLOAT16_TINY = 2.0 ** -24  # ~6e-8: the smallest float16 subnormal; smaller values flush to 0
UNDERFLOW_SHARE = 0.01  # a layer is flagged when more of its non-zero values flush to zero
FLAT_STD = 1.0 / 255.0  # an output varying less than one 8-bit grey level is judged by PSNR only

CPU_NO_TRAINING = ("No training check: on a CPU float16 is emulated, so one mixed-precision "
                   "training step of a large model takes minutes; run on a GPU, or set the "
                   "steps to train anyway.")
CPU_NOT_TIMED = "Training speed is not timed on a CPU, where float16 is emulated."

# The stages whose partial result the child streams, in order (auto-pin only when needed).
STAGES = ("parity", "risk map", "training", "speed", "auto-pin")
STRESS_INPUTS = ("black", "mid-grey", "white", "low contrast")
STATUS_LABELS = {"safe": "Safe", "safe_with_pins": "Safe with pins", "not_safe": "Not safe"}
RISK_LABELS = {"nonfinite": "turns finite values into Inf/NaN in float16",
               "overflow": "overflows float16 (values above 65504)",
               "underflow": "flushes small values to zero in float16"}
SEVERE_RISKS = ("nonfinite", "overflow")  # drawn red; underflow alone is a warning


@dataclass(frozen=True)
class Thresholds:
    """When an output counts as the same picture as float32's (see docs/validation.md)."""

    psnr_db: float  # at least this PSNR against float32, images in [0, 1]
    error_to_variation: float  # at most this RMS error per unit of float32's own std


THRESHOLDS = {"mixed_float16": Thresholds(40.0, 0.1), "mixed_bfloat16": Thresholds(32.0, 0.25)}


@dataclass
class ModelInfo:
    folder: str
    plugin: str
    format: str
    precision: str


@dataclass
class Runtime:
    """Where the pass ran: which Python, backend, Keras and device."""

    python: str
    python_version: str
    backend: str
    keras_version: str
    kind: str  # "cpu" | "gpu"
    device: str  # the GPU's name, or "CPU"

    @property
    def where(self) -> str:
        return self.device if self.kind == "cpu" else f"GPU {self.device}"


@dataclass
class Inputs:
    source: str  # "synthetic" | "images"
    batch: int
    shapes: list[list[int]]
    stress: list[str] = field(default_factory=lambda: list(STRESS_INPUTS))


@dataclass
class OutputParity:
    """One output of the faces batch, as an image in [0, 1], against float32's."""

    index: int
    shape: list[int]
    psnr_db: float | None  # None: identical to float32
    rmse: float
    max_abs_err: float
    std_float32: float  # the float32 output's own variation
    error_to_variation: float | None  # rmse / std_float32; None when the output is flat
    nonfinite_float32: int
    nonfinite_target: int

    def passes(self, limits: Thresholds) -> bool:
        """Finite where float32 is, and the same picture within ``limits``."""
        if self.nonfinite_target > self.nonfinite_float32:
            return False
        if self.psnr_db is not None and self.psnr_db < limits.psnr_db:
            return False
        return self.error_to_variation is None or \
            self.error_to_variation <= limits.error_to_variation


@dataclass
class StressOutcome:
    """Non-finite output values on one stress input (summed over outputs)."""

    name: str
    nonfinite_float32: int
    nonfinite_target: int

    @property
    def new_nonfinite(self) -> bool:
        """The mixed model has Inf/NaN here that float32 does not."""
        return self.nonfinite_target > self.nonfinite_float32


@dataclass
class LayerRisk:
    """One leaf layer over the faces and stress inputs, float32 run (plus the mixed run's
    non-finite counts)."""

    path: str
    class_name: str
    eligible: bool
    values: int
    max_abs: float
    min_abs_nonzero: float | None
    nonzero: int
    above_fp16_max: int
    below_fp16_normal: int  # non-zero values that are subnormal or zero in float16
    below_fp16_tiny: int  # of which flush to zero
    nonfinite_target: int
    introduces_nonfinite: bool
    config_risk: str | None
    risk: str | None  # "nonfinite" | "overflow" | "underflow" | None

    @property
    def underflow_share(self) -> float:
        """The share of non-zero values that flush to zero in float16 (below 2**-24)."""
        return self.below_fp16_tiny / self.nonzero if self.nonzero else 0.0

    @property
    def subnormal_share(self) -> float:
        """The share of non-zero values that are subnormal or zero in float16 (below 2**-14):
        they keep fewer bits, but their absolute error stays below 6e-8."""
        return self.below_fp16_normal / self.nonzero if self.nonzero else 0.0

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def detail(self) -> str:
        """Why the layer is flagged, in a few words ("" when it is not)."""
        if self.risk == "nonfinite":
            return f"{self.nonfinite_target:,} non-finite values in float16"
        if self.risk == "overflow":
            return f"{self.above_fp16_max:,} values above 65504"
        if self.risk == "underflow":
            return f"{sig(100 * self.underflow_share)}% of non-zero values flush to zero"
        return ""


def layer_risk(overflow: bool, introduces_nonfinite: bool, underflow_share: float
               ) -> str | None:
    """The layer's own risk: a layer that only passes Inf/NaN on is not blamed."""
    if introduces_nonfinite:
        return "nonfinite"
    if overflow:
        return "overflow"
    if underflow_share > UNDERFLOW_SHARE:
        return "underflow"
    return None


@dataclass
class ConfigRisk:
    """A risk read from the config (an epsilon that is 0 in float16, a reduction whose float16
    sums can overflow, a reducing op node) and what became of it."""

    path: str
    reason: str
    outcome: str  # "harmless" (measured) | "pinned" | "harmful" | "unmeasured" (an op node)
    measured: str = ""  # what the layer's own float16 run showed against float32, in words
    fails: bool = False  # that run had Inf/NaN float32 has not, or was off past the tolerance

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class TrainingRun:
    loss: list[float]
    loss_scale: list[float] | None
    skipped_steps: int
    images_per_s: float | None


@dataclass
class Training:
    """The short training check, float32 against the target policy."""

    steps: int
    scaler: str | None  # "torch.amp.GradScaler" | "keras LossScaleOptimizer" | None
    optimizer: str  # e.g. "adam (lr 5e-05, eps 1e-07) from the model's state"
    loss: str  # what the check trains on, said plainly
    float32: TrainingRun
    target: TrainingRun
    timed: bool  # False: images/s not measured (float16 is emulated on a CPU)


@dataclass
class Speed:
    forward_float32_ips: float
    forward_target_ips: float
    speedup: float
    peak_memory_float32_mb: float | None
    peak_memory_target_mb: float | None
    train_float32_ips: float | None = None
    train_target_ips: float | None = None


@dataclass
class AutoPin:
    pins: list[str]
    passed: bool
    evaluations: int


@dataclass
class Verdict:
    status: str  # "safe" | "safe_with_pins" | "not_safe"
    pins: list[str]
    text: str

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]


@dataclass
class ValidationResult:
    """A validation pass; while it runs, the parts not yet measured are None."""

    model: ModelInfo
    policy: str
    pins: list[str]
    runtime: Runtime
    inputs: Inputs
    thresholds: Thresholds
    outputs: list[OutputParity] | None = None
    stress: list[StressOutcome] | None = None
    layers: list[LayerRisk] | None = None
    config_risks: list[ConfigRisk] | None = None
    training: Training | None = None
    speed: Speed | None = None
    autopin: AutoPin | None = None
    verdict: Verdict | None = None
    notes: list[str] = field(default_factory=list)  # what was not measured, and why
    seconds: float = 0.0
    schema: str = SCHEMA

    def to_json(self) -> dict[str, Any]:
        """The JSON document (``fsprec validate --json``; the child's ``result`` event)."""
        return _to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ValidationResult:
        """Read a document written by :meth:`to_json` (refuses another schema)."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document: {data.get('schema')!r}")
        return _from_json(cls, data)

    @property
    def complete(self) -> bool:
        return self.verdict is not None

    def problems(self) -> list[str]:
        """What is wrong with the target as it is, in words (empty: nothing)."""
        found = []
        for out in self.outputs or []:
            if out.nonfinite_target > out.nonfinite_float32:
                found.append(f"output {out.index} has {out.nonfinite_target:,} Inf/NaN values "
                             "on the faces")
            elif not out.passes(self.thresholds):
                found.append(f"output {out.index} is {_error_words(out)} against float32 "
                             f"(needs {self.thresholds.psnr_db:g} dB and at most "
                             f"{self.thresholds.error_to_variation:.0%} of its variation)")
        for stress in self.stress or []:
            if stress.new_nonfinite:
                found.append(f"Inf/NaN on a {stress.name} input "
                             f"({stress.nonfinite_target:,} values; float32 has "
                             f"{stress.nonfinite_float32:,})")
        for risk in self.config_risks or []:
            if risk.fails and risk.name not in self.pins:
                found.append(f"{risk.path} ({risk.reason}): {risk.measured}")
        return found

    def blamed(self) -> list[str]:
        """Layer paths that turn finite values into Inf/NaN or overflow, in model order."""
        return [layer.path for layer in self.layers or [] if layer.risk in SEVERE_RISKS]


def decide(result: ValidationResult) -> Verdict:
    """The verdict (the rules are in docs/validation.md)."""
    problems = result.problems()
    notes = _notes(result)
    if not problems:
        kept = f" with {', '.join(result.pins)} kept in float32" if result.pins else ""
        worst = min((o.psnr_db for o in result.outputs or [] if o.psnr_db is not None),
                    default=None)
        how = "identical to float32" if worst is None else f"at least {worst:.1f} dB PSNR"
        speed = result.speed
        faster = (f"; forward {sig(speed.speedup)}x float32's speed on {result.runtime.where}"
                  if speed else "")
        return Verdict("safe", list(result.pins),
                       f"safe{kept}: outputs {how} against float32 on the faces, no Inf/NaN "
                       f"on black, grey, white or low-contrast inputs{faster}.{notes}")
    where = result.blamed()
    trouble = problems[0] + (f" (first trouble at {where[0]})" if where else "")
    more = f", and {len(problems) - 1} more" if len(problems) > 1 else ""
    found = result.autopin
    if found and found.passed and found.pins:
        # No speed claim: the speed was measured without these pins.
        return Verdict("safe_with_pins", list(found.pins),
                       f"safe with pins: keep {', '.join(found.pins)} in float32 — without "
                       f"{'it' if len(found.pins) == 1 else 'them'}, {trouble}{more}.{notes}")
    return Verdict("not_safe", [], f"not safe: {trouble}{more}.{notes}")


def _error_words(out: OutputParity) -> str:
    psnr = "identical" if out.psnr_db is None else f"{out.psnr_db:.1f} dB"
    if out.error_to_variation is None:
        return psnr
    return f"{psnr}, error {out.error_to_variation:.0%} of its variation"


def _notes(result: ValidationResult) -> str:
    notes = []
    for risk in result.config_risks or []:
        if risk.outcome == "harmless":
            notes.append(f"{risk.path}: {risk.reason}, measured harmless on the faces and "
                         f"stress inputs ({risk.measured})")
        elif risk.outcome == "unmeasured":
            notes.append(f"{risk.path}: {risk.reason}; judged only by the model's outputs")
        elif risk.outcome == "pinned":
            notes.append(f"{risk.path}: {risk.reason}, kept in float32")
    broken = [s.name for s in result.stress or [] if s.nonfinite_float32]
    if broken:
        notes.append("float32 itself gives Inf/NaN on " + ", ".join(broken)
                     + " inputs (not a mixed-precision problem)")
    return "".join(f" Note: {n}." for n in notes)


# JSON <-> dataclasses ------------------------------------------------------------------------
T = TypeVar("T")


def _to_json(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _from_json(cls: type[T], data: dict[str, Any]) -> T:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _read(hints[f.name], data[f.name])
                  for f in fields(cls) if f.name in data})


def _read(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _read(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_read(item, v) for v in value]
    if is_dataclass(hint):
        return _from_json(hint, value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value


def sig(value: float | None, unit: str = "") -> str:
    """Two significant digits, without exponents between 1e-4 and 1e6 (``n/a``: None)."""
    if value is None or not math.isfinite(value):
        return "n/a" if value is None else str(value)
    rounded = float(f"{value:.2g}")
    text = f"{rounded:.0f}" if 100 <= abs(rounded) < 1e6 else f"{rounded:g}"
    return text + unit


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None

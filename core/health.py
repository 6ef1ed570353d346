"""Model health: every restorable version of a model, its weights checked, with a verdict.

The timeline holds the live model, its ``.bk`` backup, every ``<model_dir>_snapshot_<N>_iters``
folder beside it and every ``<plugin>_archived_<timestamp>`` folder inside it; the live model
comes first, the others newest (most iterations) first. :func:`check` streams each version's
weights once (NaN/Inf per layer, max |w|, values beyond float16's range) until it reaches the
first clean one, unless every version is asked for. Results are cached by file size and mtime.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .archive import open_zip
from .errors import Cancelled, FsprecError
from .health_cache import HealthCache
from .modelfile import CONFIG_MEMBER, METADATA_MEMBER, ModelFolder, open_model, read_config
from .nanscan import FLOAT16_MAX, scan_weights
from .state import State
from .task import Task
from .tblog import LossHistory, read_history

CLEAN, DAMAGED, AT_RISK, NOT_CHECKED, UNREADABLE = (
    "clean", "damaged", "at_risk", "not_checked", "unreadable")
UNDERFLOW_RISK = 0.01  # a float16 layer with 1% of its weights flushing to zero is at risk
NEAR_LIMIT = FLOAT16_MAX / 2  # a float16 layer whose largest weight is within 2x of the limit
_SNAPSHOT = re.compile(r"_snapshot_(\d+)_iters$")
_ARCHIVE = re.compile(r"_archived_(\d{8}_\d{6})$")
_FLOAT16_POLICIES = ("mixed_float16",)
MIXED_PRECISIONS = ("mixed_float16", "mixed_bfloat16", "partial")


@dataclass(frozen=True)
class LayerHealth:
    """One layer's weights in one version."""

    path: str
    policy: str | None
    size: int
    nan: int = 0
    inf: int = 0
    max_abs: float = 0.0
    overflow: int = 0
    underflow: int = 0

    @property
    def name(self) -> str:
        """The layer's own name (the last part of its path)."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def damaged(self) -> bool:
        """True when a weight is NaN or Inf."""
        return self.nan > 0 or self.inf > 0

    @property
    def float16_share(self) -> float:
        """The share of weights beyond float16's range (overflow or flush to zero)."""
        return (self.overflow + self.underflow) / self.size if self.size else 0.0

    @property
    def damage(self) -> str:
        """What is wrong, in words ("" when nothing)."""
        parts = [f"{count:,} {what}" for count, what in ((self.nan, "NaN"), (self.inf, "Inf"))
                 if count]
        return f"{' and '.join(parts)} weight(s)" if parts else ""

    @property
    def risk(self) -> str:
        """Why this float16 layer is close to float16's limits ("" when it is not)."""
        if self.policy not in _FLOAT16_POLICIES or self.damaged:
            return ""
        if self.overflow:
            return (f"{self.overflow:,} weight(s) are larger than float16 can hold "
                    f"(up to {self.max_abs:,.0f}; the limit is 65,504) and become infinite")
        if self.max_abs >= NEAR_LIMIT:
            return f"its largest weight ({self.max_abs:,.0f}) is close to float16's limit (65,504)"
        if self.size and self.underflow / self.size >= UNDERFLOW_RISK:
            return (f"{self.underflow / self.size:.1%} of its weights are too small for float16 "
                    "and become zero")
        return ""

    def to_json(self) -> dict[str, Any]:
        """JSON form (also the cache's)."""
        return {"layer": self.path, "policy": self.policy, "size": self.size, "nan": self.nan,
                "inf": self.inf, "max_abs": self.max_abs, "overflow": self.overflow,
                "underflow": self.underflow, "float16_share": self.float16_share,
                "damaged": self.damaged, "risk": self.risk or None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerHealth:
        """Read :meth:`to_json`'s form."""
        return cls(str(data["layer"]), data.get("policy"), int(data["size"]), int(data["nan"]),
                   int(data["inf"]), float(data["max_abs"]), int(data["overflow"]),
                   int(data["underflow"]))


@dataclass(frozen=True)
class WeightCheck:
    """The weight check of one version."""

    layers: tuple[LayerHealth, ...]

    @property
    def damaged(self) -> list[LayerHealth]:
        """Layers holding NaN or Inf."""
        return [layer for layer in self.layers if layer.damaged]

    @property
    def at_risk(self) -> list[LayerHealth]:
        """float16 layers close to float16's limits."""
        return [layer for layer in self.layers if layer.risk]

    @property
    def verdict(self) -> str:
        """``clean``, ``damaged`` or ``at_risk``."""
        return DAMAGED if self.damaged else AT_RISK if self.at_risk else CLEAN

    @property
    def values(self) -> int:
        """Weights checked."""
        return sum(layer.size for layer in self.layers)

    @property
    def max_abs(self) -> float:
        """The largest finite magnitude of any weight."""
        return max((layer.max_abs for layer in self.layers), default=0.0)

    def to_json(self) -> dict[str, Any]:
        """JSON form (also the cache's)."""
        return {"verdict": self.verdict, "values": self.values, "max_abs": self.max_abs,
                "layers": [layer.to_json() for layer in self.layers]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WeightCheck:
        """Read :meth:`to_json`'s form."""
        return cls(tuple(LayerHealth.from_json(layer) for layer in data["layers"]))


@dataclass
class Version:
    """One restorable version of the model."""

    id: str
    kind: str  # live, backup, snapshot, archive
    label: str
    folder: Path
    model_file: Path
    iterations: int = 0
    saved: str = ""  # ISO date and time
    precision: str = ""
    size: int = 0
    model: ModelFolder | None = None
    check: WeightCheck | None = None
    problem: str | None = None

    @property
    def verdict(self) -> str:
        """``clean``, ``damaged``, ``at_risk``, ``not_checked`` or ``unreadable``."""
        if self.problem:
            return UNREADABLE
        return self.check.verdict if self.check else NOT_CHECKED

    @property
    def summary(self) -> str:
        """The verdict in words an artist understands."""
        verdict = self.verdict
        if verdict == UNREADABLE:
            return f"Can't be read: {self.problem}"
        if verdict == NOT_CHECKED:
            return "Not checked: a newer version is already healthy."
        assert self.check is not None
        if verdict == CLEAN:
            mixed = " and within float16's range" if self.precision in MIXED_PRECISIONS else ""
            return f"Healthy: every weight is a normal number{mixed}."
        if verdict == DAMAGED:
            bad = self.check.damaged
            return (f"Broken: {len(bad)} layer(s) hold NaN/Inf weights ({_names(bad)}). "
                    "It will make black or noisy faces; do not train on from it.")
        risky = self.check.at_risk
        large = [layer for layer in risky if layer.max_abs >= NEAR_LIMIT]
        if large:
            return (f"At risk: {len(large)} layer(s) have weights at or near float16's largest "
                    f"value ({_names(large)}); mixed-precision training may soon collapse "
                    "into NaN.")
        return (f"At risk: {len(risky)} layer(s) have many weights too small for float16 "
                f"({_names(risky)}); in mixed precision they count as zero, so those layers "
                "lose detail.")

    def to_json(self) -> dict[str, Any]:
        """One entry of ``versions`` in ``fsprec health --json``."""
        return {"id": self.id, "kind": self.kind, "label": self.label,
                "folder": str(self.folder), "model_file": str(self.model_file),
                "iterations": self.iterations, "saved": self.saved,
                "precision": self.precision, "size": self.size, "verdict": self.verdict,
                "summary": self.summary, "problem": self.problem,
                "damaged_layers": [layer.path for layer in self.check.damaged]
                if self.check else [],
                "at_risk_layers": [{"layer": layer.path, "reason": layer.risk}
                                   for layer in self.check.at_risk] if self.check else [],
                "check": self.check.to_json() if self.check else None}


def _names(layers: list[LayerHealth], most: int = 3) -> str:
    names = [layer.path for layer in layers[:most]]
    more = len(layers) - most
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class Advice:
    """One thing to do about an unhealthy model; ``action`` says which flow runs it."""

    action: str  # rollback, switch, pin, info
    text: str
    version: str | None = None  # rollback: the version id
    target: str | None = None  # switch / pin: the precision to switch to
    pins: tuple[str, ...] = ()  # pin: the layers to keep in float32

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"action": self.action, "text": self.text, "version": self.version,
                "target": self.target, "pins": list(self.pins)}


@dataclass
class HealthReport:
    """The health of a model folder: its versions (live first), loss history and advice."""

    model_dir: Path
    plugin: str
    versions: list[Version]
    loss: LossHistory | None = None
    advice: list[Advice] = field(default_factory=list)

    @property
    def live(self) -> Version:
        """The live model."""
        return self.versions[0]

    @property
    def newest_clean(self) -> Version | None:
        """The newest version whose weights are healthy."""
        return next((v for v in self.versions if v.verdict == CLEAN), None)

    @property
    def complete(self) -> bool:
        """True when every readable version was checked."""
        return all(v.verdict != NOT_CHECKED for v in self.versions)

    def version(self, version_id: str) -> Version:
        """The version with this id; :class:`FsprecError` lists the ids otherwise."""
        for version in self.versions:
            if version.id == version_id:
                return version
        ids = ", ".join(v.id for v in self.versions)
        raise FsprecError(f"No version {version_id!r} of {self.model_dir.name}; "
                          f"its versions are: {ids}.")

    def to_json(self) -> dict[str, Any]:
        """The ``fsprec health --json`` document (docs/health.md)."""
        clean = self.newest_clean
        return {"model_dir": str(self.model_dir), "plugin": self.plugin,
                "live_verdict": self.live.verdict, "newest_clean": clean.id if clean else None,
                "complete": self.complete,
                "versions": [v.to_json() for v in self.versions],
                "advice": [a.to_json() for a in self.advice],
                "loss": self.loss.to_json() if self.loss is not None else None}


def _saved(model: ModelFolder) -> str:
    stamp = str(model.metadata.get("date_saved", ""))
    try:
        return datetime.strptime(stamp, "%Y-%m-%d@%H:%M:%S").isoformat()
    except ValueError:
        return datetime.fromtimestamp(model.model_file.stat().st_mtime).isoformat(
            timespec="seconds")


def _describe(version: Version, model: ModelFolder) -> Version:
    version.model = model
    version.iterations = model.iterations or version.iterations
    version.saved = _saved(model)
    version.size = model.model_file.stat().st_size
    version.precision = model.precision
    return version


def _open_backup(live: ModelFolder) -> ModelFolder | None:
    """The live model's ``.bk`` backup as a model of its own (None without one)."""
    model_file = live.model_file.with_name(live.model_file.name + ".bk")
    if not model_file.is_file():
        return None
    if live.format == "keras3":
        try:
            with open_zip(model_file) as archive:
                config = json.loads(archive.read(CONFIG_MEMBER))
                metadata = json.loads(archive.read(METADATA_MEMBER))
        except (KeyError, ValueError, OSError) as err:
            raise FsprecError(f"{model_file.name} is not a readable Keras model: {err}") from err
        if not isinstance(config, dict) or not isinstance(config.get("config"), dict) \
                or not isinstance(metadata, dict):
            raise FsprecError(f"{model_file.name} does not hold a Keras model config.")
    else:
        _, config, metadata = read_config(model_file)
    state_file = live.path / f"{live.plugin}_state.json.bk"
    state = State.load(state_file) if state_file.is_file() else None
    return ModelFolder(live.path, live.plugin, live.format, model_file, config, metadata,
                       state_file if state else None, state)


def _others(live: ModelFolder) -> list[Version]:
    found: list[Version] = []
    try:
        backup = _open_backup(live)
        if backup is not None:
            found.append(_describe(Version("backup", "backup", "Backup (.bk)", live.path,
                                           backup.model_file), backup))
    except FsprecError as err:
        found.append(Version("backup", "backup", "Backup (.bk)", live.path,
                             live.model_file.with_name(live.model_file.name + ".bk"),
                             problem=str(err)))
    folders = [(p, _SNAPSHOT.search(p.name)) for p in live.snapshots]
    folders += [(p, _ARCHIVE.search(p.name)) for p in sorted(live.path.glob(
        f"{live.plugin}_archived_*")) if p.is_dir()]
    for path, match in folders:
        if match is None:
            continue
        if path in live.snapshots:
            version = Version(f"snapshot-{match.group(1)}", "snapshot",
                              f"Snapshot at {int(match.group(1)):,} iterations", path,
                              path / live.model_file.name, int(match.group(1)))
        else:
            stamp = datetime.strptime(match.group(1), "%Y%m%d_%H%M%S")
            version = Version(f"archive-{match.group(1)}", "archive",
                              f"Archived {stamp:%Y-%m-%d %H:%M}", path,
                              path / live.model_file.name)
        try:
            found.append(_describe(version, open_model(path)))
        except (FsprecError, OSError) as err:
            version.problem = str(err)
            found.append(version)
    found.sort(key=lambda v: (v.iterations, v.saved), reverse=True)
    return found


def timeline(folder: str | Path) -> tuple[ModelFolder, list[Version]]:
    """The live model and every restorable version (metadata only; no weights read)."""
    live = open_model(folder)
    current = _describe(Version("live", "live", "Live model", live.path, live.model_file), live)
    return live, [current, *_others(live)]


def check_version(version: Version, task: Task, cache: HealthCache | None) -> WeightCheck:
    """The weight check of one version (from the cache when its file is unchanged)."""
    cached = cache.get(version.model_file) if cache else None
    if cached is not None:
        try:
            return WeightCheck.from_json(cached)
        except (KeyError, TypeError, ValueError):
            pass
    assert version.model is not None
    policies = {leaf.path: leaf.dtype_policy for leaf in version.model.leaves(with_params=False)}
    report = scan_weights(version.model, task, ranges=True)
    check = WeightCheck(tuple(LayerHealth(f.layer, policies.get(f.layer), f.size, f.nan, f.inf,
                                          f.max_abs, f.overflow, f.underflow)
                              for f in report.layers))
    if cache:
        cache.put(version.model_file, check.to_json())
    return check


def _sub_task(task: Task, stage: str) -> Task:
    """A task reporting under ``stage`` that stops when ``task`` is cancelled."""
    def forward(_: str, done: int, total: int) -> None:
        task.check()
        task.progress(stage, done, total)
    return Task(forward)


def check(folder: str | Path, task: Task | None = None, all_versions: bool = False,
          with_loss: bool = True, cache: HealthCache | None = None) -> HealthReport:
    """The health of a model folder: newest first, stopping at the first clean version unless
    ``all_versions``; reads the training logs unless ``with_loss`` is False."""
    task = task or Task()
    cache = cache if cache is not None else HealthCache()
    live, versions = timeline(folder)
    readable = [v for v in versions if not v.problem]
    for index, version in enumerate(readable):
        task.check()
        stage = f"Checking {index + 1} of {len(readable)}: {version.label}"
        try:
            version.check = check_version(version, _sub_task(task, stage), cache)
        except FsprecError as err:
            if version.kind == "live" or isinstance(err, Cancelled):
                raise
            version.problem = str(err)
            continue
        if version.check.verdict == CLEAN and not all_versions:
            break
    report = HealthReport(live.path, live.plugin, versions)
    if with_loss:
        report.loss = read_history(live.path, live.plugin, _sub_task(task, "Reading logs"))
    report.advice = advise(report)
    return report


def check_live(folder: str | Path, task: Task | None = None,
               cache: HealthCache | None = None) -> str:
    """The live model's verdict alone (for the model browser's badge); cached."""
    task = task or Task()
    cache = cache if cache is not None else HealthCache()
    _, versions = timeline(folder)
    return check_version(versions[0], task, cache).verdict


def cached_verdict(folder: str | Path, cache: HealthCache | None = None) -> str | None:
    """The live model's verdict from the cache, without reading any weights (None when the
    model has changed since it was checked, or was never checked)."""
    cache = cache if cache is not None else HealthCache()
    try:
        model = open_model(folder)
    except FsprecError:
        return None
    cached = cache.get(model.model_file)
    return cached.get("verdict") if cached else None


def advise(report: HealthReport) -> list[Advice]:
    """What to do about an unhealthy live model, most important first."""
    live = report.live
    if live.verdict not in (DAMAGED, AT_RISK) or live.check is None:
        return []
    advice: list[Advice] = []
    clean = report.newest_clean
    if live.verdict == DAMAGED:
        if clean is not None:
            advice.append(Advice("rollback", f"Roll back to {clean.label} "
                                 f"({clean.iterations:,} iterations), the newest healthy "
                                 "version. The current files are archived, not deleted.",
                                 version=clean.id))
        else:
            advice.append(Advice("info", "No healthy version was found to roll back to."
                                 + ("" if report.complete else " Check every version to be "
                                    "sure.")))
    if live.precision not in MIXED_PRECISIONS:
        return advice
    text = ("switch to float32: slower and heavier on memory, but float32 has room for "
            "these values.")
    rolled_back = bool(advice) and advice[0].action == "rollback"
    advice.append(Advice("switch", f"Then {text}" if rolled_back else text[0].upper() + text[1:],
                         target="float32"))
    eligible = set(live.model.eligible) if live.model else set()
    troubled = live.check.damaged + live.check.at_risk
    pins = tuple(dict.fromkeys(layer.name for layer in troubled if layer.name in eligible))
    if pins:
        target = live.precision if live.precision != "partial" else "mixed_float16"
        advice.append(Advice("pin", f"Or keep mixed precision and pin {', '.join(pins)} to "
                             "float32 (the layers that went wrong).", target=target, pins=pins))
    return advice

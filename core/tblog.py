"""Loss history from Faceswap's TensorBoard logs, without TensorFlow.

Faceswap logs every training iteration to ``<plugin>_logs/session_<N>/**/events.out.tfevents.*``
(step = the model's iteration count; tags ``batch_total``, ``batch_face_A``, ``batch_face_B``,
``batch_weighted_A/<loss>`` ...). The events are decoded with the ``tensorboard`` package's
``Event`` protocol buffer. The TFRecord framing around them (length, CRC, payload, CRC) is read
here: tensorboard's own ``EventFileLoader`` imports TensorFlow whenever it is installed, and its
TensorFlow-free fallback checks CRCs in pure Python at about 5 MB/s, too slow for the gigabytes
of log a long training writes. Like Faceswap's own log reader, the CRCs are not checked; a record
cut short (a session still training, or killed) ends that file.
"""
from __future__ import annotations

import math
import re
import struct
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto.event_pb2 import Event

from .task import Task

KEPT_TAGS = re.compile(r"^batch_(total|face_\w+|mask_\w+)$")  # per-side totals, not per loss
_SESSION = re.compile(r"^session_(\d+)$")
_MAX_RECORD = 1 << 30  # a longer length field is garbage, not a record
_FLOAT_TYPES = {1: "<f4", 2: "<f8", 19: "<f2"}  # DT_FLOAT, DT_DOUBLE, DT_HALF


@dataclass
class Series:
    """One logged value against iteration."""

    steps: array = field(default_factory=lambda: array("q"))
    values: array = field(default_factory=lambda: array("d"))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(iterations, values) as numpy arrays."""
        return np.frombuffer(self.steps, np.int64), np.frombuffer(self.values, np.float64)


@dataclass
class Session:
    """One training session's log: ``series`` maps a tag (``face_A``, ``total``) to values."""

    number: int
    series: dict[str, Series] = field(default_factory=dict)
    started: float | None = None  # wall-clock time of the first event

    @property
    def first(self) -> int | None:
        """The first logged iteration."""
        steps = [s.steps[0] for s in self.series.values() if s.steps]
        return min(steps) if steps else None

    @property
    def last(self) -> int | None:
        """The last logged iteration."""
        steps = [s.steps[-1] for s in self.series.values() if s.steps]
        return max(steps) if steps else None

    def nan_steps(self) -> list[int]:
        """Iterations where any logged loss was NaN or infinite."""
        bad: set[int] = set()
        for series in self.series.values():
            steps, values = series.arrays()
            bad.update(int(s) for s in steps[~np.isfinite(values)])
        return sorted(bad)


@dataclass
class LossHistory:
    """Every session's loss, oldest session first."""

    sessions: list[Session] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def sides(self) -> list[str]:
        """The per-side tags present (``face_A``, ``face_B``, ...), sorted."""
        return sorted({tag for s in self.sessions for tag in s.series if tag.startswith("face_")})

    def curve(self, tag: str) -> tuple[np.ndarray, np.ndarray]:
        """(iterations, values) of ``tag`` over all sessions."""
        parts = [s.series[tag].arrays() for s in self.sessions if tag in s.series]
        if not parts:
            return np.empty(0, np.int64), np.empty(0)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def nan_steps(self) -> list[int]:
        """Iterations where any logged loss was NaN or infinite."""
        return sorted({step for s in self.sessions for step in s.nan_steps()})

    def to_json(self) -> dict[str, Any]:
        """Per session: its iterations and the last value of each side (no full curves)."""
        sessions = []
        for session in self.sessions:
            last = {tag: _finite_or_none(series.values[-1])
                    for tag, series in sorted(session.series.items()) if series.values}
            sessions.append({"session": session.number, "first_iteration": session.first,
                             "last_iteration": session.last, "started": session.started,
                             "points": max((len(s.steps) for s in session.series.values()),
                                           default=0),
                             "last_loss": last, "nan_iterations": session.nan_steps()})
        return {"sides": self.sides, "sessions": sessions, "nan_iterations": self.nan_steps(),
                "problems": self.problems}


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _records(handle) -> Any:
    """Yield each record's payload; stop at a partial record."""
    while True:
        header = handle.read(12)
        if len(header) < 12:
            return
        (length,) = struct.unpack("<Q", header[:8])
        if length > _MAX_RECORD:
            return
        payload = handle.read(length)
        if len(payload) < length or len(handle.read(4)) < 4:
            return
        yield payload


def _scalar(value) -> float | None:
    """The float in a summary value (TF1 ``simple_value`` or TF2 scalar tensor)."""
    tensor = value.tensor
    if tensor.float_val:  # what Faceswap writes: a scalar float tensor
        return float(tensor.float_val[0])
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind != "tensor":
        return None
    if tensor.double_val:
        return float(tensor.double_val[0])
    dtype = _FLOAT_TYPES.get(tensor.dtype)
    if dtype and tensor.tensor_content:
        return float(np.frombuffer(tensor.tensor_content, dtype)[0])
    if tensor.dtype == 19 and tensor.half_val:  # float16 stored as its bits in half_val
        return float(np.array(tensor.half_val[0], np.uint16).view(np.float16))
    return None


def _read_file(path: Path, session: Session, on_bytes) -> None:
    kept: dict[str, Series | None] = {}  # tag -> its series, None for a tag not kept
    with open(path, "rb", buffering=1 << 20) as handle:
        for count, payload in enumerate(_records(handle)):
            if count % 4096 == 0:
                on_bytes(handle.tell())
            event = Event.FromString(payload)
            if session.started is None and event.wall_time:
                session.started = event.wall_time
            for value in event.summary.value:
                tag = value.tag
                if tag not in kept:
                    match = KEPT_TAGS.match(tag)
                    kept[tag] = (session.series.setdefault(match.group(1), Series())
                                 if match else None)
                series = kept[tag]
                if series is None:
                    continue
                number = _scalar(value)
                if number is not None:
                    series.steps.append(event.step)
                    series.values.append(number)
        on_bytes(handle.tell())


def log_files(model_dir: Path, plugin: str) -> dict[int, list[Path]]:
    """Event files per session number under ``<plugin>_logs``."""
    root = model_dir / f"{plugin}_logs"
    found: dict[int, list[Path]] = {}
    if not root.is_dir():
        return found
    for folder in sorted(root.iterdir()):
        match = _SESSION.match(folder.name)
        if match and folder.is_dir():
            found[int(match.group(1))] = sorted(folder.rglob("events.out.tfevents.*"))
    return dict(sorted(found.items()))


def read_history(model_dir: str | Path, plugin: str, task: Task | None = None) -> LossHistory:
    """Read every session's loss under ``<model_dir>/<plugin>_logs``; unreadable files are
    listed in :attr:`LossHistory.problems`, never raised."""
    task = task or Task()
    files = log_files(Path(model_dir), plugin)
    total = sum(f.stat().st_size for paths in files.values() for f in paths)
    history = LossHistory()
    done = 0
    for number, paths in files.items():
        session = Session(number)
        for path in paths:
            def on_bytes(position: int, base: int = done) -> None:
                task.check()
                task.progress("Reading training logs", base + position, total)
            try:
                _read_file(path, session, on_bytes)
            except (OSError, DecodeError) as err:
                history.problems.append(f"{path.name}: {err}")
            done += path.stat().st_size
        if session.series:
            _sort(session)
            history.sessions.append(session)
    task.progress("Reading training logs", total, total)
    return history


def _sort(session: Session) -> None:
    """Order each series by iteration (files of one session may interleave)."""
    for tag, series in session.series.items():
        steps, values = series.arrays()
        if np.all(steps[1:] >= steps[:-1]):
            continue
        order = np.argsort(steps, kind="stable")
        ordered = Series()
        ordered.steps.frombytes(steps[order].tobytes())
        ordered.values.frombytes(values[order].tobytes())
        session.series[tag] = ordered

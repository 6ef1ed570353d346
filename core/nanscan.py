"""Scan a model's weights for NaN and Inf, streaming in bounded chunks, per layer.

With ``ranges=True`` the same pass also measures each layer's largest magnitude and how many
weights lie beyond float16's range (above 65504 they overflow to Inf; non-zero values below
2**-24, about 6e-8, flush to zero), for mixed-precision health checks.
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np

from .archive import check_crcs, open_zip
from .errors import FsprecError
from .modelfile import ModelFolder, open_model
from .task import Task
from .weights import H5_ERRORS, WEIGHTS_MEMBER, Weight, open_weights

CHUNK_ELEMENTS = 4 * 1024 * 1024  # 16 MB of float32 at a time
FLOAT16_MAX = 65504.0  # the largest finite float16
FLOAT16_TINY = 2.0 ** -24  # the smallest non-zero float16 (~6e-8)


@dataclass
class LayerFinding:
    """Non-finite values found in one layer's weights."""

    layer: str
    size: int
    nan: int = 0
    inf: int = 0
    max_abs: float = 0.0  # largest finite magnitude (measured with ``ranges=True``)
    overflow: int = 0  # finite values above FLOAT16_MAX (``ranges=True``)
    underflow: int = 0  # non-zero values below FLOAT16_TINY (``ranges=True``)

    @property
    def clean(self) -> bool:
        """True when every value is finite."""
        return self.nan == 0 and self.inf == 0

    def tally(self, block: np.ndarray, ranges: Ranges | None = None) -> None:
        """Add one block of this layer's values to the counts; ``ranges`` (the scan's reused
        buffers) also measures max |w| and the values beyond float16's range."""
        if ranges is None or block.size == 0:
            nan, inf = _nonfinite(block)
            self.nan, self.inf = self.nan + nan, self.inf + inf
            return
        magnitude, small = ranges.buffers(block)
        peak = float(magnitude.max())  # NaN or Inf when something is off
        if not np.isfinite(peak):
            nan, inf = _nonfinite(block)
            self.nan, self.inf = self.nan + nan, self.inf + inf
            magnitude = magnitude[np.isfinite(magnitude)]
            if magnitude.size == 0:
                return
            small = small[:magnitude.size]
            peak = float(magnitude.max())
        self.max_abs = max(self.max_abs, peak)
        if peak > FLOAT16_MAX:
            self.overflow += int(np.count_nonzero(magnitude > FLOAT16_MAX))
        if magnitude.min() >= FLOAT16_TINY:  # the common case for trained weights
            return
        np.less(magnitude, FLOAT16_TINY, out=small)
        self.underflow += int(np.count_nonzero(magnitude[small]))  # zeros do not count


class Ranges:
    """Buffers one scan reuses for its range measurements (one per scan, so scans on several
    threads never share them)."""

    def __init__(self) -> None:
        self._magnitude: dict[str, np.ndarray] = {}
        self._small = np.empty(0, bool)

    def buffers(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(|block| flattened, a bool scratch of the same length), in reused memory."""
        flat = block.reshape(-1)
        kept = self._magnitude.get(flat.dtype.str)
        if kept is None or kept.size < flat.size:
            kept = self._magnitude[flat.dtype.str] = np.empty(flat.size, flat.dtype)
        if self._small.size < flat.size:
            self._small = np.empty(flat.size, bool)
        magnitude = kept[:flat.size]
        np.abs(flat, out=magnitude)
        return magnitude, self._small[:flat.size]


@dataclass
class NanReport:
    """The result of a NaN/Inf scan."""

    model_file: Path
    layers: list[LayerFinding] = field(default_factory=list)
    ranges: bool = False  # True when max_abs / overflow / underflow were measured

    @property
    def clean(self) -> bool:
        """True when no weight is NaN or Inf."""
        return all(layer.clean for layer in self.layers)

    @property
    def bad_layers(self) -> list[LayerFinding]:
        """Layers with at least one non-finite weight."""
        return [layer for layer in self.layers if not layer.clean]

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``fsprec nan-scan --json``."""
        return {"model_file": str(self.model_file), "clean": self.clean,
                "values": sum(layer.size for layer in self.layers),
                "layers": [self._layer_json(layer) for layer in self.layers]}

    def _layer_json(self, layer: LayerFinding) -> dict[str, Any]:
        data = {"layer": layer.layer, "size": layer.size, "nan": layer.nan, "inf": layer.inf}
        if self.ranges:
            data |= {"max_abs": layer.max_abs, "overflow": layer.overflow,
                     "underflow": layer.underflow}
        return data | {"clean": layer.clean}


class _Counter:
    """Elements scanned so far, reported to the task."""

    def __init__(self, task: Task, total: int) -> None:
        self.task, self.total, self.done = task, total, 0

    def advance(self, count: int) -> None:
        self.done += count
        self.task.progress("Scanning weights", self.done, self.total)


def _nonfinite(block: np.ndarray) -> tuple[int, int]:
    """(nan, inf) in a block: one fast pass decides, exact counts only when something is off."""
    if np.isfinite(block).all():
        return 0, 0
    return int(np.count_nonzero(np.isnan(block))), int(np.count_nonzero(np.isinf(block)))


def _count_h5(dataset: h5py.Dataset, counter: _Counter, finding: LayerFinding,
              ranges: Ranges | None) -> None:
    """Tally a chunked or compressed dataset, read by h5py in slabs."""
    if dataset.shape == () or dataset.size == 0:
        counter.advance(dataset.size)
        finding.tally(np.atleast_1d(dataset[()]), ranges)
        return
    step = max(1, CHUNK_ELEMENTS // max(1, dataset.size // dataset.shape[0]))
    for start in range(0, dataset.shape[0], step):
        counter.task.check()
        finding.tally(dataset[start:start + step], ranges)
        counter.advance(min(step, dataset.shape[0] - start) * (dataset.size // dataset.shape[0]))


def _scan_raw(handle: BinaryIO, weights: list[Weight], base: int, counter: _Counter,
              findings: dict[str, LayerFinding], ranges: Ranges | None,
              member_end: int | None) -> int | None:
    """Scan contiguous weights straight from the file through one reused block buffer.

    With ``member_end``, every byte from ``base`` to it is read once in order (the gaps
    between weights too) and its crc32 returned, so the CRC check costs no second pass; None
    when weights overlap (the caller then checks the CRC on its own).
    """
    buffer = np.empty(CHUNK_ELEMENTS * 8, np.uint8)  # not zero-filled: it is read into
    checksum, position = 0, base
    for weight in sorted(weights, key=lambda w: w.offset):
        dtype = np.dtype(weight.dtype)
        if member_end is not None:
            if base + weight.offset < position:
                member_end = None
            else:
                checksum = _crc_span(handle, position, base + weight.offset, checksum, buffer)
        for start in range(0, weight.size, CHUNK_ELEMENTS):
            counter.task.check()
            size = min(CHUNK_ELEMENTS, weight.size - start)
            view = memoryview(buffer)[:size * dtype.itemsize]
            handle.seek(base + weight.offset + start * dtype.itemsize)
            if handle.readinto(view) != len(view):
                raise FsprecError("The weights ended early (truncated model file?).")
            if member_end is not None:
                checksum = zlib.crc32(view, checksum)
            findings[weight.layer].tally(np.frombuffer(view, dtype), ranges)
            counter.advance(size)
        position = base + weight.offset + weight.size * dtype.itemsize
    if member_end is None:
        return None
    return _crc_span(handle, position, member_end, checksum, buffer)


def _crc_span(handle: BinaryIO, start: int, end: int, checksum: int, buffer: np.ndarray) -> int:
    """crc32 of the file's bytes ``start..end`` continued from ``checksum``."""
    handle.seek(start)
    while start < end:
        view = memoryview(buffer)[:min(len(buffer), end - start)]
        if handle.readinto(view) != len(view):
            raise FsprecError("The weights ended early (truncated model file?).")
        checksum = zlib.crc32(view, checksum)
        start += len(view)
    return checksum


def _weights_member(model: ModelFolder) -> zipfile.ZipInfo:
    with open_zip(model.model_file) as archive:
        return archive.getinfo(WEIGHTS_MEMBER)


def scan_weights(folder: str | Path | ModelFolder, task: Task | None = None,
                 ranges: bool = False) -> NanReport:
    """Count NaN and Inf values per layer; memory stays bounded whatever the model's size.

    ``ranges=True`` also measures max |w| and the values beyond float16's range per layer.
    """
    task = task or Task()
    model = folder if isinstance(folder, ModelFolder) else open_model(folder)
    index = model.weights
    counter = _Counter(task, index.total_params)
    findings = {w.layer: LayerFinding(w.layer, 0) for w in index.weights}
    for weight in index.weights:
        findings[weight.layer].size += weight.size
    scratch = Ranges() if ranges else None
    floats = [w for w in index.weights if np.issubdtype(np.dtype(w.dtype), np.floating)]
    raw = [w for w in floats if w.offset is not None and index.base is not None]
    counter.advance(index.total_params - sum(w.size for w in floats))
    stored = model.format == "keras3" and index.base is not None
    member = _weights_member(model) if stored else None
    with open(model.model_file, "rb") as handle:
        checksum = _scan_raw(handle, raw, index.base or 0, counter, findings, scratch,
                             index.base + member.file_size if member else None)
    rest = [w for w in floats if w.offset is None or index.base is None]
    if rest:
        with open_weights(model.model_file, model.format) as root:
            try:
                for weight in rest:
                    _count_h5(root[weight.h5path], counter, findings[weight.layer], scratch)
            except H5_ERRORS as err:
                raise FsprecError(f"The weights in {model.model_file.name} are damaged and "
                                  "cannot be read.") from err
    if member is not None and checksum is not None:
        if checksum != member.CRC:
            raise FsprecError(f"{WEIGHTS_MEMBER} in {model.model_file.name} is damaged (CRC "
                              "mismatch).")
    elif model.format == "keras3":
        check_crcs(model.model_file, [WEIGHTS_MEMBER], cancelled=lambda: task.cancelled)
        task.check()
    return NanReport(model.model_file, list(findings.values()), ranges)

"""Scan a model's weights for NaN and Inf, streaming in bounded chunks, per layer."""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np

from .archive import check_crc, open_zip
from .errors import FsprecError
from .modelfile import ModelFolder, open_model
from .task import Task
from .weights import H5_ERRORS, WEIGHTS_MEMBER, Weight, open_weights

CHUNK_ELEMENTS = 4 * 1024 * 1024  # 16 MB of float32 at a time


@dataclass
class LayerFinding:
    """Non-finite values found in one layer's weights."""

    layer: str
    size: int
    nan: int = 0
    inf: int = 0

    @property
    def clean(self) -> bool:
        """True when every value is finite."""
        return self.nan == 0 and self.inf == 0


@dataclass
class NanReport:
    """The result of a NaN/Inf scan."""

    model_file: Path
    layers: list[LayerFinding] = field(default_factory=list)

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
                "layers": [vars(layer) | {"clean": layer.clean} for layer in self.layers]}


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


def _count_h5(dataset: h5py.Dataset, counter: _Counter) -> tuple[int, int]:
    """(nan, inf) of a chunked or compressed dataset, read by h5py in slabs."""
    if dataset.shape == () or dataset.size == 0:
        counter.advance(dataset.size)
        return _nonfinite(np.atleast_1d(dataset[()]))
    step = max(1, CHUNK_ELEMENTS // max(1, dataset.size // dataset.shape[0]))
    nan = inf = 0
    for start in range(0, dataset.shape[0], step):
        counter.task.check()
        found = _nonfinite(dataset[start:start + step])
        nan, inf = nan + found[0], inf + found[1]
        counter.advance(min(step, dataset.shape[0] - start) * (dataset.size // dataset.shape[0]))
    return nan, inf


def _scan_raw(handle: BinaryIO, weights: list[Weight], base: int, counter: _Counter,
              findings: dict[str, LayerFinding], member_end: int | None) -> int | None:
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
            nan, inf = _nonfinite(np.frombuffer(view, dtype))
            findings[weight.layer].nan += nan
            findings[weight.layer].inf += inf
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


def scan_weights(folder: str | Path | ModelFolder, task: Task | None = None) -> NanReport:
    """Count NaN and Inf values per layer; memory stays bounded whatever the model's size."""
    task = task or Task()
    model = folder if isinstance(folder, ModelFolder) else open_model(folder)
    index = model.weights
    counter = _Counter(task, index.total_params)
    findings = {w.layer: LayerFinding(w.layer, 0) for w in index.weights}
    for weight in index.weights:
        findings[weight.layer].size += weight.size
    floats = [w for w in index.weights if np.issubdtype(np.dtype(w.dtype), np.floating)]
    raw = [w for w in floats if w.offset is not None and index.base is not None]
    counter.advance(index.total_params - sum(w.size for w in floats))
    stored = model.format == "keras3" and index.base is not None
    member = _weights_member(model) if stored else None
    with open(model.model_file, "rb") as handle:
        checksum = _scan_raw(handle, raw, index.base or 0, counter, findings,
                             index.base + member.file_size if member else None)
    rest = [w for w in floats if w.offset is None or index.base is None]
    if rest:
        with open_weights(model.model_file, model.format) as root:
            try:
                for weight in rest:
                    nan, inf = _count_h5(root[weight.h5path], counter)
                    findings[weight.layer].nan += nan
                    findings[weight.layer].inf += inf
            except H5_ERRORS as err:
                raise FsprecError(f"The weights in {model.model_file.name} are damaged and "
                                  "cannot be read.") from err
    if member is not None and checksum is not None:
        if checksum != member.CRC:
            raise FsprecError(f"{WEIGHTS_MEMBER} in {model.model_file.name} is damaged (CRC "
                              "mismatch).")
    elif model.format == "keras3":
        check_crc(model.model_file, WEIGHTS_MEMBER, lambda: task.cancelled)
        task.check()
    return NanReport(model.model_file, list(findings.values()))

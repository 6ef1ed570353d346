"""Scan a model's weights for NaN and Inf, streaming in bounded chunks, per layer."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .modelfile import ModelFolder, open_model
from .task import Task
from .weights import open_weights

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


def _count(dataset: h5py.Dataset, counter: _Counter) -> tuple[int, int]:
    """(nan, inf) of one dataset, read in slabs along its first axis."""
    if not np.issubdtype(dataset.dtype, np.floating):
        counter.advance(dataset.size)
        return 0, 0
    if dataset.shape == () or dataset.size == 0:
        values = np.asarray(dataset[()])
        counter.advance(values.size)
        return int(np.isnan(values).sum()), int(np.isinf(values).sum())
    row = dataset.size // dataset.shape[0]
    step = max(1, CHUNK_ELEMENTS // max(1, row))
    nan = inf = 0
    for start in range(0, dataset.shape[0], step):
        counter.task.check()
        block = dataset[start:start + step]
        nan += int(np.count_nonzero(np.isnan(block)))
        inf += int(np.count_nonzero(np.isinf(block)))
        counter.advance(block.size)
    return nan, inf


def scan_weights(folder: str | Path | ModelFolder, task: Task | None = None) -> NanReport:
    """Count NaN and Inf values per layer; memory stays bounded whatever the model's size."""
    task = task or Task()
    model = folder if isinstance(folder, ModelFolder) else open_model(folder)
    index = model.weights
    counter = _Counter(task, index.total_params)
    findings: dict[str, LayerFinding] = {}
    with open_weights(model.model_file, model.format) as root:
        for weight in index.weights:
            finding = findings.setdefault(weight.layer, LayerFinding(weight.layer, 0))
            nan, inf = _count(root[weight.h5path], counter)
            finding.nan += nan
            finding.inf += inf
            finding.size += weight.size
    return NanReport(model.model_file, list(findings.values()))

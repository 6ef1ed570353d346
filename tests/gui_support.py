"""Helpers shared by the GUI tests: wait for a model on screen, read the tree, answer dialogs."""
from __future__ import annotations

import io
import threading
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtWidgets import QDialog

from fsprec.core.task import Task
from fsprec.gui.dialogs import ConversionDialog
from fsprec.gui.layer_model import LAYER_ROLE, Column

TIMEOUT_MS = 20_000


def wait_shown(qtbot, window, start) -> None:
    """Run ``start()`` and wait until the model's tree and parameter counts are on screen."""
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        start()


def shown_layers(window) -> dict[str, tuple[str, str]]:
    """path -> (dtype cell, eligible cell) of every row of the layer tree."""
    model, found = window.panel.model, {}

    def visit(parent):
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            layer = index.data(LAYER_ROLE)
            found[layer.path] = (index.siblingAtColumn(Column.DTYPE).data(),
                                 index.siblingAtColumn(Column.ELIGIBLE).data())
            visit(index)
    visit(QModelIndex())
    return found


def accept_dialogs(monkeypatch) -> list[ConversionDialog]:
    """Make the conversion dialog answer "Switch" at once; returns the dialogs shown."""
    shown: list[ConversionDialog] = []

    def exec_(dialog):
        shown.append(dialog)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ConversionDialog, "exec", exec_)
    return shown


def switch_and_wait(qtbot, window) -> None:
    """Click the switch button and wait until the converted model is shown again."""
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        qtbot.mouseClick(window.panel.switch_button, Qt.MouseButton.LeftButton)


def hold_in(stage: str, monkeypatch) -> threading.Event:
    """Make a core job sit in ``stage`` until it is cancelled; returns "reached" event."""
    reached = threading.Event()
    original = Task.progress

    def progress(task, name, done, total):
        original(task, name, done, total)
        if name == stage:
            reached.set()
            while not task.cancelled:
                time.sleep(0.005)

    monkeypatch.setattr(Task, "progress", progress)
    return reached


class Heartbeat:
    """Measures the longest gap between ticks of a 5 ms timer on the GUI thread."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now

    def __enter__(self) -> Heartbeat:
        self._last = time.perf_counter()
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.stop()


def all_indexes(model):
    """Every column-0 index of a tree model, depth first."""
    pending = [model.index(row, 0) for row in range(model.rowCount())]
    while pending:
        index = pending.pop(0)
        yield index
        pending += [model.index(row, 0, index) for row in range(model.rowCount(index))]


def poison(model_file: Path, dataset: str) -> None:
    """Write a NaN into one weight of a .keras file (test set-up only)."""
    with zipfile.ZipFile(model_file) as archive:
        members = [(info, archive.read(info.filename)) for info in archive.infolist()]
    weights = io.BytesIO(dict((i.filename, d) for i, d in members)["model.weights.h5"])
    with h5py.File(weights, "r+") as h5:
        h5[dataset][0, 0] = np.nan
    with zipfile.ZipFile(model_file, "w") as archive:
        for info, data in members:
            archive.writestr(info, weights.getvalue() if info.filename == "model.weights.h5"
                             else data)

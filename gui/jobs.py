"""The functions the GUI runs on worker threads: thin compositions of core calls, no Qt.

Each takes the core :class:`~fsprec.core.task.Task` last, as :class:`~fsprec.gui.workers.Job`
expects. Core calls that already have that shape (``convert.run``, ``scan.scan``,
``nanscan.scan_weights``, ``restore.restore``) are run directly; validation runs Keras in a
child process, so nothing here imports it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from fsprec.core import demo, open_model, traincfg
from fsprec.core.convert import Plan, plan
from fsprec.core.errors import FsprecError
from fsprec.core.layers import Layer
from fsprec.core.modelfile import ModelFolder
from fsprec.core.scan import ScanEntry, scan
from fsprec.core.task import Task
from fsprec.core.validate import Options, ValidationResult, run_validation
from fsprec.core.validate.runner import OnEta, OnStage


@dataclass
class Opened:
    """A model folder read for display: its tree without parameter counts, and its pins."""

    folder: ModelFolder
    tree: list[Layer]
    pins: list[str]


@dataclass
class Browse:
    """A folder that is not a model itself but holds model folders."""

    root: Path
    entries: list[ScanEntry]


@dataclass
class Proposal:
    """A checked conversion, and notes for the confirmation dialog."""

    plan: Plan
    notes: list[str] = field(default_factory=list)


def open_folder(path: Path, task: Task) -> Opened:
    """Open a model folder and build its layer tree without touching the weights file."""
    task.progress("Reading model", 0, 1)
    folder = open_model(path)
    tree = folder.layer_tree(with_params=False)
    pins = folder.pinned  # computes the precision too, here rather than on the GUI thread
    task.progress("Reading model", 1, 1)
    return Opened(folder, tree, pins)


def open_or_browse(path: Path, task: Task) -> Opened | Browse:
    """Open ``path`` as a model folder or, when it holds none itself, list the ones below it."""
    try:
        return open_folder(path, task)
    except FsprecError:
        entries = scan(path, task) if path.is_dir() else []
        if not entries or any(entry.path == path for entry in entries):
            raise  # no models at all, or the folder's own model is broken
        return Browse(path, entries)


def open_demo(data_dir: Path, task: Task) -> Opened:
    """Write the demo model on first use, then open it."""
    task.progress("Preparing the demo model", 0, 1)
    return open_folder(demo.ensure_demo(data_dir), task)


def layer_params(folder: ModelFolder, task: Task) -> dict[str, int]:
    """Parameter counts per layer path (reads h5 metadata only, never weight data)."""
    task.progress("Counting parameters", 0, 1)
    tree = folder.layer_tree(with_params=True)
    task.check()
    return {layer.path: layer.params for top in tree for layer in top.walk()}


def plan_switch(path: Path, target: str, pins: Sequence[str], faceswap_folder: str,
                task: Task) -> Proposal:
    """Plan a precision switch; checks Faceswap's train.ini when its folder is set."""
    task.progress("Checking", 0, 1)
    notes: list[str] = []
    train_ini = None
    if faceswap_folder:
        try:
            train_ini = traincfg.locate(faceswap_folder)
        except FsprecError as err:
            notes.append(f"{err} Set the Faceswap folder in Settings to check it.")
    proposal = Proposal(plan(path, target, list(pins), train_ini=train_ini), notes)
    task.progress("Checking", 1, 1)
    return proposal


def validate(path: Path, options: Options, device: str, backend: str, python: str | None,
             on_stage: OnStage, on_eta: OnEta, task: Task) -> ValidationResult:
    """A validation pass in a child process (``python``, None: this one) on the Keras
    ``backend`` (``auto`` or a name); each measured stage goes to ``on_stage``, the time left
    to ``on_eta`` (both called on the worker thread).

    Cancel ends the child (within about a second) and raises :class:`Cancelled`; a missing
    backend or a Python without Keras is a :class:`FsprecError` naming what to install.
    """
    task.progress("Starting Keras", 0, 0)
    return run_validation(path, options, device, on_progress=task.progress,
                          cancel=task.cancel_event, on_stage=on_stage, on_eta=on_eta,
                          backend=backend, python=python)

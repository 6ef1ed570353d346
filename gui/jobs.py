"""The functions the GUI runs on worker threads: thin compositions of core calls, no Qt.

Each takes the core :class:`~fsprec.core.task.Task` last, as :class:`~fsprec.gui.workers.Job`
expects. Core calls that already have that shape (``convert.run``, ``scan.scan``,
``nanscan.scan_weights``, ``restore.restore``) are run directly; validation runs Keras in a
child process, so nothing here imports it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from fsprec.core import demo, lock, open_model, procs, traincfg
from fsprec.core.convert import Plan, plan, plan_consistent
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
    """Plan a precision switch, saying what Faceswap will do at its next start."""
    return _propose(lambda **options: plan(path, target, list(pins), **options),
                    faceswap_folder, task)


def plan_make_consistent(path: Path, faceswap_folder: str, task: Task) -> Proposal:
    """Plan the "Make consistent" conversion of a partial model (core's
    :func:`~fsprec.core.convert.plan_consistent`)."""
    return _propose(lambda **options: plan_consistent(path, **options), faceswap_folder, task)


def _propose(make: Callable[..., Plan], faceswap_folder: str, task: Task) -> Proposal:
    """A plan from ``make(**options)``, Faceswap found from the GUI's setting (a setting that
    is not a Faceswap folder is a note, and Faceswap is then searched for); when its train.ini
    would switch the model back, the plan carries that train.ini so the dialog can update it."""
    task.progress("Checking", 0, 1)
    notes: list[str] = []
    faceswap = faceswap_folder or None
    if faceswap and not _is_faceswap(Path(faceswap)):
        notes.append(f"The Faceswap folder in Settings ({faceswap}) is not a Faceswap folder; "
                     "fsprec looked for Faceswap elsewhere.")
        faceswap = None
    proposal = make(faceswap=faceswap)
    found = proposal.next_start
    if proposal.train_ini is None and found is not None and found.can_update:
        proposal = replace(proposal, train_ini=traincfg.read(found.train_ini))
    task.progress("Checking", 1, 1)
    return Proposal(proposal, notes)


def _is_faceswap(folder: Path) -> bool:
    try:
        traincfg.locate(folder)
        return True
    except FsprecError:
        return traincfg.is_faceswap_tree(folder.expanduser())


@dataclass(frozen=True)
class InUse:
    """Someone else is using the open model: Faceswap training it, or another fsprec
    changing it (``training`` False)."""

    training: bool
    pid: int

    @property
    def message(self) -> str:
        """What the window says about it."""
        if self.training:
            return "Faceswap is training this model"
        return f"Another fsprec is changing this model (pid {self.pid})"


def in_use(path: Path, task: Task) -> InUse | None:
    """Whether Faceswap trains the model at ``path`` or another fsprec writes it (a process
    scan: tens of milliseconds)."""
    training = procs.faceswap_training(path)
    if training is not None:
        return InUse(True, training.pid)
    pid = lock.busy(path)
    return InUse(False, pid) if pid is not None else None


@dataclass(frozen=True)
class Setup:
    """What a first start found: Faceswap's install and a folder that holds its models."""

    faceswap: Path | None
    models: Path | None


def find_setup(home: Path, task: Task) -> Setup:
    """Look for Faceswap in its usual places under ``home`` and for its models folder: a
    ``models`` folder inside or beside the Faceswap tree, else the folder that holds a model
    folder (one with a ``*_state.json``) two levels below it. Bounded: two directory levels."""
    task.progress("Looking for Faceswap", 0, 1)
    faceswap = traincfg.find_faceswap(places=traincfg.usual_places(home))
    models = _models_near(faceswap) if faceswap is not None else None
    task.progress("Looking for Faceswap", 1, 1)
    return Setup(faceswap, models)


def _models_near(faceswap: Path) -> Path | None:
    for folder in (faceswap / "models", faceswap.parent / "models"):
        if folder.is_dir():
            return folder
    state = next(faceswap.glob("*/*/*_state.json"), None)
    return state.parent.parent if state is not None else None


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

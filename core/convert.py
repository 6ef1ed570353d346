"""The conversion job: switch a saved model's precision, losslessly and atomically.

``plan()`` checks everything and computes the new config and state without touching the disk
(the GUI shows it for confirmation); ``run()`` carries it out:

1. the new model is written to a temp file beside the original: ``config.json`` replaced, every
   other member copied raw (``.keras``), or a byte copy with ``model_config`` rewritten
   (``.h5``); the temp file is fsynced and verified (config re-read, untouched members' CRCs).
   Meanwhile the guard's child process (:mod:`.h5guard`, started by :func:`plan`) reads the
   weights' HDF5 and proves every copied member's CRC; its answer is awaited before step 2;
2. Faceswap-style ``.bk`` backups of model and state (hard links: no second copy);
3. model and state are replaced through a journal (all or nothing across a crash);
4. optionally Faceswap's ``train.ini`` is updated.

Cancel is honoured until step 3; a cancelled or failed job leaves the folder as it was.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import atomic, faceswap, h5guard, lock, procs, traincfg
from .archive import open_zip, rewrite_member
from .config import entry_name, iter_leaves
from .errors import FsprecError
from .layers import MIXED_POLICIES, POLICIES, kept_float32_reason
from .modelfile import CONFIG_MEMBER, ModelFolder, find_model_file, open_model, plugin_of
from .precision import changed_layers, switch_precision
from .state import State
from .task import Task

_MARGIN = 4 * 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """A checked conversion, ready to run; nothing has been written yet.

    Frozen: what the user confirmed is what runs. A changed choice is a new plan
    (``dataclasses.replace(plan, update_train_ini=True)``).
    """

    model: ModelFolder
    target: str
    pinned: list[str]
    config: dict
    changes: list[tuple[str, str, str]]
    state: State | None
    out_dir: Path | None = None
    backup: bool = True
    train_ini: traincfg.TrainIni | None = None
    update_train_ini: bool = False
    warnings: list[str] = field(default_factory=list)
    next_start: traincfg.NextStart | None = None
    fingerprint: atomic.Fingerprint = ()

    @property
    def destination(self) -> Path:
        """The folder the converted model is written to."""
        return self.out_dir or self.model.path

    @property
    def in_place(self) -> bool:
        """True when the model is converted where it is."""
        return self.out_dir is None

    @property
    def state_changed(self) -> bool:
        """True when the state file's content changes."""
        return self.state is not None and self.model.state is not None and (
            self.state.data != self.model.state.data)

    @property
    def nothing_to_do(self) -> bool:
        """True when the model already has the requested precision (and pins)."""
        return self.in_place and not self.changes and not self.state_changed

    @property
    def backup_files(self) -> list[Path]:
        """The ``.bk`` files this conversion writes."""
        if not (self.backup and self.in_place):
            return []
        files = [self.model.model_file]
        if self.model.state_file is not None:
            files.append(self.model.state_file)
        return [faceswap.backup_of(f) for f in files]

    def summary(self) -> list[str]:
        """Plain sentences describing what will happen."""
        name = self.model.model_file.name
        if self.nothing_to_do:
            return [f"{name} is already {self.target}; nothing to change.",
                    *([self.next_start.line] if self.next_start else [])]
        lines = [f"Switch {name} from {self.model.precision} to {self.target}: "
                 f"{len(self.changes)} layer(s) change dtype policy; weights are not touched."]
        if self.pinned:
            lines.append(f"Kept in float32 (pinned): {', '.join(self.pinned)}.")
        if self.backup_files:
            lines.append("Backups: " + ", ".join(p.name for p in self.backup_files) + ".")
        if not self.in_place:
            lines.append(f"The converted copy is written to {self.destination}; "
                         "the original is left as it is.")
        target_mixed = self.target in MIXED_POLICIES
        if self.train_ini is not None and self.update_train_ini:
            lines.append(f"train.ini will be set to mixed_precision {target_mixed} "
                         f"({self.train_ini.path}; backed up first as train.ini.bk).")
        elif self.next_start is not None:
            lines.append(self.next_start.line)
        elif self.train_ini is not None:
            lines.append(self.train_ini.status(target_mixed))
        lines.extend(self.warnings)
        return lines


@dataclass
class Result:
    """What a conversion did."""

    model_file: Path
    state_file: Path | None
    backups: list[Path]
    changed: int
    messages: list[str]


def _check_pins(model: ModelFolder, target: str, pins: list[str]) -> None:
    if not pins:
        return
    if target not in MIXED_POLICIES:
        raise FsprecError("Pins keep layers in float32 inside a mixed model; they have no "
                          "meaning when converting to float32.")
    names = model.layer_names()
    unknown = [p for p in pins if p not in names]
    if unknown:
        raise FsprecError(f"No layer named {', '.join(map(repr, unknown))} in "
                          f"{model.model_file.name}; `fsprec inspect` lists the layer names.")
    eligible = set(model.eligible)
    entries = {entry_name(e): e for _, e in iter_leaves(model.config_layers)}
    for pin in pins:
        if pin not in eligible:
            reason = kept_float32_reason(entries[pin]) or "it is not eligible"
            raise FsprecError(f"Layer {pin!r} cannot be pinned: it always stays float32 "
                              f"({reason}).")


def _new_state(model: ModelFolder, target: str) -> State | None:
    """The state as Faceswap saves it after switching the model to ``target``."""
    if model.state is None:
        return None
    data = faceswap.saved_state(copy.deepcopy(model.state.data), model.plugin)
    state = State(data, model.state.path)
    state.mixed_precision = target in MIXED_POLICIES
    if not state.mixed_precision_layers:
        state.add_mixed_precision_layers(model.eligible)
    return state


def plan(folder: str | Path, target: str, pins: list[str] | tuple[str, ...] = (),
         out_dir: str | Path | None = None, backup: bool = True,
         train_ini: str | Path | None = None, update_train_ini: bool = False,
         faceswap: str | Path | None = None, wait: bool = True) -> Plan:
    """Check a conversion and compute its result; raises :class:`FsprecError` on bad input.

    ``train_ini`` is the Faceswap folder (or its train.ini) to read and, with
    ``update_train_ini``, to update; ``faceswap`` (the GUI's setting) only helps find Faceswap
    for :attr:`Plan.next_start`, which otherwise searches as :func:`traincfg.find_faceswap`.
    ``wait=False`` returns before the guard's child has finished reading the weights (a
    conversion run at once: :func:`run` waits for it before it commits, and refuses then).
    """
    if target not in POLICIES:
        raise FsprecError(f"Unknown precision {target!r}; choose one of {', '.join(POLICIES)}.")
    folder = Path(folder).expanduser().resolve()
    notes = recover(folder)
    prints = _fingerprint(folder)
    model = open_model(folder)
    with model.reading(crc=True).stopped_on_error():  # the child reads meanwhile
        if model.state_problem and model.state_file is not None:
            raise FsprecError(f"{model.state_problem} Fix or restore it before converting.")
        pins = list(dict.fromkeys(pins))
        _check_pins(model, target, pins)
        config = switch_precision(model.config, model.eligible, target, pins, model.keras_major)
        out = Path(out_dir).expanduser().resolve() if out_dir else None
        if out == folder:
            out = None
        warnings: list[str] = list(notes)
        if model.state is None:
            warnings.append(f"{model.state_problem} Only the model file is converted.")
        if model.eligible_source == "derived" and target in MIXED_POLICIES:
            warnings.append("This model has no stored list of mixed-precision layers; fsprec "
                            "derived it and stores it in the state file.")
        if target == "mixed_bfloat16":
            warnings.append("mixed_bfloat16 is an fsprec extension: Faceswap trains in "
                            "mixed_float16 and will not train this model as it is.")
        ini = traincfg.read(train_ini) if train_ini is not None else None
        next_start = traincfg.next_start(target in MIXED_POLICIES, out or folder,
                                         setting=train_ini or faceswap)
        if _fingerprint(folder) != prints:
            raise FsprecError(f"{model.model_file.name} changed while fsprec was reading it; "
                              "try again when nothing else is writing it.")
        planned = Plan(model, target, pins, config, changed_layers(model.config, config),
                       _new_state(model, target), out, backup, ini, update_train_ini, warnings,
                       next_start, prints)
        if wait or planned.nothing_to_do:
            model.check_readable()
        return planned


def plan_consistent(folder: str | Path, **options) -> Plan:
    """The "Make consistent" conversion: to the model's
    :attr:`~fsprec.core.modelfile.ModelFolder.consistent_precision`, which puts every layer
    where Faceswap's switch would and sets the state's flag to match (options as :func:`plan`).
    """
    return plan(folder, open_model(Path(folder).expanduser()).consistent_precision, **options)


def recover(folder: Path) -> list[str]:
    """Complete or set aside what an interrupted run left in ``folder`` (under its lock);
    returns sentences for the user."""
    if not folder.is_dir() or not (atomic.needs_recovery(folder)
                                   or (folder / lock.LOCK_NAME).exists()):
        return []
    with lock.writing(folder):
        return atomic.recover(folder).notes


def refuse_if_in_use(model: ModelFolder) -> None:
    """Raise :class:`FsprecError` while Faceswap trains this model or another program has its
    model or state file open."""
    training = procs.faceswap_training(model.path)
    if training is not None:
        raise FsprecError(f"Faceswap is training this model (pid {training.pid}); stop "
                          "training first. Nothing was changed.")
    files = [p for p in (model.model_file, model.state_file) if p is not None]
    holder = procs.holding_open(files, ours=h5guard.reader_pids)
    if holder is not None:
        raise FsprecError(f"{holder.name} (pid {holder.pid}) has this model's files open; "
                          "close it first. Nothing was changed.")


def _fingerprint(folder: Path) -> atomic.Fingerprint:
    model_file = find_model_file(folder)
    return atomic.fingerprint([model_file, faceswap.state_file(folder, plugin_of(model_file))])


def _check_unchanged(plan_: Plan) -> None:
    if _fingerprint(plan_.model.path) != plan_.fingerprint:
        raise FsprecError(f"{plan_.model.model_file.name} or its state changed since fsprec read "
                          "it; nothing was changed. Open the folder again.")


def _prepare_destination(plan_: Plan) -> None:
    dest = plan_.destination
    if not plan_.in_place:
        if dest.exists() and not dest.is_dir():
            raise FsprecError(f"{dest} exists and is not a folder.")
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise FsprecError(f"Cannot create {dest} ({err.strerror or err}).") from err


def _check_destination(plan_: Plan) -> None:
    dest = plan_.destination
    if not plan_.in_place:
        taken = [p.name for p in (dest / plan_.model.model_file.name,
                                  faceswap.state_file(dest, plan_.model.plugin)) if p.exists()]
        if taken:
            raise FsprecError(f"{dest} already holds {', '.join(taken)}; choose an empty "
                              "folder for the converted copy.")
    atomic.check_writable(dest)
    needed = plan_.model.model_file.stat().st_size + _MARGIN
    atomic.check_free_space(dest, needed)


def _write_keras3(source: Path, target: Path, config: dict, task: Task) -> None:
    data = json.dumps(config).encode("utf-8")
    with atomic.open_temp(target) as handle:
        rewrite_member(source, handle, CONFIG_MEMBER, data,
                       progress=lambda d, t: task.progress("Writing model", d, t),
                       cancelled=lambda: task.cancelled)
    _verify_keras3(source, atomic.temp_path(target), config)


def _verify_keras3(source: Path, written: Path, config: dict) -> None:
    with open_zip(source) as zin, open_zip(written) as zout:
        before, after = zin.infolist(), zout.infolist()
        if [i.filename for i in before] != [i.filename for i in after]:
            raise FsprecError("Verification failed: the written zip lost or reordered members.")
        for old, new in zip(before, after, strict=True):
            if old.compress_type != new.compress_type:
                raise FsprecError(f"Verification failed: {old.filename} changed compression.")
            if old.filename != CONFIG_MEMBER and (old.CRC, old.file_size, old.compress_size) != (
                    new.CRC, new.file_size, new.compress_size):
                raise FsprecError(f"Verification failed: {old.filename} differs from the source.")
        if json.loads(zout.read(CONFIG_MEMBER)) != config:
            raise FsprecError("Verification failed: the written config differs.")


def run(plan_: Plan, task: Task | None = None) -> Result:
    """Carry out a :class:`Plan`. Raises :class:`FsprecError` (nothing changed) on failure.

    The destination folder's writer lock is held throughout; the model must not be in use by
    Faceswap or another program, and must be exactly what :func:`plan` read. The look for
    programs using it (every process's open files) runs beside the copy and is heard before
    the commit.
    """
    task = task or Task()
    model = plan_.model
    if plan_.nothing_to_do:
        return Result(model.model_file, model.state_file, [], 0, plan_.summary())
    _prepare_destination(plan_)
    with model.reading(crc=True).stopped_on_error(), lock.writing(plan_.destination), \
            ThreadPoolExecutor(1) as looking:
        in_use = looking.submit(refuse_if_in_use, model)
        atomic.recover(plan_.destination)
        _check_unchanged(plan_)
        _check_destination(plan_)
        _write_all(plan_, task, in_use.result)
    return _report(plan_)


def _write_all(plan_: Plan, task: Task, in_use_answer: Callable[[], None]) -> None:
    """Stage, verify, back up and commit; ``in_use_answer`` raises when the model is in use
    (heard before the backups are staged)."""
    model = plan_.model
    dest = plan_.destination
    target_model = dest / model.model_file.name
    target_state = faceswap.state_file(dest, model.plugin)
    moves = [(atomic.temp_path(target_model), target_model)]
    with atomic.staged(moves, "Writing"):
        task.check()
        if model.format == "keras3":
            _write_keras3(model.model_file, target_model, plan_.config, task)
        else:
            from . import h5model  # h5py: loaded for Keras 2 files only

            h5model.write(model.model_file, target_model, plan_.config, task)
        if plan_.state is not None:
            atomic.write_temp(target_state, plan_.state.to_bytes())
            moves.append((atomic.temp_path(target_state), target_state))
        task.progress("Verifying", 0, 1)
        model.check_readable(lambda: task.cancelled)
        task.check()
        in_use_answer()
        _check_unchanged(plan_)
        if plan_.in_place and plan_.backup:
            task.progress("Backing up", 0, 1)
            sources = [p for p in (model.model_file, model.state_file) if p is not None]
            for source, backup in zip(sources, plan_.backup_files, strict=True):
                moves.insert(0, (atomic.stage_backup(source, backup), backup))
        task.check()
        task.progress("Switching", 0, 1)
        atomic.commit(dest, moves)


def _report(plan_: Plan) -> Result:
    model = plan_.model
    dest = plan_.destination
    target_model = dest / model.model_file.name
    target_state = faceswap.state_file(dest, model.plugin)
    messages = [f"Switched {model.model_file.name} to {plan_.target}: "
                f"{len(plan_.changes)} layer(s) changed."]
    if plan_.train_ini is not None:
        target_mixed = plan_.target in MIXED_POLICIES
        if plan_.update_train_ini:
            ini = traincfg.write_mixed_precision(plan_.train_ini.path, target_mixed)
            messages.append(f"Updated {ini.path}: mixed_precision = {ini.mixed_precision}.")
        else:
            messages.append(plan_.train_ini.status(target_mixed))
    messages.extend(plan_.warnings)
    return Result(target_model, target_state if plan_.state is not None else None,
                  plan_.backup_files, len(plan_.changes), messages)


def convert(folder: str | Path, target: str, pins: list[str] | tuple[str, ...] = (),
            task: Task | None = None, **options) -> Result:
    """Plan and run a conversion in one call (see :func:`plan` for the options)."""
    return run(plan(folder, target, pins, wait=False, **options), task)


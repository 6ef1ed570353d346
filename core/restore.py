"""Restore a model from its ``.bk`` backups, as Faceswap's model tool does.

The current model files (and the ``<plugin>_logs`` folder) are first moved, never deleted,
into ``<plugin>_archived_<YYYYmmdd_HHMMSS>`` (the first free second) inside the model folder;
then each ``.bk`` is copied back under its original name, and the log sessions the restored
state knows are copied back from the archive.
"""
from __future__ import annotations

import os
import shutil
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from . import atomic, faceswap, lock, procs
from .errors import FsprecError
from .modelfile import find_model_file
from .state import State
from .task import Task


@dataclass
class RestoreResult:
    """What a restore did."""

    archive_dir: Path
    restored: list[Path]
    logs: list[Path]


def _plugin(folder: Path) -> str:
    backups = sorted(folder.glob("*.bk"))
    try:
        return find_model_file(folder).stem
    except FsprecError:
        models = [b for b in backups if faceswap.is_model_backup(b)]
        if len(models) != 1:
            raise
        return Path(models[0].stem).stem


def backups_of(folder: str | Path) -> list[Path]:
    """The ``.bk`` files of the folder's model."""
    folder = Path(folder)
    plugin = _plugin(folder)
    return sorted(p for p in folder.glob(f"{plugin}*.bk") if p.is_file())


def can_restore(folder: str | Path) -> bool:
    """True when the folder has a model backup to restore."""
    try:
        return any(faceswap.is_model_backup(p) for p in backups_of(folder))
    except FsprecError:
        return False


def _archivable(folder: Path, plugin: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(plugin) and (
        (p.is_file() and not p.name.endswith(faceswap.BACKUP_SUFFIX)) or
        (p.is_dir() and p.name == faceswap.logs_dir(folder, plugin).name)))


def _sessions(state_file: Path) -> list[str]:
    try:
        return [f"session_{key}" for key in State.load(state_file).sessions]
    except FsprecError:  # no usable state: no log session is copied back
        return []


def _archive_dir(folder: Path, plugin: str) -> Path:
    """A new, empty archive folder that no other restore can take: the first free second from
    now on (``mkdir`` is atomic), so the name keeps Faceswap's ``_archived_<date>_<time>``."""
    now = datetime.now()
    for offset in range(1000):
        archive = faceswap.archive_dir(folder, plugin, now + timedelta(seconds=offset))
        try:
            archive.mkdir()
            return archive
        except FileExistsError:
            continue
    raise FsprecError(f"Too many archive folders named {plugin}_archived_* in {folder}.")


def _check_sources(backups: list[Path], targets: list[Path]) -> None:
    for path in backups:
        if path.is_symlink() or not path.is_file():
            raise FsprecError(f"{path.name} is not a plain file; nothing was restored.")
    for path in targets:
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise FsprecError(f"{path.name} is not a plain file; move it away and try again. "
                              "Nothing was restored.")


def restore(folder: str | Path, task: Task | None = None) -> RestoreResult:
    """Restore the model in ``folder`` from its ``.bk`` files; nothing is ever deleted.

    All or nothing: every backup is copied to a temp file and every file to be archived is
    checked first, under the folder's writer lock; a failure while moving puts back what was
    moved, so the folder is as it was.
    """
    task = task or Task()
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise FsprecError(f"{folder} is not a folder.")
    with lock.writing(folder):
        training = procs.faceswap_training(folder)
        if training is not None:
            raise FsprecError(f"Faceswap is training this model (pid {training.pid}); stop "
                              "training first. Nothing was restored.")
        atomic.recover(folder)
        return _restore(folder, task)


def _restore(folder: Path, task: Task) -> RestoreResult:
    plugin = _plugin(folder)
    backups = backups_of(folder)
    if not any(faceswap.is_model_backup(p) for p in backups):
        raise FsprecError(f"No model backup ({plugin}.keras.bk or {plugin}.h5.bk) in {folder}.")
    current = _archivable(folder, plugin)
    targets = [faceswap.backed_up(b) for b in backups]
    _check_sources(backups, targets)
    atomic.check_writable(folder)
    atomic.check_free_space(folder, sum(p.stat().st_size for p in backups) + 4 * 1024 * 1024)
    prints = atomic.fingerprint([*backups, *current])
    staged: list[Path] = []
    try:
        for index, backup in enumerate(backups):
            task.check()
            task.progress("Restoring", index, len(backups))
            staged.append(atomic.temp_path(targets[index]))
            atomic.copy_durable(backup, staged[-1])  # a copy, never a link: Faceswap saves
        task.check()                                 # in place
        if atomic.fingerprint([*backups, *current]) != prints:
            raise FsprecError("The model's files changed while restoring; nothing was "
                              "restored.")
        archive = _archive_dir(folder, plugin)
        _move_all(folder, current, archive, staged, targets)
    except BaseException as err:
        for path in staged:
            path.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise FsprecError(f"Restoring failed ({err.strerror or err}); nothing was "
                              "restored.") from err
        raise
    try:
        logs = _restore_logs(folder, plugin, archive)
    except OSError as err:
        raise FsprecError(f"The model was restored, but copying its training logs back from "
                          f"{archive.name} failed ({err.strerror or err}).") from err
    task.progress("Restoring", len(backups), len(backups))
    return RestoreResult(archive, targets, logs)


def _move_all(folder: Path, current: list[Path], archive: Path, staged: list[Path],
              targets: list[Path]) -> None:
    """Archive the current files, then put the staged copies in place; on any error, undo
    every move made (newest first) and remove the archive folder."""
    done: list[tuple[Path, Path]] = []
    try:
        for path in current:
            os.replace(path, archive / path.name)
            done.append((archive / path.name, path))
        for tmp, target in zip(staged, targets, strict=True):
            if target.exists():
                raise FsprecError(f"{target.name} appeared while restoring; nothing was "
                                  "restored.")
            os.replace(tmp, target)
            done.append((target, tmp))
        atomic.fsync_dir(folder)
    except BaseException:
        for moved, back in reversed(done):
            with suppress(OSError):
                os.replace(moved, back)
        with suppress(OSError):
            archive.rmdir()
        atomic.fsync_dir(folder)
        raise


def _restore_logs(folder: Path, plugin: str, archive: Path) -> list[Path]:
    archived_logs = faceswap.logs_dir(archive, plugin)
    if not archived_logs.is_dir():
        return []
    wanted = set(_sessions(faceswap.state_file(folder, plugin)))
    restored = []
    for session in sorted(archived_logs.rglob("session_*")):
        if session.is_dir() and session.name in wanted:
            dest = folder / session.relative_to(archive)
            shutil.copytree(session, dest)
            restored.append(dest)
    return restored

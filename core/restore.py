"""Restore a model from its ``.bk`` backups, as Faceswap's model tool does.

The current model files (and the ``<plugin>_logs`` folder) are first moved, never deleted,
into ``<plugin>_archived_<YYYYmmdd_HHMMSS>`` inside the model folder; then each ``.bk`` is
copied back under its original name, and the log sessions the restored state knows are
copied back from the archive.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import atomic, faceswap
from .errors import FsprecError
from .modelfile import find_model_file
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
        sessions = json.loads(state_file.read_text()).get("sessions", {})
    except (OSError, ValueError, AttributeError):
        return []
    return [f"session_{key}" for key in sessions] if isinstance(sessions, dict) else []


def restore(folder: str | Path, task: Task | None = None) -> RestoreResult:
    """Restore the model in ``folder`` from its ``.bk`` files; nothing is ever deleted."""
    task = task or Task()
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise FsprecError(f"{folder} is not a folder.")
    plugin = _plugin(folder)
    backups = backups_of(folder)
    if not any(faceswap.is_model_backup(p) for p in backups):
        raise FsprecError(f"No model backup ({plugin}.keras.bk or {plugin}.h5.bk) in {folder}.")
    atomic.check_writable(folder)
    atomic.check_free_space(folder, sum(p.stat().st_size for p in backups) + 4 * 1024 * 1024)
    targets = [faceswap.backed_up(b) for b in backups]
    staged: list[Path] = []
    try:
        for index, backup in enumerate(backups):
            task.check()
            task.progress("Restoring", index, len(backups))
            staged.append(atomic.temp_path(targets[index]))
            _copy(backup, staged[-1])  # a copy, never a link: Faceswap saves in place
    except BaseException:
        for path in staged:
            path.unlink(missing_ok=True)
        raise
    archive = faceswap.archive_dir(folder, plugin, datetime.now())
    archive.mkdir()
    for path in _archivable(folder, plugin):
        os.replace(path, archive / path.name)
    for tmp, target in zip(staged, targets):
        os.replace(tmp, target)
    atomic.fsync_dir(folder)
    logs = _restore_logs(folder, plugin, archive)
    task.progress("Restoring", len(backups), len(backups))
    return RestoreResult(archive, targets, logs)


def _copy(source: Path, dest: Path) -> None:
    shutil.copyfile(source, dest)
    with open(dest, "rb+") as handle:
        os.fsync(handle.fileno())


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

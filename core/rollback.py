"""Roll a model back to one of its healthy versions, as Faceswap's own restore does it.

``plan()`` checks the request and lists what will change without touching the disk; ``run()``
carries it out:

* a ``.bk`` backup is restored by :func:`fsprec.core.restore.restore` (Faceswap's restore);
* a snapshot (``<model_dir>_snapshot_<N>_iters``) or an archive (``<plugin>_archived_<ts>``)
  is restored the same way: its files are first copied beside the live ones under temp names,
  then the live files (every ``<plugin>*`` file except ``.bk`` backups, and ``<plugin>_logs``)
  are moved, never deleted, into a new ``<plugin>_archived_<YYYYmmdd_HHMMSS>`` folder, the
  copies are committed through :func:`fsprec.core.atomic.commit`, and the log sessions the
  restored state knows are copied back (from the version's own logs, else from the archive).

The version and the live files must be as they were when the plan was made, or ``run()``
refuses. Cancel is honoured until the live files are moved.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import atomic, lock, restore
from .errors import FsprecError
from .health import CLEAN, DAMAGED, UNREADABLE, Version, check_version, timeline
from .health_cache import HealthCache
from .state import State
from .task import Task

_MARGIN = 4 * 1024 * 1024


def _fingerprint(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    stats = []
    for path in paths:
        info = path.stat()
        stats.append((str(path), info.st_size, info.st_mtime_ns))
    return tuple(stats)


def live_files(model_dir: Path, plugin: str) -> list[Path]:
    """What a restore archives: ``<plugin>*`` files except ``.bk``, and ``<plugin>_logs``."""
    return sorted(p for p in model_dir.iterdir() if p.name.startswith(plugin) and (
        (p.is_file() and not p.name.endswith(".bk"))
        or (p.is_dir() and p.name == f"{plugin}_logs")))


@dataclass(frozen=True)
class RollbackPlan:
    """A checked roll back, ready to run; nothing has been written yet."""

    model_dir: Path
    plugin: str
    version_id: str
    label: str
    kind: str
    iterations: int
    verdict: str
    sources: tuple[Path, ...]  # files copied into the model folder
    archived: tuple[Path, ...]  # live files and folders moved into the archive
    logs: Path | None  # the version's own log folder
    fingerprint: tuple[tuple[str, int, int], ...]

    @property
    def targets(self) -> list[Path]:
        """Where each source lands in the model folder."""
        return [self.model_dir / _restored_name(p) for p in self.sources]

    def summary(self) -> list[str]:
        """Plain sentences: what will change and what is archived."""
        pairs = zip(self.sources, self.targets, strict=True)
        lines = [f"Roll {self.model_dir.name} back to {self.label} "
                 f"({self.iterations:,} iterations).",
                 "Restored: " + ", ".join(f"{p.name} -> {t.name}" if p.name != t.name
                                          else p.name for p, t in pairs) + "."]
        if self.archived:
            lines.append(f"Archived first (moved, not deleted) into {self.plugin}_archived_"
                         "<date>_<time>: " + ", ".join(p.name for p in self.archived) + ".")
        lines.append("Training logs of the sessions the restored version knows are copied back.")
        if self.kind != "backup":
            lines.append("The .bk backup files stay where they are.")
        if self.verdict != CLEAN:
            lines.append(f"Note: this version is {self.verdict.replace('_', ' ')}.")
        return lines


@dataclass
class RollbackResult:
    """What a roll back did."""

    archive_dir: Path
    restored: list[Path]
    logs: list[Path]

    def message(self) -> str:
        """One sentence for the user."""
        return (f"Restored {', '.join(p.name for p in self.restored)}; the previous files are "
                f"in {self.archive_dir}.")


def _restored_name(source: Path) -> str:
    return source.name[:-len(".bk")] if source.name.endswith(".bk") else source.name


def _version_files(version: Version, plugin: str) -> tuple[list[Path], Path | None]:
    if version.kind == "backup":
        return restore.backups_of(version.folder), None
    files = sorted(p for p in version.folder.iterdir() if p.is_file()
                   and p.name.startswith(plugin) and not p.name.endswith(".bk"))
    logs = version.folder / f"{plugin}_logs"
    return files, logs if logs.is_dir() else None


def plan(folder: str | Path, version_id: str, task: Task | None = None,
         cache: HealthCache | None = None) -> RollbackPlan:
    """Check a roll back to ``version_id`` (see :func:`fsprec.core.health.timeline` for the
    ids); a damaged or unreadable version is refused. The version's weights are checked here
    (from the cache when its file has not changed since the last check)."""
    task = task or Task()
    live, versions = timeline(folder)
    by_id = {v.id: v for v in versions}
    if version_id not in by_id:
        raise FsprecError(f"No version {version_id!r} of {live.path.name}; its versions are: "
                          f"{', '.join(by_id)}.")
    version = by_id[version_id]
    if version.kind == "live":
        raise FsprecError("That is the live model already; choose an older version.")
    if version.problem:
        raise FsprecError(f"{version.label} cannot be restored: {version.problem}")
    version.check = check_version(version, task, cache if cache is not None else HealthCache())
    if version.verdict in (DAMAGED, UNREADABLE):
        raise FsprecError(f"{version.label} is damaged ({version.summary}); "
                          "choose a healthy version.")
    sources, logs = _version_files(version, live.plugin)
    if not any(p.name == live.model_file.name or _restored_name(p) == live.model_file.name
               for p in sources):
        raise FsprecError(f"{version.label} holds no {live.model_file.name}.")
    archived = live_files(live.path, live.plugin)
    return RollbackPlan(live.path, live.plugin, version.id, version.label, version.kind,
                        version.iterations, version.verdict, tuple(sources), tuple(archived),
                        logs, _fingerprint([*sources, *archived]))


def _archive_dir(model_dir: Path, plugin: str) -> Path:
    """A new ``<plugin>_archived_<YYYYmmdd_HHMMSS>`` folder (Faceswap's naming)."""
    while True:
        path = model_dir / f"{plugin}_archived_{datetime.now():%Y%m%d_%H%M%S}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            time.sleep(0.2)  # one archive per second at most, as the name has seconds


def _sessions(state_file: Path) -> list[str]:
    try:
        return [f"session_{key}" for key in State.load(state_file).sessions]
    except FsprecError:
        return []


def _restore_logs(plan_: RollbackPlan, archive: Path) -> list[Path]:
    wanted = _sessions(plan_.model_dir / f"{plan_.plugin}_state.json")
    restored = []
    for session in wanted:
        for root in (plan_.logs, archive / f"{plan_.plugin}_logs"):
            source = root / session if root is not None else None
            if source is not None and source.is_dir():
                dest = plan_.model_dir / f"{plan_.plugin}_logs" / session
                shutil.copytree(source, dest)
                restored.append(dest)
                break
    return restored


def run(plan_: RollbackPlan, task: Task | None = None) -> RollbackResult:
    """Carry out a :class:`RollbackPlan`; raises :class:`FsprecError` (nothing changed) when
    the files changed since the plan, or the folder cannot be written."""
    task = task or Task()
    if plan_.kind == "backup":  # restore takes the folder's lock itself
        _check_unchanged(plan_)
        result = restore.restore(plan_.model_dir, task)
        return RollbackResult(result.archive_dir, result.restored, result.logs)
    with lock.writing(plan_.model_dir):
        _check_unchanged(plan_)
        return _roll_back(plan_, task)


def _check_unchanged(plan_: RollbackPlan) -> None:
    try:
        unchanged = _fingerprint([*plan_.sources, *plan_.archived]) == plan_.fingerprint
    except OSError:
        unchanged = False
    if not unchanged or live_files(plan_.model_dir, plan_.plugin) != list(plan_.archived):
        raise FsprecError("The model folder changed since the roll back was planned; "
                          "check its health again. Nothing was changed.")


def _roll_back(plan_: RollbackPlan, task: Task) -> RollbackResult:
    """Copy the version in as temp files, archive the live files (links: they stay live until
    the commit), then replace them in one journalled commit: a crash at any instant leaves the
    folder as it was (plus an archive copy) or fully rolled back."""
    atomic.check_writable(plan_.model_dir)
    total = sum(p.stat().st_size for p in plan_.sources)
    atomic.check_free_space(plan_.model_dir, total + _MARGIN)
    moves: list[tuple[Path, Path]] = []
    with atomic.staged(moves, "Copying"):
        done = 0
        for source, target in zip(plan_.sources, plan_.targets, strict=True):
            done = atomic.copy_temp(source, target, task, "Copying the version", done, total)
            moves.append((atomic.temp_path(target), target))
        task.check()
        task.progress("Archiving the current files", 0, 1)
        archive = _archive_dir(plan_.model_dir, plan_.plugin)
        for path in plan_.archived:
            if path.is_file():
                atomic.replace(atomic.stage_backup(path, archive / path.name),
                               archive / path.name)
        atomic.fsync_dir(archive)
    stale = [p for p in plan_.archived if p not in {target for _, target in moves}]
    atomic.commit(plan_.model_dir, moves)
    for path in stale:  # what the version has no counterpart of: already archived, or a
        if path.is_dir():  # folder (the logs), moved now that the model is rolled back
            os.replace(path, archive / path.name)
        else:
            path.unlink(missing_ok=True)
    logs = _restore_logs(plan_, archive)
    task.progress("Archiving the current files", 1, 1)
    return RollbackResult(archive, plan_.targets, logs)

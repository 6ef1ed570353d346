"""Crash-safe file writing: temp files beside the target, fsync, ``os.replace``, hard-link
backups, and a small journal that makes a multi-file switch all-or-nothing."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import FsprecError

TMP_SUFFIX = ".fsprec-tmp"
JOURNAL = ".fsprec-journal.json"


def temp_path(target: Path) -> Path:
    """The temp file used while writing ``target`` (same folder, so replace is atomic)."""
    return target.with_name(f".{target.name}{TMP_SUFFIX}")


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (a no-op where directories cannot be opened)."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def open_temp(target: Path) -> Iterator:
    """Open the temp file for ``target`` for writing; it is fsynced on success and removed
    on any error (the target itself is never touched here)."""
    tmp = temp_path(target)
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_temp(target: Path, data: bytes) -> Path:
    """Write ``data`` to the temp file of ``target``; return the temp path."""
    with open_temp(target) as handle:
        handle.write(data)
    return temp_path(target)


def write_atomic(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` atomically."""
    os.replace(write_temp(target, data), target)
    fsync_dir(target.parent)


def stage_backup(source: Path, backup: Path) -> Path:
    """Stage ``source``'s current bytes as the temp file of ``backup``; return the temp path.

    A hard link costs no space or time (where the file system has none, a copy is made). The
    link only ever has the hidden temp name while ``source`` is live: :func:`commit` moves it
    to ``backup`` in the same step that replaces ``source`` with a new file, so a backup never
    shares its bytes with a model file Faceswap may later rewrite in place.
    """
    tmp = temp_path(backup)
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        try:
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return tmp


def check_writable(folder: Path) -> None:
    """Raise a clear error when files cannot be created in ``folder``."""
    probe = folder / f".fsprec-write-test{TMP_SUFFIX}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise FsprecError(f"Cannot write in {folder} ({err.strerror or err}); "
                          "is the folder read-only?") from err


def check_free_space(folder: Path, needed: int) -> None:
    """Raise a clear error when ``folder``'s disk has less than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise FsprecError(f"Not enough disk space in {folder}: {needed / 1e6:.0f} MB needed, "
                          f"{free / 1e6:.0f} MB free. Nothing was changed.")


def commit(folder: Path, moves: list[tuple[Path, Path]]) -> None:
    """Replace each target by its finished temp file, all or nothing across a crash.

    A journal naming the moves is written first; :func:`recover` completes it if the process
    dies half way, so the folder ends fully switched.
    """
    journal = folder / JOURNAL
    if any(p.parent != folder for move in moves for p in move):
        raise ValueError("commit moves files within one folder only")
    write_atomic(journal, json.dumps([[a.name, b.name] for a, b in moves]).encode())
    for tmp, target in moves:
        os.replace(tmp, target)
    fsync_dir(folder)
    journal.unlink()
    fsync_dir(folder)


def recover(folder: Path) -> bool:
    """Finish a switch interrupted after its commit point, and drop stale temp files.

    Returns True when an interrupted switch was completed.
    """
    journal = folder / JOURNAL
    completed = False
    if journal.is_file():
        try:
            moves = json.loads(journal.read_text())
        except (OSError, ValueError):
            moves = []
        for tmp, target in moves:
            if (folder / tmp).exists():
                os.replace(folder / tmp, folder / target)
                completed = True
        fsync_dir(folder)
        journal.unlink(missing_ok=True)
    for stale in folder.glob(f".*{TMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
    return completed


def interrupted(folder: Path) -> bool:
    """True when ``folder`` holds the journal of an unfinished switch."""
    return (folder / JOURNAL).is_file()

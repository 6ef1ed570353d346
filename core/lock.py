"""One writer per model folder: an OS-level lock held for the whole of every writing job.

The lock is ``filelock`` (``flock`` on Linux and macOS, ``msvcrt.locking`` on Windows) on a
hidden ``.fsprec.lock`` in the model folder, so every fsprec process on any machine that
sees the folder agrees on it; the OS drops it when the holder dies, so a killed run never
leaves the folder locked. The holder writes its pid into the file for the refusal message,
and removes the file before it lets go.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import filelock

from .errors import FsprecError

LOCK_NAME = ".fsprec.lock"


class Busy(FsprecError):
    """Another fsprec process holds the folder's lock."""

    def __init__(self, pid: int | None) -> None:
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"Another fsprec is changing this model{who}; nothing was changed.")
        self.pid = pid


def _holder(path: Path) -> int | None:
    with suppress(OSError, ValueError):
        return int(path.read_text(encoding="ascii").strip() or 0) or None
    return None


def _acquire(path: Path) -> filelock.BaseFileLock:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise FsprecError(f"{path} is not fsprec's lock file; remove it and try again. "
                          "Nothing was changed.")
    lock = filelock.FileLock(path, timeout=0, is_singleton=False, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise Busy(_holder(path)) from None
    except OSError as err:
        raise FsprecError(f"Cannot write in {path.parent} ({err.strerror or err}); "
                          "is the folder read-only?") from err
    return lock


@contextmanager
def writing(folder: str | Path) -> Iterator[None]:
    """Hold ``folder``'s writer lock for the ``with`` block; raise :class:`Busy` at once when
    another process holds it (never waits)."""
    path = Path(folder) / LOCK_NAME
    lock = _acquire(path)
    try:
        with suppress(OSError), open(path, "r+", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
        yield
    finally:
        with suppress(OSError):
            path.unlink()  # before the release: a waiter that opened this inode retries
        lock.release()


def busy(folder: str | Path) -> int | None:
    """The pid of the fsprec process changing ``folder`` now, else None (for the GUI).

    0 when the folder is locked but the holder's pid cannot be read.
    """
    path = Path(folder) / LOCK_NAME
    if not path.is_file():
        return None
    try:
        _acquire(path).release()  # a stale file from a killed run: free (left for its folder's
    except Busy as err:           # next writer to remove, so that looking changes nothing)
        return err.pid or 0
    except FsprecError:
        return None
    return None

"""One writer per model folder: an OS-level lock held for the whole of every writing job.

The lock is ``flock`` (Linux, macOS) or ``msvcrt.locking`` (Windows) on a hidden
``.fsprec.lock`` in the model folder, so every fsprec process on any machine that sees the
folder agrees on it, and a second job in the same process too (both lock an open file, not a
process); the OS drops it when the holder dies, so a killed run never leaves the folder
locked. The holder writes its pid into the file for the refusal message, and removes the file
before it lets go. These are the two calls ``filelock`` makes; it is not used because its
import (logging, secrets, hashlib, platform, decimal, ...) cost every command's start more
than the rest of a conversion's plan (docs/architecture.md).
"""
from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import FsprecError

LOCK_NAME = ".fsprec.lock"
_CONTENDED = {errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK, errno.EDEADLK}
_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}
_WINDOWS_BYTE = 4096  # locked on Windows, where a locked byte cannot be read: the pid stays
_PID_BYTES = 64  # the most a lock file holds: its holder's pid and a newline
_RETRIES = 100  # each retry means a holder removed the file as this process locked it

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _try_lock(fd: int) -> bool:
    """Lock ``fd`` without waiting: False when another holds the lock."""
    try:
        _lock(fd)
    except OSError as err:
        if err.errno in _CONTENDED:
            return False
        raise
    return True


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


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open on ``fd`` (a holder that is letting go
    removes the file first: the lock then taken on it guards nothing)."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _open(path: Path) -> tuple[int, bool]:
    """``(descriptor, whether this call created the file)``, never following a link."""
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
    except FileExistsError:
        return os.open(path, flags), False


def _not_ours(path: Path) -> FsprecError:
    return FsprecError(f"{path} is not fsprec's lock file; remove it and try again. "
                       "Nothing was changed.")


def _refuse_planted(fd: int, path: Path) -> None:
    """A lock file is fsprec's when it has one name and at most a pid line in it: anything
    else (a hard link to a model, someone's file) is left alone, never truncated."""
    held = os.fstat(fd)
    if held.st_nlink > 1 or held.st_size > _PID_BYTES:
        raise _not_ours(path)


def _cannot(path: Path, err: OSError) -> FsprecError:
    if err.errno in _UNSUPPORTED:
        return FsprecError(f"The file system of {path.parent} cannot lock files "
                           f"({err.strerror or err}), so fsprec cannot make sure it is the only "
                           "one changing this model. Nothing was changed.")
    return FsprecError(f"Cannot write in {path.parent} ({err.strerror or err}); "
                       "is the folder read-only?")


def _acquire(path: Path) -> int:
    """The open, locked lock file's descriptor; :class:`Busy` when another holds it."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise _not_ours(path)
    for _ in range(_RETRIES):
        try:
            fd, created = _open(path)
        except FileNotFoundError:
            continue  # removed between the two opens by a holder letting go
        except OSError as err:
            raise _cannot(path, err) from err
        try:
            _refuse_planted(fd, path)
            locked = _try_lock(fd)
            held = locked and _same_file(fd, path)
        except FsprecError:
            os.close(fd)
            raise
        except OSError as err:
            os.close(fd)
            if created:
                with suppress(OSError):
                    path.unlink()
            raise _cannot(path, err) from err
        if held:
            return fd
        os.close(fd)
        if not locked:
            raise Busy(_holder(path))
    raise Busy(None)


def _release(fd: int) -> None:
    with suppress(OSError):
        _unlock(fd)
    os.close(fd)


@contextmanager
def writing(folder: str | Path) -> Iterator[None]:
    """Hold ``folder``'s writer lock for the ``with`` block; raise :class:`Busy` at once when
    another process (or another job in this one) holds it (never waits)."""
    path = Path(folder) / LOCK_NAME
    fd = _acquire(path)
    try:
        with suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        with suppress(OSError):
            path.unlink()  # before the release: a waiter that opened this inode retries
        _release(fd)


def busy(folder: str | Path) -> int | None:
    """The pid of the fsprec process changing ``folder`` now, else None (for the GUI).

    0 when the folder is locked but the holder's pid cannot be read.
    """
    path = Path(folder) / LOCK_NAME
    if not path.is_file():
        return None
    try:
        _release(_acquire(path))  # a stale file from a killed run: free (left for its folder's
    except Busy as err:           # next writer to remove, so that looking changes nothing)
        return err.pid or 0
    except FsprecError:
        return None
    return None

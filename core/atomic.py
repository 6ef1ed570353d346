"""Crash-safe file writing: temp files beside the target, fsync, ``os.replace``, backups staged
by hard link (or copy), and a small journal that makes a multi-file switch all-or-nothing.

Temp names carry this process's id and a random token (``.<target>.<pid>-<hex>.fsprec-tmp``),
so two runs never share one. The journal is data, never instructions: :func:`recover` follows
it only when every entry is exactly what this version writes (a temp name of its target, both
plain names in the folder, the target a model, state or ``.bk`` file of one plugin); anything
else is set aside as ``.fsprec-journal.json.rejected`` and reported. Callers hold the folder's
writer lock (:mod:`.lock`) around every function here that changes a model folder.

Set ``FSPREC_PORTABLE=1`` to switch off the POSIX fast paths (hard links, ``copy_file_range``,
reflinks) and use the plain-copy code that every platform has (the test suite runs once so).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FsprecError
from .task import Task

TMP_SUFFIX = ".fsprec-tmp"
JOURNAL = ".fsprec-journal.json"
REJECTED = JOURNAL + ".rejected"
PORTABLE_ENV = "FSPREC_PORTABLE"
_TOKEN = f"{os.getpid()}-{os.urandom(4).hex()}"
_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.\d+-[0-9a-f]{8}" + re.escape(TMP_SUFFIX) + "$")
_TARGET_RE = re.compile(r"^(?P<plugin>[^./\\\x00][^/\\\x00]*?)(\.keras|\.h5|_state\.json)(\.bk)?$")
_MAX_JOURNAL = 64 * 1024
_REPLACE_TRIES = 5


def fast_paths() -> bool:
    """False when ``FSPREC_PORTABLE=1`` asks for the portable code paths only."""
    return os.environ.get(PORTABLE_ENV, "") != "1"


def temp_path(target: Path) -> Path:
    """This run's temp file for ``target`` (same folder, so replace is atomic)."""
    return target.with_name(f".{target.name}.{_TOKEN}{TMP_SUFFIX}")


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
        with open(tmp, "xb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


COPY_CHUNK = 8 * 1024 * 1024


def copy_temp(source: Path, target: Path, task: Task, stage: str, done: int = 0,
              total: int | None = None) -> int:
    """Copy ``source`` byte for byte into the temp file of ``target`` (fsynced), reporting
    ``stage`` progress from ``done`` of ``total`` (the source's size by default) and checking
    cancel per chunk; returns ``done`` plus the bytes copied."""
    total = source.stat().st_size if total is None else total
    with open(source, "rb") as src, open_temp(target) as dst:
        while chunk := src.read(COPY_CHUNK):
            task.check()
            dst.write(chunk)
            done += len(chunk)
            task.progress(stage, done, total)
    return done


def write_temp(target: Path, data: bytes) -> Path:
    """Write ``data`` to the temp file of ``target``; return the temp path."""
    with open_temp(target) as handle:
        handle.write(data)
    return temp_path(target)


def replace(source: Path, target: Path) -> None:
    """``os.replace``, retried for a moment where Windows refuses while another program (a
    virus scanner, an indexer) has ``target`` open; a clear error if it stays refused."""
    for attempt in range(_REPLACE_TRIES):
        try:
            os.replace(source, target)
            return
        except PermissionError as err:
            if os.name != "nt" and fast_paths() or attempt == _REPLACE_TRIES - 1:
                raise FsprecError(f"{target.name} is in use by another program "
                                  f"({err.strerror or err}); close it and try again.") from err
            time.sleep(0.05 * 2 ** attempt)


def write_atomic(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` atomically."""
    tmp = write_temp(target, data)
    try:
        replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def copy_durable(source: Path, dest: Path) -> None:
    """Copy ``source`` to the new file ``dest`` and fsync it (``dest`` removed on error)."""
    try:
        with open(source, "rb") as src, open(dest, "xb") as dst:
            shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def stage_backup(source: Path, backup: Path) -> Path:
    """Stage ``source``'s current bytes as the temp file of ``backup``; return the temp path.

    A hard link costs no space or time (where the file system has none, or in portable mode,
    a copy is made). The link only ever has the hidden temp name while ``source`` is live:
    :func:`commit` moves it to ``backup`` in the same step that replaces ``source`` with a new
    file, so a backup never shares its bytes with a model file Faceswap may later rewrite.
    """
    tmp = temp_path(backup)
    if fast_paths():
        with suppress(OSError):
            os.link(source, tmp)
            return tmp
    copy_durable(source, tmp)
    return tmp


@contextmanager
def staged(moves: list[tuple[Path, Path]], doing: str) -> Iterator[None]:
    """While temp files are staged for ``moves``: on any failure remove them all, and say an
    OSError as one sentence ("``doing`` failed (...); nothing was changed.")."""
    try:
        yield
    except BaseException as err:
        for tmp, _ in moves:
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise FsprecError(f"{doing} failed ({err.strerror or err}); nothing was "
                              "changed.") from err
        raise


def check_writable(folder: Path) -> None:
    """Raise a clear error when files cannot be created in ``folder``."""
    probe = folder / f".fsprec-write-test.{_TOKEN}{TMP_SUFFIX}"
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
    dies half way, so the folder ends fully switched. Raises :class:`FsprecError` with nothing
    moved when the journal cannot be written or a target is not a plain file.
    """
    journal = folder / JOURNAL
    for tmp, target in moves:
        if tmp.parent != folder or target.parent != folder or tmp != temp_path(target):
            raise ValueError("commit moves this run's temp files within one folder only")
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise FsprecError(f"{target.name} is not a plain file; move it away and try "
                              "again. Nothing was changed.")
    document = {"fsprec_journal": 1, "moves": [[a.name, b.name] for a, b in moves]}
    try:
        write_atomic(journal, json.dumps(document).encode())
    except OSError as err:
        raise FsprecError(f"Writing failed ({err.strerror or err}); nothing was "
                          "changed.") from err
    displaced = _hold_displaced([target for _, target in moves])
    try:
        for tmp, target in moves:
            replace(tmp, target)
        fsync_dir(folder)
        journal.unlink()
        fsync_dir(folder)
    finally:
        _release_in_background(displaced)


_DISPLACED_MIN = 16 * 1024 * 1024


def _hold_displaced(targets: list[Path]) -> list[int]:
    """Open the large files that replacing ``targets`` will unlink for good (an old ``.bk``).

    On ext4 unlinking a file frees its blocks there and then (~0.4 s for 450 MB on the
    development machine); held open, the rename only drops the name and the blocks are freed
    at the last close, which :func:`_release_in_background` moves off the user's wait. POSIX
    only: on Windows an open file cannot be replaced.
    """
    if os.name != "posix" or not fast_paths():
        return []
    held = []
    for target in targets:
        with suppress(OSError):
            st = os.stat(target, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size >= _DISPLACED_MIN:
                held.append(os.open(target, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
    return held


def _release_in_background(fds: list[int]) -> None:
    """Close ``fds`` so that the last close, which frees their unlinked files' blocks, is a
    helper's (``cat`` reading an empty pipe; it inherits them and exits at the pipe's end).
    Where no helper starts they are closed here, which frees them now."""
    if not fds:
        return
    import subprocess  # only here: not on every command's start-up path

    helper = None
    with suppress(OSError):
        helper = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, pass_fds=fds,
                                  start_new_session=True)
    for fd in fds:
        os.close(fd)
    if helper is not None:
        helper.stdin.close()  # cat ends, closing the last references; we only reap it
        threading.Thread(target=helper.wait, daemon=True).start()


Fingerprint = tuple[tuple[int, int, int, int] | None, ...]


def fingerprint(paths: list[Path | None]) -> Fingerprint:
    """(inode, size, mtime, ctime) of each path (None for a missing one): a file changed or
    replaced by another program between two calls gives a different fingerprint."""
    prints = []
    for path in paths:
        try:
            st = os.stat(path) if path is not None else None
        except OSError:
            st = None
        prints.append(None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns,
                                               st.st_ctime_ns))
    return tuple(prints)


@dataclass
class Recovery:
    """What :func:`recover` found: a completed switch, a rejected journal, temp files removed."""

    completed: bool = False
    rejected: bool = False
    removed: list[str] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """Sentences for the user (empty when nothing was found)."""
        notes = []
        if self.completed:
            notes.append("An interrupted switch in this folder was completed first.")
        if self.rejected:
            notes.append(f"A {JOURNAL} that fsprec did not write was set aside as {REJECTED} "
                         "and not followed.")
        return notes


def _valid_moves(folder: Path, journal: Path) -> list[tuple[str, str]] | None:
    """The journal's moves when every entry is exactly what :func:`commit` writes, else None."""
    try:
        if journal.is_symlink() or journal.stat().st_size > _MAX_JOURNAL:
            return None
        document = json.loads(journal.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.get("fsprec_journal") != 1:
        return None
    moves = document.get("moves")
    if not isinstance(moves, list) or not moves:
        return None
    plugins = set()
    for move in moves:
        if not (isinstance(move, list) and len(move) == 2
                and all(isinstance(name, str) for name in move)):
            return None
        tmp, target = move
        found, named = _TEMP_RE.match(tmp), _TARGET_RE.match(target)
        if not found or found["target"] != target or not named:
            return None
        plugins.add(named["plugin"])
        source = folder / tmp
        if source.is_symlink() or (source.exists() and not _well_formed(source, target)):
            return None
    return [(a, b) for a, b in moves] if len(plugins) == 1 else None


def _well_formed(tmp: Path, target: str) -> bool:
    """True when a temp file holds what its target needs: a model that opens, or a state."""
    from . import bounds, modelfile  # modelfile reads models through archive, which uses us

    if not tmp.is_file():
        return False
    try:
        if target.endswith((".json", ".json.bk")):
            with open(tmp, "rb") as handle:
                return isinstance(bounds.loads(handle.read(bounds.MAX_STATE + 1), tmp.name,
                                               bounds.MAX_STATE), dict)
        modelfile.read_config(tmp, "keras3" if ".keras" in target else "keras2")
    except (FsprecError, OSError):
        return False
    return True


def _stale(folder: Path) -> Iterator[Path]:
    for path in folder.glob(f".*{TMP_SUFFIX}"):
        with suppress(OSError):
            if stat.S_ISREG(path.lstat().st_mode) or path.is_symlink():
                yield path


def recover(folder: Path) -> Recovery:
    """Finish a switch interrupted after its commit point and drop stale temp files.

    Call it holding the folder's writer lock: every temp file is then a leftover.
    """
    journal = folder / JOURNAL
    result = Recovery()
    if journal.is_symlink() or journal.exists():
        moves = _valid_moves(folder, journal)
        if moves is None:
            try:
                os.replace(journal, folder / REJECTED)
            except OSError as err:
                raise FsprecError(f"{folder / JOURNAL} was not written by fsprec and cannot be "
                                  f"set aside ({err.strerror or err}); remove it. Nothing was "
                                  "changed.") from err
            result.rejected = True
        else:
            for tmp, target in moves:
                if (folder / tmp).is_file():
                    replace(folder / tmp, folder / target)
                    result.completed = True
            fsync_dir(folder)
            journal.unlink(missing_ok=True)
        fsync_dir(folder)
    for stale in _stale(folder):
        stale.unlink(missing_ok=True)
        result.removed.append(stale.name)
    return result


def interrupted(folder: Path) -> bool:
    """True when ``folder`` holds the journal of an unfinished switch."""
    return (folder / JOURNAL).is_file()


def needs_recovery(folder: Path) -> bool:
    """True when ``folder`` holds a journal or leftover temp files."""
    return (folder / JOURNAL).exists() or (folder / JOURNAL).is_symlink() or any(
        _stale(folder))

"""Read an untrusted HDF5 file in a child process first, so that a damaged file that crashes
or hangs the HDF5 C library (it has no defence against hostile files) costs a clear sentence,
not the app.

The child opens the file (a ``.keras``'s weights member, or the whole ``.h5``), visits every group,
attribute and dataset (layouts parsed, chunk indexes walked), and exits;
the parent then reads the same bytes knowing they are safe. The result is remembered per file
fingerprint, so one model costs one child (forked on Linux: ~20 ms). The child's address space
is capped: an object declaring gigabytes makes its allocation fail there, and the parent then
refuses the file instead of allocating it.
"""
from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import sys
from pathlib import Path

from .errors import FsprecError

TIMEOUT_S = 30.0
MAX_READ = 256 * 1024 * 1024  # the most the child may allocate, and read from one dataset
_TOO_BIG = 3  # the child's exit code when an allocation failed under its memory cap
_safe: set[tuple] = set()
_memory_errors: list[BaseException] = []


def _key(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def check(model_file: Path, fmt: str) -> None:
    """Raise :class:`FsprecError` when reading ``model_file``'s HDF5 crashes or hangs a child."""
    key = _key(model_file)
    if key is None or key in _safe:
        return
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    child = multiprocessing.get_context(method).Process(
        target=_child, args=(str(model_file), fmt), daemon=True)
    child.start()
    child.join(TIMEOUT_S)
    if child.is_alive():
        child.kill()
        child.join()
        raise FsprecError(f"Reading the weights in {model_file.name} did not finish in "
                          f"{TIMEOUT_S:.0f} s; the file is damaged.")
    if child.exitcode == _TOO_BIG:
        raise FsprecError(f"The weights in {model_file.name} are damaged (reading them would "
                          "need far more memory than any model's metadata).")
    if child.exitcode != 0:
        raise FsprecError(f"The weights in {model_file.name} are damaged (reading them "
                          "crashed the HDF5 library).")
    _safe.add(key)


def _child(path: str, fmt: str) -> None:
    """The child process: quiet on a crash (the parent reports it), memory capped, then
    :func:`_visit`."""
    faulthandler.disable()
    _limit_memory()
    _visit(path, fmt)


def _visit(path: str, fmt: str) -> None:
    """The child: touch everything the parent may read, each item on its own (an error in one
    does not stop the walk); Python-level errors are left for the parent's own read to report,
    so the child exits 0 unless the library crashes."""
    try:
        import h5py

        from .archive import open_member
        from .weights import WEIGHTS_MEMBER

        with contextlib.ExitStack() as opened:
            source = (opened.enter_context(open_member(Path(path), WEIGHTS_MEMBER))
                      if fmt == "keras3" else path)
            root = opened.enter_context(h5py.File(source, "r"))
            stack, seen = [root], set()
            while stack:
                group = stack.pop()
                _touch(group, h5py)
                if isinstance(group, h5py.Group):
                    for key in _quiet(lambda group=group: list(group.keys()), []):
                        item = _quiet(lambda group=group, key=key: group[key])
                        addr = _quiet(lambda item=item: item.id.__hash__()) if item else None
                        if item is not None and addr not in seen:
                            seen.add(addr)
                            stack.append(item)
    except BaseException as err:  # reported by the parent's own read
        _note(err)
    os._exit(_TOO_BIG if _memory_errors else 0)


def _limit_memory() -> None:
    """Cap the child's address space at its size now plus :data:`MAX_READ`, so that a file
    declaring a huge object makes the allocation fail here instead of in the parent."""
    try:
        import resource

        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status
                        if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + MAX_READ, resource.RLIM_INFINITY))
    except (ImportError, OSError, StopIteration, ValueError):
        pass  # no such limit on this platform; the parent's own size checks remain


def _note(err: BaseException) -> None:
    if isinstance(err, MemoryError) or "allocat" in str(err).lower():
        _memory_errors.append(err)


def _quiet(read, default=None):
    try:
        return read()
    except Exception as err:  # the child only looks for crashes
        _note(err)
        return default


def _touch(obj, h5py) -> None:
    from .weights import read_attr

    for attr in _quiet(lambda: list(obj.attrs), []):
        _quiet(lambda attr=attr: read_attr(obj, attr))
    if isinstance(obj, h5py.Dataset) and _quiet(lambda: obj.size):
        if _quiet(lambda: obj.nbytes, MAX_READ + 1) > MAX_READ:  # a bomb: the parent refuses
            return
        if obj.chunks is None:  # its layout parsed; its bytes are read raw, at that offset
            _quiet(lambda: obj.id.get_offset())
        else:  # walk the chunk index (errors in compressed data are Python-level)
            for index in range(_quiet(lambda: obj.id.get_num_chunks(), 0)):
                _quiet(lambda index=index: obj.id.get_chunk_info(index))

"""Read an untrusted model file in a child process, so that a damaged file that crashes or hangs
the HDF5 C library (it has no defence against hostile files) costs a clear sentence, not the app.

The child opens the weights' HDF5 (a ``.keras``'s weights member, or the whole ``.h5``), visits
every group, attribute and dataset (layouts parsed, chunk indexes walked), then does the reading
the parent asked for and sends back the result: the weights index (:mod:`.weights`), and for a
conversion the CRC of every zip member it will copy, read through a memory map (a truncated
file's ``SIGBUS`` ends the child, not the app). The parent itself never opens that HDF5 for
these, so a conversion or an inspection reads the file's metadata once, and the child works
while the parent goes on (a conversion copies the file meanwhile, and waits for the child only
before its commit).

Results are remembered per file fingerprint, so one model costs one child (forked on Linux:
a few ms). The child's address space is capped: an object declaring gigabytes makes its
allocation fail there, and the parent then refuses the file instead of allocating it.
"""
from __future__ import annotations

import contextlib
import errno
import faulthandler
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import Cancelled, FsprecError

if TYPE_CHECKING:
    from .weights import WeightsIndex

TIMEOUT_S = 30.0  # for the HDF5 part (metadata only); the CRC pass gets time by file size
CRC_RATE = 20 * 1024 * 1024  # bytes/s the CRC pass is allowed at the least (a slow disk)
MAX_READ = 256 * 1024 * 1024  # the most the child may allocate, and read from one dataset
_TOO_BIG = 3  # the child's exit code when an allocation failed under its memory cap
_POLL_S = 0.05
_done: dict[tuple, Any] = {}  # (file fingerprint, what was read) -> its result
_readers: set[Reading] = set()  # children at work
_memory_errors: list[BaseException] = []

CancelCheck = Callable[[], bool]


def _key(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class Reading:
    """One model file being read by a child process; :meth:`index` and :meth:`crcs` wait for
    their part of the answer (or raise :class:`FsprecError` for a damaged file)."""

    def __init__(self, model_file: Path, fmt: str, layers: list[dict] | None,
                 crc: bool) -> None:
        self.model_file = model_file
        self._key = _key(model_file)
        self._want = {"visit": True, "index": layers is not None, "crc": crc}
        self._results: dict[str, Any] = {
            part: _done[(self._key, part)] for part, wanted in self._want.items()
            if wanted and (self._key, part) in _done}
        self._child: multiprocessing.process.BaseProcess | None = None
        self._conn: Any = None
        if self._key is None:  # the parts then report it
            gone = FsprecError(f"{model_file.name} cannot be read (moved or deleted?).")
            self._results = {part: gone for part, wanted in self._want.items() if wanted}
        if len(self._results) == sum(self._want.values()):
            return
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        context = multiprocessing.get_context(method)
        self._conn, child_end = context.Pipe(duplex=False)
        todo = {part for part, wanted in self._want.items()
                if wanted and part not in self._results}
        self._child = context.Process(
            target=_child, args=(child_end, str(model_file), fmt, todo, layers), daemon=True)
        self._child.start()
        child_end.close()
        self._started = time.monotonic()
        _readers.add(self)

    @property
    def usable(self) -> bool:
        """False once stopped before every part was read (start a new reading then)."""
        return self._child is not None or len(self._results) == sum(self._want.values())

    @contextlib.contextmanager
    def stopped_on_error(self) -> Iterator[None]:
        """Stop the child when the block fails: its answer is no longer wanted."""
        try:
            yield
        except BaseException:
            self.close()
            raise

    def wants(self, part: str) -> bool:
        """True when this reading includes ``part`` (``visit``, ``index`` or ``crc``)."""
        return self._want[part]

    def index(self, cancelled: CancelCheck = lambda: False) -> WeightsIndex:
        """The weights index the child built."""
        return self._part("index", TIMEOUT_S, cancelled)

    def visited(self, cancelled: CancelCheck = lambda: False) -> None:
        """Wait until the child has read the HDF5 metadata without crashing."""
        self._part("visit", TIMEOUT_S, cancelled)

    def crcs(self, cancelled: CancelCheck = lambda: False) -> None:
        """Wait until the child has proved every member's CRC (all but ``config.json``)."""
        try:
            size = os.stat(self.model_file).st_size
        except OSError:
            size = 0
        self._part("crc", TIMEOUT_S + size / CRC_RATE, cancelled)

    def close(self) -> None:
        """Stop the child if it is still at work (a plan that is not run)."""
        if self._child is not None and self._child.is_alive():
            self._child.kill()
        if self._child is not None:
            self._child.join()
            self._conn.close()
            self._child = None
        _readers.discard(self)

    def _part(self, part: str, timeout: float, cancelled: CancelCheck) -> Any:
        if not self._want[part]:
            raise ValueError(f"this reading was not asked for {part!r}")
        while part not in self._results:
            self._receive(timeout, cancelled)
        result = self._results[part]
        if isinstance(result, FsprecError):
            raise FsprecError(str(result))
        return result

    def _receive(self, timeout: float, cancelled: CancelCheck) -> None:
        """Take the child's next message, or turn its death, a timeout or cancel into an
        exception (the child is then stopped)."""
        while not self._conn.poll(_POLL_S):  # a dead child's pipe polls ready (EOF)
            if cancelled():
                self.close()
                raise Cancelled("Cancelled; nothing was changed.")
            if time.monotonic() - self._started > timeout:
                self.close()
                raise FsprecError(f"Reading the weights in {self.model_file.name} did not "
                                  f"finish in {timeout:.0f} s; the file is damaged.")
        try:
            part, status, value = self._conn.recv()
        except (EOFError, OSError):
            self._died()
        if status == "bug":  # an error in fsprec's own reading code, not in the file
            self.close()
            raise RuntimeError(f"reading {self.model_file.name} failed in the guard "
                               f"process:\n{value}")
        result = FsprecError(value) if status == "refused" else value
        self._results[part] = result
        _done[(self._key, part)] = result
        if len(self._results) == sum(self._want.values()):
            self.close()

    def _died(self) -> NoReturn:
        """The child ended before it answered: a crash, or its memory cap."""
        self._child.join(TIMEOUT_S)
        code = self._child.exitcode
        self.close()
        name = self.model_file.name
        if code == _TOO_BIG:
            raise FsprecError(f"The weights in {name} are damaged (reading them would need "
                              "far more memory than any model's metadata).")
        raise FsprecError(f"The weights in {name} are damaged (reading them crashed the HDF5 "
                          "library).")


def reader_pids() -> set[int]:
    """The pids of this process's guard children still at work (they hold the model file
    open; they are not "another program"). Safe beside the thread that closes them."""
    children = [reader._child for reader in list(_readers)]  # each read once: close() clears it
    return {child.pid for child in children if child is not None and child.is_alive()}


def start(model_file: Path, fmt: str, layers: list[dict] | None = None,
          crc: bool = False) -> Reading:
    """Start reading ``model_file`` in a child: the HDF5 visit, plus the weights index against
    ``layers`` (the config's top-level layers) when given, plus every member's CRC when
    ``crc``. Parts already read for this exact file are not read again."""
    return Reading(model_file, fmt, layers, crc)


def check(model_file: Path, fmt: str) -> None:
    """Raise :class:`FsprecError` when reading ``model_file``'s HDF5 crashes or hangs a child."""
    start(model_file, fmt).visited()


def _child(conn: Any, path: str, fmt: str, todo: set[str], layers: list[dict] | None) -> None:
    """The child process: quiet on a crash (the parent reports it), memory capped; the parts in
    ``todo`` (``visit``, ``index`` against ``layers``, ``crc``), each sent as ``(part, status,
    value)``. The CRC pass needs no HDF5, so it runs on a thread of its own from the start.
    It never returns: a parent gone meanwhile (its pipe closed) just ends it."""
    faulthandler.disable()
    crc: list[tuple] = []
    summing = threading.Thread(target=lambda: crc.append(_reply("crc", lambda: _crcs(path))))
    if "crc" in todo:
        summing.start()
    if todo & {"visit", "index"}:
        import h5py  # noqa: F401 - loaded (with numpy) before the cap is measured
    _limit_memory()
    try:
        if "visit" in todo:
            _visit(path, fmt)
            if _memory_errors:
                os._exit(_TOO_BIG)
            conn.send(("visit", "ok", None))
        if "index" in todo:
            conn.send(_reply("index", lambda: _index(path, fmt, layers)))
        if "crc" in todo:
            summing.join()
            conn.send(crc[0])
        conn.close()
    except OSError:  # the parent is gone
        os._exit(0)
    os._exit(_TOO_BIG if _memory_errors else 0)


def _reply(part: str, read: Callable[[], Any]) -> tuple[str, str, Any]:
    """The message for one part: ``ok`` and its value, ``refused`` and the sentence, or
    ``bug`` and our own traceback; a failed allocation ends the child (its memory cap, which
    the parts share: the CRC thread's memory maps run beside the HDF5 walk)."""
    try:
        return part, "ok", read()
    except FsprecError as err:
        return part, "refused", str(err)
    except MemoryError:
        os._exit(_TOO_BIG)
    except OSError as err:
        if err.errno == errno.ENOMEM:
            os._exit(_TOO_BIG)
        return part, "refused", f"The model file cannot be read ({err.strerror or err})."
    except Exception:  # our own bug: the parent raises it, with this traceback
        import traceback

        return part, "bug", traceback.format_exc()


def _index(path: str, fmt: str, layers: list[dict]) -> WeightsIndex:
    from .weights import read_index

    return read_index(Path(path), fmt, layers)


def _crcs(path: str) -> None:
    from .archive import check_crcs
    from .modelfile import CONFIG_MEMBER

    check_crcs(Path(path), skip=CONFIG_MEMBER, mapped=True)


def _visit(path: str, fmt: str) -> None:
    """Touch everything the parent may read, each item on its own (an error in one does not
    stop the walk); Python-level errors are left for the parts' own reading to report, so
    this only ends the child when the library crashes."""
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
    except BaseException as err:  # reported by the parts' own reading
        _note(err)


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

"""The ``.keras`` zip: read a member in place, and rewrite one member copying the rest raw.

Keras stores ``model.weights.h5`` uncompressed, so h5py can read it straight from the zip
through :class:`MemberWindow` without extracting it. :func:`rewrite_member` writes a new zip in
which one member is replaced and every other member is copied as raw bytes (local header,
compressed data and descriptor untouched), so weights and unknown members such as Faceswap's
``optimizer.pt`` stay byte for byte what they were, with their compression type.
"""
from __future__ import annotations

import copy
import io
import mmap
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from . import bounds
from .atomic import fast_paths
from .errors import Cancelled, FsprecError

CHUNK = 8 * 1024 * 1024
KERNEL_CHUNK = 32 * 1024 * 1024
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_PAD_HEADER = struct.Struct("<HH")
_ALIGN_ID = 0xD935
BLOCK = 4096

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


JSON_LIMITS = {"config.json": bounds.MAX_CONFIG, "metadata.json": bounds.MAX_METADATA}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a ``.keras`` file, turning a broken or hostile zip into a clear
    :class:`FsprecError`: duplicate members, a member expanding over 100x to over 4 GiB, or a
    JSON member over its size cap are refused before any member is read."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as err:
        raise FsprecError(f"{path.name} is not a valid .keras file (broken zip: {err}).") from err
    except OSError as err:
        raise FsprecError(f"{path.name} cannot be read ({err.strerror or err}).") from err
    try:
        check_members(path, archive.infolist())
    except BaseException:
        archive.close()
        raise
    return archive


def check_members(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse duplicate names, zip-bomb ratios and oversized JSON members."""
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise FsprecError(f"{path.name} holds {duplicate} twice (a damaged or tampered zip).")
    for info in infos:
        if info.flag_bits & 0x1:
            raise FsprecError(f"{path.name} is encrypted; Keras cannot read it.")
        limit = JSON_LIMITS.get(info.filename)
        if limit is not None:
            bounds.check_size(info.file_size, f"{info.filename} in {path.name}", limit)
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > bounds.MAX_RATIO * max(
                info.compress_size, 1) and info.file_size > bounds.MAX_EXPANDED:
            raise FsprecError(f"{info.filename} in {path.name} declares {info.file_size:,} "
                              f"bytes from {info.compress_size:,} (a zip bomb?).")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise FsprecError(f"{info.filename} in {path.name} is damaged (its sizes "
                              "disagree).")


def data_offset(fileobj: BinaryIO, info: zipfile.ZipInfo) -> int:
    """Where a member's (compressed) data starts in the zip file."""
    fileobj.seek(info.header_offset)
    header = fileobj.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise FsprecError(f"The zip entry {info.filename} is damaged (bad local header).")
    fields = _LOCAL_HEADER.unpack(header)
    name_len, extra_len = fields[-2], fields[-1]
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len


class MemberWindow(io.RawIOBase):
    """A read-only, seekable view of one stored (uncompressed) zip member."""

    def __init__(self, path: Path, info: zipfile.ZipInfo) -> None:
        super().__init__()
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError("only stored members can be read in place")
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._start = data_offset(self._file, info)
        self._size = info.file_size
        self._pos = 0
        self._file.seek(0, os.SEEK_END)
        if self._file.tell() < self._start + self._size:
            self._file.close()
            raise FsprecError(f"{path.name} is truncated: {info.filename} is incomplete.")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = max(0, min(len(buffer), self._size - self._pos))
        if count == 0:
            return 0
        self._file.seek(self._start + self._pos)
        read = self._file.readinto(memoryview(buffer)[:count])
        self._pos += read or 0
        return read or 0

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def open_member(path: Path, name: str) -> io.BufferedReader | zipfile.ZipExtFile:
    """A seekable binary stream over one member (in place when stored)."""
    with open_zip(path) as archive:
        try:
            info = archive.getinfo(name)
        except KeyError as err:
            raise FsprecError(f"{path.name} has no {name} member.") from err
        if info.compress_type == zipfile.ZIP_STORED:
            return io.BufferedReader(MemberWindow(path, info), buffer_size=64 * 1024)
        return _inflated(path, archive, info)


def _inflated(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> BinaryIO:
    """A compressed member inflated once into a temp file (h5py seeks back and forth; a
    zipfile stream would inflate from the start at every backward seek). CRC-checked."""
    import tempfile  # for compressed members only

    out = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller
    try:
        with archive.open(info) as member:
            while chunk := member.read(CHUNK):
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        out.close()
        raise FsprecError(f"{info.filename} in {path.name} is damaged ({err}).") from err
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def check_crcs(path: Path, names: list[str] | None = None, skip: str = "",
               cancelled: CancelCheck = lambda: False, mapped: bool = False) -> None:
    """Raise :class:`FsprecError` unless each member (``names``, or all but ``skip``) matches
    its stored CRC. ``mapped`` sums stored members through a memory map (no copy of the
    bytes: a read at memory speed); only in a child process, where a file truncated meanwhile
    ends the child (``SIGBUS``) rather than the caller (see :mod:`.h5guard`)."""
    with open_zip(path) as archive, open(path, "rb") as handle:
        infos = [archive.getinfo(n) for n in names] if names is not None else [
            i for i in archive.infolist() if i.filename != skip]
        size = os.fstat(handle.fileno()).st_size
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                continue
            start = data_offset(handle, info)
            if start + info.compress_size > size:
                raise FsprecError(f"{path.name} is truncated: {info.filename} is incomplete.")
            checksum = (_mapped_crc(handle.fileno(), start, info.compress_size, cancelled)
                        if mapped else _crc_of(handle.fileno(), start, info.compress_size))
            if checksum != info.CRC:
                raise FsprecError(f"{info.filename} in {path.name} is damaged (CRC mismatch).")
        _check_compressed(path, [i for i in infos if i.compress_type != zipfile.ZIP_STORED],
                          cancelled)


def _mapped_crc(fd: int, start: int, length: int, cancelled: CancelCheck) -> int:
    """crc32 of a byte range, mapped :data:`KERNEL_CHUNK` bytes at a time (so the address
    space stays small under the guard's memory cap)."""
    checksum, offset, end = 0, start, start + length
    while offset < end:
        if cancelled():
            raise Cancelled("Cancelled; nothing was changed.")
        base = offset - offset % mmap.ALLOCATIONGRANULARITY
        size = min(KERNEL_CHUNK, end - base)
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ, offset=base) as view, \
                memoryview(view) as data:
            checksum = zlib.crc32(data[offset - base:], checksum)
        offset = base + size
    return checksum


def _copy_range(src: BinaryIO, dst: BinaryIO, start: int, length: int, progress: Progress,
                total: int, cancelled: CancelCheck) -> int:
    """Copy ``length`` bytes of ``src`` from offset ``start`` to the end of ``dst``, in the
    kernel where the OS can copy file ranges (Linux); returns the source offset reached."""
    if length and hasattr(os, "copy_file_range") and fast_paths() and _kernel_copy(
            src, dst, start, length, progress, total, cancelled):
        return start + length
    src.seek(start)
    done, end = start, start + length
    while done < end:
        if cancelled():
            raise Cancelled("Cancelled; nothing was changed.")
        chunk = src.read(min(CHUNK, end - done))
        if not chunk:
            raise FsprecError("The model file ended early while copying (truncated file?).")
        dst.write(chunk)
        done += len(chunk)
        progress(done, total)
    return done


def _pread(fd: int, count: int, offset: int) -> bytes:
    """``os.pread``, or seek + read where the OS has none (Windows) or in portable mode."""
    if hasattr(os, "pread") and fast_paths():
        return os.pread(fd, count, offset)
    with open(fd, "rb", closefd=False) as handle:
        handle.seek(offset)
        return handle.read(count)


def _crc_of(fd: int, start: int, length: int) -> int:
    """crc32 of a byte range of an open file (releases the GIL while it reads and sums)."""
    checksum, offset, end = 0, start, start + length
    while offset < end:
        chunk = _pread(fd, min(CHUNK, end - offset), offset)
        if not chunk:
            raise FsprecError("The model file ended early while copying (truncated file?).")
        checksum = zlib.crc32(chunk, checksum)
        offset += len(chunk)
    return checksum


def _kernel_copy(src: BinaryIO, dst: BinaryIO, start: int, length: int, progress: Progress,
                 total: int, cancelled: CancelCheck) -> bool:
    """Copy with ``os.copy_file_range``; False (nothing copied) where it is not supported.

    Where source and destination offsets are congruent modulo the block size (see
    :func:`_alignment`) and the file system can share extents (XFS, btrfs), the kernel clones
    the blocks instead of copying them.

    Write-back of the copied pages is started as the copy goes (a background ``fdatasync``
    after each full chunk), so the caller's final fsync has little left to wait for. A short
    copy (a small member) starts none: flushing a file just created waits for a journal
    commit of the file system (14-120 ms on ext4 here), and the final fsync covers it.
    """
    dst.flush()
    out_start = dst.tell()
    copied = 0
    with ThreadPoolExecutor(1) as flusher:
        flushing = None
        while copied < length:
            if cancelled():
                raise Cancelled("Cancelled; nothing was changed.")
            try:
                # The first step ends on a block boundary, so the rest can be shared (reflink)
                step = -(start + copied) % BLOCK or KERNEL_CHUNK
                count = os.copy_file_range(src.fileno(), dst.fileno(),
                                           min(step, length - copied),
                                           start + copied, out_start + copied)
            except OSError:
                if copied:
                    raise
                return False
            if count == 0:
                raise FsprecError("The model file ended early while copying (truncated file?).")
            copied += count
            progress(start + copied, total)
            if count >= KERNEL_CHUNK and (flushing is None or flushing.done()):
                flushing = flusher.submit(os.fdatasync, dst.fileno())
    dst.seek(out_start + length)
    return True


def rewrite_member(src_path: Path, dst: BinaryIO, name: str, data: bytes,
                   progress: Progress = lambda d, t: None,
                   cancelled: CancelCheck = lambda: False) -> None:
    """Write to ``dst`` a copy of the zip ``src_path`` whose member ``name`` holds ``data``.

    Members keep their order, names, dates and compression; all but ``name`` are copied raw.
    The bytes are not checked here: the caller proves the copied members' CRCs
    (:func:`check_crcs`; a conversion has the guard's child do it while this copies).
    """
    total = src_path.stat().st_size
    with open_zip(src_path) as zin, open(src_path, "rb") as fsrc:
        infos = zin.infolist()
        if name not in zin.NameToInfo:
            raise FsprecError(f"{src_path.name} has no {name} member.")
        ends = sorted({i.header_offset for i in infos} | {_central_dir_offset(zin, total)})
        with zipfile.ZipFile(dst, "w") as zout:
            for info in infos:
                start = info.header_offset
                end = next(e for e in ends if e > start)
                if info.filename == name:
                    new = zipfile.ZipInfo(info.filename, info.date_time)
                    new.compress_type = info.compress_type
                    new.external_attr = info.external_attr
                    new.create_system = info.create_system
                    new.comment = info.comment
                    if new.compress_type == zipfile.ZIP_STORED and fast_paths():
                        new.extra = _alignment(zout.fp.tell(), new, len(data), end)
                    zout.writestr(new, data)
                    progress(end, total)
                    continue
                raw = copy.copy(info)
                raw.header_offset = zout.fp.tell()
                body = data_offset(fsrc, info)
                zout.fp.write(_read_exact(fsrc, start, body - start))
                done = _copy_range(fsrc, zout.fp, body, info.compress_size, progress, total,
                                   cancelled)
                tail = end - done  # a data descriptor, if any
                if tail < 0:
                    raise FsprecError(f"{info.filename} in {src_path.name} overlaps the next "
                                      "member (damaged zip); nothing was changed.")
                _copy_range(fsrc, zout.fp, done, tail, progress, total, cancelled)
                zout.filelist.append(raw)
                zout.NameToInfo[raw.filename] = raw
                zout.start_dir = zout.fp.tell()
        progress(total, total)


def _check_compressed(path: Path, infos: list[zipfile.ZipInfo], cancelled: CancelCheck) -> None:
    """Inflate each compressed member once, so that a CRC error in a member copied raw is
    found before the copy is used."""
    with zipfile.ZipFile(path) as archive:
        for info in infos:
            try:
                with archive.open(info) as member:
                    while member.read(CHUNK):
                        if cancelled():
                            raise Cancelled("Cancelled; nothing was changed.")
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                    OSError) as err:
                raise FsprecError(f"{info.filename} in {path.name} is damaged ({err}); "
                                  "nothing was changed.") from err


def _alignment(offset: int, info: zipfile.ZipInfo, size: int, source_end: int) -> bytes:
    """An extra field (zipalign's id 0xD935) that makes the new member end at the same offset
    modulo :data:`BLOCK` as the old one, so every member after it keeps its block alignment
    and the file system can share its extents with the source (reflink) instead of copying."""
    end = offset + _LOCAL_HEADER.size + len(info.filename.encode("utf-8")) + size
    pad = -(end - source_end) % BLOCK
    if pad == 0:
        return b""
    if pad < _PAD_HEADER.size:
        pad += BLOCK
    return _PAD_HEADER.pack(_ALIGN_ID, pad - _PAD_HEADER.size) + bytes(pad - _PAD_HEADER.size)


def _read_exact(src: BinaryIO, start: int, length: int) -> bytes:
    src.seek(start)
    data = src.read(length)
    if len(data) != length:
        raise FsprecError("The model file ended early (truncated file?).")
    return data


def _central_dir_offset(archive: zipfile.ZipFile, total: int) -> int:
    """Offset of the central directory: the end of the last member's bytes."""
    return getattr(archive, "start_dir", total)

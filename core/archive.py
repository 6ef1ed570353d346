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
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from .errors import Cancelled, FsprecError

CHUNK = 8 * 1024 * 1024
KERNEL_CHUNK = 32 * 1024 * 1024
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a ``.keras`` file, turning a broken zip into a clear :class:`FsprecError`."""
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise FsprecError(f"{path.name} is not a valid .keras file (broken zip: {err}).") from err
    except OSError as err:
        raise FsprecError(f"{path.name} cannot be read: {err}") from err


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
    archive = zipfile.ZipFile(path)
    return archive.open(name)  # compressed: zipfile decompresses (slower, still streaming)


def _copy_range(src: BinaryIO, dst: BinaryIO, start: int, length: int, progress: Progress,
                total: int, cancelled: CancelCheck, crc: bool) -> tuple[int, int]:
    """Copy ``length`` bytes of ``src`` from offset ``start`` to the end of ``dst``.

    Returns (source offset reached, crc32 of the bytes when ``crc``). Where the OS can copy
    file ranges in the kernel (Linux), it does, while a second thread checks the CRC.
    """
    if length and hasattr(os, "copy_file_range") and hasattr(os, "pread"):
        with ThreadPoolExecutor(1) as pool:
            checksum = pool.submit(_crc_of, src.fileno(), start, length) if crc else None
            if _kernel_copy(src, dst, start, length, progress, total, cancelled):
                return start + length, checksum.result() if checksum else 0
            if checksum:
                checksum.cancel()
    src.seek(start)
    checksum_value, done, end = 0, start, start + length
    while done < end:
        if cancelled():
            raise Cancelled("Cancelled; nothing was changed.")
        chunk = src.read(min(CHUNK, end - done))
        if not chunk:
            raise FsprecError("The model file ended early while copying (truncated file?).")
        dst.write(chunk)
        if crc:
            checksum_value = zlib.crc32(chunk, checksum_value)
        done += len(chunk)
        progress(done, total)
    return done, checksum_value


def _crc_of(fd: int, start: int, length: int) -> int:
    """crc32 of a byte range of an open file (releases the GIL while it reads and sums)."""
    checksum, offset, end = 0, start, start + length
    while offset < end:
        chunk = os.pread(fd, min(CHUNK, end - offset), offset)
        if not chunk:
            raise FsprecError("The model file ended early while copying (truncated file?).")
        checksum = zlib.crc32(chunk, checksum)
        offset += len(chunk)
    return checksum


def _kernel_copy(src: BinaryIO, dst: BinaryIO, start: int, length: int, progress: Progress,
                 total: int, cancelled: CancelCheck) -> bool:
    """Copy with ``os.copy_file_range``; False (nothing copied) where it is not supported.

    Write-back of the copied pages is started as the copy goes (a background ``fdatasync``),
    so the caller's final fsync has little left to wait for.
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
                count = os.copy_file_range(src.fileno(), dst.fileno(),
                                           min(KERNEL_CHUNK, length - copied),
                                           start + copied, out_start + copied)
            except OSError:
                if copied:
                    raise
                return False
            if count == 0:
                raise FsprecError("The model file ended early while copying (truncated file?).")
            copied += count
            progress(start + copied, total)
            if flushing is None or flushing.done():
                flushing = flusher.submit(os.fdatasync, dst.fileno())
    dst.seek(out_start + length)
    return True


def rewrite_member(src_path: Path, dst: BinaryIO, name: str, data: bytes,
                   progress: Progress = lambda d, t: None,
                   cancelled: CancelCheck = lambda: False) -> None:
    """Write to ``dst`` a copy of the zip ``src_path`` whose member ``name`` holds ``data``.

    Members keep their order, names, dates and compression; all but ``name`` are copied raw.
    Stored members are CRC-checked on the way, so a damaged source is never passed on.
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
                    zout.writestr(new, data)
                    progress(end, total)
                    continue
                raw = copy.copy(info)
                raw.header_offset = zout.fp.tell()
                body = data_offset(fsrc, info)
                zout.fp.write(_read_exact(fsrc, start, body - start))
                stored = info.compress_type == zipfile.ZIP_STORED
                done, checksum = _copy_range(fsrc, zout.fp, body, info.compress_size, progress,
                                             total, cancelled, crc=stored)
                if stored and checksum != info.CRC:
                    raise FsprecError(f"{info.filename} in {src_path.name} is damaged "
                                      "(CRC mismatch); nothing was changed.")
                tail = end - done  # a data descriptor, if any
                if tail < 0:
                    raise FsprecError(f"{info.filename} in {src_path.name} overlaps the next "
                                      "member (damaged zip); nothing was changed.")
                _copy_range(fsrc, zout.fp, done, tail, progress, total, cancelled, crc=False)
                zout.filelist.append(raw)
                zout.NameToInfo[raw.filename] = raw
                zout.start_dir = zout.fp.tell()
        progress(total, total)


def _read_exact(src: BinaryIO, start: int, length: int) -> bytes:
    src.seek(start)
    data = src.read(length)
    if len(data) != length:
        raise FsprecError("The model file ended early (truncated file?).")
    return data


def _central_dir_offset(archive: zipfile.ZipFile, total: int) -> int:
    """Offset of the central directory: the end of the last member's bytes."""
    return getattr(archive, "start_dir", total)

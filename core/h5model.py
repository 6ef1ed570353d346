"""Write a Keras 2 ``.h5`` model (Faceswap 2) with a new ``model_config``, and prove the copy.

The file is copied byte for byte to the conversion's temp file, its ``model_config`` attribute
rewritten in place (same string type as before), fsynced, then every weight dataset of the copy
is compared with the source's as stored: the same shape, dtype and creation properties
(filters, chunks, fill value) and the same stored bytes, chunk by chunk, so nothing is
decompressed; a dataset kept in its object header is compared by value. h5py is imported here
only, so a conversion of a ``.keras`` model never loads it in the main process.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import h5py
import numpy as np

from . import atomic
from .archive import CHUNK
from .errors import FsprecError
from .modelfile import read_config
from .task import Task
from .weights import H5_ERRORS


def write(source: Path, target: Path, config: dict, task: Task) -> None:
    atomic.copy_temp(source, target, task, "Writing model")
    tmp = atomic.temp_path(target)
    try:
        text = json.dumps(config)
        with _damage_as_sentence(source), h5py.File(tmp, "r+") as h5:
            kind = h5.attrs.get_id("model_config").get_type()
            if isinstance(kind, h5py.h5t.TypeStringID) and kind.is_variable_str():
                encoding = "utf-8" if kind.get_cset() == h5py.h5t.CSET_UTF8 else "ascii"
                h5.attrs.create("model_config", text,
                                dtype=h5py.string_dtype(encoding if text.isascii() else "utf-8"))
            else:
                h5.attrs["model_config"] = np.bytes_(text.encode("utf-8"))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        task.progress("Verifying", 0, 1)
        _verify(source, tmp, config, task)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _damage_as_sentence(source: Path) -> Iterator[None]:
    """h5py's errors other than OSError (a write failing) mean a damaged source file."""
    try:
        yield
    except OSError:
        raise
    except H5_ERRORS as err:
        raise FsprecError(f"{source.name} is damaged and cannot be converted; nothing was "
                          "changed.") from err


def _stored(dataset: h5py.Dataset, layout: int) -> list[tuple[tuple, int, int, int]] | None:
    """``(chunk position, filter mask, file offset, size)`` of each piece of the dataset's
    stored data, or None where it is not in the file's body (compact, external, not written)."""
    dsid = dataset.id
    if layout == h5py.h5d.CONTIGUOUS:
        offset = dsid.get_offset()
        return None if offset is None else [((), 0, offset, dsid.get_storage_size())]
    if layout == h5py.h5d.CHUNKED:
        chunks = [dsid.get_chunk_info(i) for i in range(dsid.get_num_chunks())]
        return [(c.chunk_offset, c.filter_mask, c.byte_offset, c.size) for c in chunks]
    return None


def _same_bytes(a: BinaryIO, a_offset: int, b: BinaryIO, b_offset: int, size: int) -> bool:
    a.seek(a_offset)
    b.seek(b_offset)
    done = 0
    while done < size:
        count = min(CHUNK, size - done)
        left = a.read(count)
        if not left or left != b.read(count):
            return False
        done += len(left)
    return True


def _same(a: h5py.Dataset, b: h5py.Dataset, a_file: BinaryIO, b_file: BinaryIO) -> bool:
    """Whether two datasets hold the same values, compared as stored where they can be."""
    created = a.id.get_create_plist()
    if a.shape != b.shape or a.dtype != b.dtype or not created.equal(b.id.get_create_plist()):
        return False
    layout = created.get_layout()
    pieces, others = _stored(a, layout), _stored(b, layout)
    if pieces is None or others is None:
        return pieces == others and np.array_equal(a[()], b[()])
    if [p[:2] + p[3:] for p in pieces] != [o[:2] + o[3:] for o in others]:
        return False
    return all(_same_bytes(a_file, p[2], b_file, o[2], p[3])
               for p, o in zip(pieces, others, strict=True))


def _verify(source: Path, written: Path, config: dict, task: Task) -> None:
    try:
        _compare(source, written, config, task)
    except H5_ERRORS as err:
        raise FsprecError(f"The weights in {source.name} are damaged and cannot be read; "
                          "nothing was changed.") from err


def _compare(source: Path, written: Path, config: dict, task: Task) -> None:
    _, new_config, _ = read_config(written, "keras2")
    if new_config != config:
        raise FsprecError("Verification failed: the written config differs.")
    with h5py.File(source, "r") as old, h5py.File(written, "r") as new, \
            open(source, "rb") as old_bytes, open(written, "rb") as new_bytes:
        paths: list[str] = []
        old.visititems(lambda name, obj: paths.append(name)
                       if isinstance(obj, h5py.Dataset) else None)
        for index, path in enumerate(paths):
            task.check()
            a, b = old[path], new.get(path)
            if not isinstance(b, h5py.Dataset) or not _same(a, b, old_bytes, new_bytes):
                raise FsprecError(f"Verification failed: weights {path} differ from the source.")
            task.progress("Verifying", index + 1, len(paths))

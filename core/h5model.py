"""Write a Keras 2 ``.h5`` model (Faceswap 2) with a new ``model_config``, and prove the copy.

The file is copied byte for byte to the conversion's temp file, its ``model_config`` attribute
rewritten in place (same string type as before), fsynced, then every weight dataset of the copy
is compared with the source's by digest. h5py is imported here only, so a conversion of a
``.keras`` model never loads it in the main process.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def _digest(dataset: h5py.Dataset) -> str:
    digest = hashlib.blake2b()
    if dataset.shape == () or dataset.size == 0:
        digest.update(np.asarray(dataset[()]).tobytes())
        return digest.hexdigest()
    rows = max(1, CHUNK // max(1, dataset.dtype.itemsize * (dataset.size // dataset.shape[0])))
    for start in range(0, dataset.shape[0], rows):
        digest.update(np.ascontiguousarray(dataset[start:start + rows]).tobytes())
    return digest.hexdigest()


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
    with h5py.File(source, "r") as old, h5py.File(written, "r") as new:
        paths: list[str] = []
        old.visititems(lambda name, obj: paths.append(name)
                       if isinstance(obj, h5py.Dataset) else None)
        for index, path in enumerate(paths):
            task.check()
            a, b = old[path], new.get(path)
            if not isinstance(b, h5py.Dataset) or a.shape != b.shape or a.dtype != b.dtype \
                    or _digest(a) != _digest(b):
                raise FsprecError(f"Verification failed: weights {path} differ from the source.")
            task.progress("Verifying", index + 1, len(paths))

"""Index the weights file of a model (h5py only): which datasets belong to which layer.

Only h5 metadata is read (names, shapes, dtypes); weight data is never touched here. The index
is built in the guard's child process (:func:`index_weights`, :mod:`.h5guard`); h5py and numpy
are imported only where a function needs them, so a command on a ``.keras`` does not load them
in the main process.
Keras 3 (``model.weights.h5`` in the ``.keras`` zip): ``layers/<key>/vars`` groups, mapped to
config layers through the ``vars`` group's ``name`` attribute (or Keras's own key naming when
it is absent). Keras 2 (``.h5``): ``model_weights/<layer>`` groups listed in ``layer_names``,
with ``weight_names`` naming each dataset; both attributes may be split into numbered chunks.
"""
from __future__ import annotations

import re
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import TYPE_CHECKING

from . import bounds, h5guard
from .archive import HDF5_SIGNATURE, data_offset, open_member, open_zip
from .errors import FsprecError
from .config import entry_name, is_model_entry, iter_leaves

if TYPE_CHECKING:
    import h5py

WEIGHTS_MEMBER = "model.weights.h5"
# What h5py raises on a damaged file, besides OSError: bad indices, types, names, encodings.
H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError,
             UnicodeDecodeError, AttributeError, RecursionError)


@dataclass(frozen=True)
class Weight:
    """One stored weight array."""

    layer: str
    name: str
    h5path: str
    shape: tuple[int, ...]
    dtype: str
    offset: int | None = None  # where contiguous, unfiltered data starts in the h5 file

    @property
    def size(self) -> int:
        """Number of elements."""
        return prod(self.shape)

    @property
    def itemsize(self) -> int:
        """Bytes per element (1 where the dtype is not a plain number type)."""
        import numpy as np

        try:
            return np.dtype(self.dtype).itemsize or 1
        except TypeError:
            return 1


@dataclass
class WeightsIndex:
    """All weight arrays of a model, attributed to layer paths."""

    weights: list[Weight] = field(default_factory=list)
    base: int | None = 0  # where the h5 file starts in the model file (None: compressed)

    @property
    def params(self) -> dict[str, int]:
        """Parameter count per layer path."""
        counts: dict[str, int] = defaultdict(int)
        for weight in self.weights:
            counts[weight.layer] += weight.size
        return dict(counts)

    @property
    def total_params(self) -> int:
        """Parameters in the whole model."""
        return sum(w.size for w in self.weights)


@contextmanager
def open_weights(model_file: Path, fmt: str) -> Iterator[h5py.Group]:
    """Open the weights root group: ``model.weights.h5`` of a ``.keras``, ``model_weights`` of
    a Keras 2 ``.h5`` (read by a child process first: :mod:`.h5guard`)."""
    h5guard.check(model_file, fmt)
    with _open_root(model_file, fmt) as root:
        yield root


@contextmanager
def _open_root(model_file: Path, fmt: str) -> Iterator[h5py.Group]:
    import h5py

    try:
        if fmt == "keras3":
            with open_member(model_file, WEIGHTS_MEMBER) as stream:
                if stream.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                    raise FsprecError(f"{WEIGHTS_MEMBER} in {model_file.name} is not an HDF5 "
                                      "file.")
                stream.seek(0)
                with h5py.File(stream, "r") as h5:
                    yield h5
        else:
            with h5py.File(model_file, "r") as h5:
                if not isinstance(h5.get("model_weights"), h5py.Group):
                    raise FsprecError(f"{model_file.name} holds no model weights.")
                yield h5["model_weights"]
    except H5_ERRORS as err:
        raise FsprecError(f"The weights in {model_file.name} are damaged and cannot be "
                          "read.") from err


def snake_case(name: str) -> str:
    """Keras's ``to_snake_case``: the key it gives an object in the weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name


def _keras_keys(entries: list[dict]) -> dict[str, dict]:
    """Keras's weight-file keys for a container's layers, in config order."""
    keys: dict[str, dict] = {}
    seen: dict[str, int] = defaultdict(int)
    for entry in entries:
        class_name = entry.get("class_name", "")
        base = snake_case("Functional" if is_model_entry(entry) and class_name == "Model"
                      else class_name)
        key = base if seen[base] == 0 else f"{base}_{seen[base]}"
        seen[base] += 1
        keys[key] = entry
    return keys


def _datasets(group: h5py.Group, skip: str | None = None) -> Iterator[h5py.Dataset]:
    """Every dataset below ``group`` (sorted, as Keras numbers ``vars/0``, ``vars/1`` ...)."""
    import h5py

    for key in sorted(group.keys(), key=lambda k: (len(k), k)):
        if key == skip:
            continue
        item = group[key]
        if isinstance(item, h5py.Dataset):
            yield item
        elif isinstance(item, h5py.Group):
            yield from _datasets(item)


def _index_keras3(group: h5py.Group, entries: list[dict], prefix: str,
                  out: list[Weight]) -> None:
    import h5py

    if "layers" not in group:
        return
    by_name = {entry_name(e): e for e in entries}
    by_key = _keras_keys(entries)
    for key, child in group["layers"].items():
        if not isinstance(child, h5py.Group):
            continue
        vars_group = child.get("vars")
        stored_name = vars_group.attrs.get("name") if isinstance(vars_group, h5py.Group) else None
        if isinstance(stored_name, bytes):
            stored_name = stored_name.decode()
        entry = by_name.get(stored_name) if stored_name else None
        entry = entry or by_key.get(key)
        path = f"{prefix}{entry_name(entry)}" if entry else f"{prefix}?{key}"
        if entry is not None and is_model_entry(entry):
            _index_keras3(child, entry["config"]["layers"], f"{path}/", out)
            if isinstance(vars_group, h5py.Group):
                out.extend(_weights(path, _datasets(vars_group)))
            continue
        out.extend(_weights(path, _datasets(child)))


def _weight(path: str, name: str, dataset: h5py.Dataset) -> Weight:
    contiguous = dataset.chunks is None and dataset.shape != () and dataset.size > 0
    return Weight(path, name, dataset.name, tuple(int(d) for d in dataset.shape),
                  str(dataset.dtype), dataset.id.get_offset() if contiguous else None)


def _weights(path: str, datasets: Iterator[h5py.Dataset]) -> Iterator[Weight]:
    for dataset in datasets:
        yield _weight(path, dataset.name.rsplit("/", 1)[-1], dataset)


def read_attr(obj: h5py.HLObject, name: str, limit: int = bounds.MAX_ATTR):
    """An h5 attribute's value, refusing one that stores more than ``limit`` bytes."""
    try:
        size = obj.attrs.get_id(name).get_storage_size()
    except RuntimeError:  # h5py raises for an empty attribute
        size = 0
    bounds.check_size(size, f"The attribute {name!r} of {obj.name}", limit)
    return obj.attrs[name]


def chunked_attr(group: h5py.Group, name: str) -> list[str]:
    """Read a Keras 2 list attribute that may be split into ``name0``, ``name1``, ..."""
    if name in group.attrs:
        values = list(read_attr(group, name))
    else:
        values = []
        chunk = 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(read_attr(group, f"{name}{chunk}"))
            chunk += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _index_keras2(group: h5py.Group, entries: list[dict], out: list[Weight]) -> None:
    import h5py

    by_name = {entry_name(e): e for e in entries}
    for layer_name in chunked_attr(group, "layer_names"):
        if layer_name not in group:
            continue
        entry = by_name.get(layer_name)
        leaves = ({entry_name(e): p for p, e in iter_leaves(entry["config"]["layers"],
                                                            f"{layer_name}/")}
                  if entry is not None and is_model_entry(entry) else {})
        layer_group = group[layer_name]
        for weight_name in chunked_attr(layer_group, "weight_names"):
            dataset = layer_group.get(weight_name)
            if not isinstance(dataset, h5py.Dataset):
                continue
            owner = weight_name.split("/", 1)[0]
            path = leaves.get(owner, layer_name) if leaves else layer_name
            out.append(_weight(path, weight_name, dataset))


def index_weights(model_file: Path, fmt: str, config_layers: list[dict],
                  cancelled: h5guard.CancelCheck = lambda: False) -> WeightsIndex:
    """Index every weight array of a model file against its config's layers (built by the
    guard's child process; see :func:`read_index`)."""
    return h5guard.start(model_file, fmt, config_layers).index(cancelled)


def read_index(model_file: Path, fmt: str, config_layers: list[dict]) -> WeightsIndex:
    """Build the weights index here, in this process (the guard's child calls it)."""
    weights: list[Weight] = []
    with _open_root(model_file, fmt) as root:
        try:
            if fmt == "keras3":
                _index_keras3(root, config_layers, "", weights)
            else:
                _index_keras2(root, config_layers, weights)
        except H5_ERRORS as err:
            raise FsprecError(f"The weights in {model_file.name} are damaged and cannot be "
                              "read.") from err
    _check_sizes(model_file, weights)
    return WeightsIndex(weights, _h5_start(model_file) if fmt == "keras3" else 0)


def _check_sizes(model_file: Path, weights: list[Weight]) -> None:
    """Refuse weights that declare more values than the file could hold (an h5 bomb)."""
    declared = sum(w.size * w.itemsize for w in weights)
    if len(weights) > bounds.MAX_DATASETS or declared > min(
            bounds.MAX_WEIGHTS, model_file.stat().st_size * bounds.MAX_WEIGHT_RATIO
            + bounds.MAX_WEIGHT_SLACK):
        raise FsprecError(f"The weights in {model_file.name} declare far more values than "
                          "the file holds (a damaged or hostile file).")


def _h5_start(model_file: Path) -> int | None:
    """Where the weights h5 starts inside a ``.keras`` (None when its member is compressed)."""
    with open_zip(model_file) as archive, open(model_file, "rb") as handle:
        info = archive.getinfo(WEIGHTS_MEMBER)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        return data_offset(handle, info)

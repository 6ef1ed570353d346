"""Read a Faceswap model folder without Keras: model file, config, metadata, state, backups."""
from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from . import bounds, faceswap, h5guard, structure
from .archive import open_zip
from .config import leaf_names, model_layers
from .errors import FsprecError
from .layers import (MIXED_POLICIES, Layer, Partial, build_tree, partial_of, pinned_of,
                     precision_of, resolve_eligible)
from .state import State
from .weights import H5_ERRORS, WEIGHTS_MEMBER, WeightsIndex, read_attr

Format = Literal["keras3", "keras2"]
CONFIG_MEMBER = "config.json"
METADATA_MEMBER = "metadata.json"


@dataclass
class ModelFolder:
    """Everything fsprec knows about one Faceswap model folder (read-only)."""

    path: Path
    plugin: str
    format: Format
    model_file: Path
    config: dict[str, Any]
    metadata: dict[str, Any]
    state_file: Path | None = None
    state: State | None = None
    state_problem: str | None = None
    backups: list[Path] = field(default_factory=list)
    snapshots: list[Path] = field(default_factory=list)
    _reading: h5guard.Reading | None = field(default=None, repr=False, compare=False)

    @property
    def keras_version(self) -> str:
        """The Keras version that saved the model ("" when unknown)."""
        return str(self.metadata.get("keras_version", ""))

    @property
    def keras_major(self) -> int:
        """3 for Keras 3 files, 2 for Keras 2 (the dtype forms to write)."""
        match = re.match(r"\s*(\d+)", self.keras_version)
        if match:
            return int(match.group(1))
        return 3 if self.format == "keras3" else 2

    @property
    def config_layers(self) -> list[dict]:
        """The top-level ``layers`` list of the model config."""
        return model_layers(self.config)

    @property
    def iterations(self) -> int:
        """Training iterations from the state file (0 without one)."""
        return self.state.iterations if self.state else 0

    def reading(self, crc: bool = False) -> h5guard.Reading:
        """The child process reading this model's weights file (:mod:`.h5guard`), started on
        first use; ``crc`` also has it prove every zip member's CRC (what a conversion
        copies; a Keras 2 file has none). The caller goes on while it reads."""
        crc = crc and self.format == "keras3"
        if self._reading is None or not self._reading.usable or (
                crc and not self._reading.wants("crc")):
            if self._reading is not None:
                self._reading.close()
            self._reading = h5guard.start(self.model_file, self.format, self.config_layers, crc)
        return self._reading

    def check_readable(self, cancelled: h5guard.CancelCheck = lambda: False) -> None:
        """Wait for the guard's child to index the weights and prove every zip member's CRC;
        raise :class:`FsprecError` when they are damaged, or missing for the layers (what
        Keras would fail on, said before anything is written or started)."""
        reading = self.reading(crc=True)
        if not reading.index(cancelled).weights and self.leaves(with_params=False):
            raise FsprecError(f"{self.model_file.name} holds no weights for its layers; Keras "
                              "would not load it.")
        if reading.wants("crc"):
            reading.crcs(cancelled)

    @cached_property
    def weights(self) -> WeightsIndex:
        """The weights index (h5 metadata only; computed on first use)."""
        return self.reading().index()

    @cached_property
    def _eligible(self) -> tuple[list[str], str]:
        stored = self.state.mixed_precision_layers if self.state else None
        return resolve_eligible(self.config_layers,
                                faceswap.state_layer_names(stored) if stored else None)

    @property
    def eligible(self) -> list[str]:
        """Names of the layers that may run in mixed precision, in config order."""
        return self._eligible[0]

    @property
    def eligible_source(self) -> str:
        """Where the eligible set came from: ``state``, ``config`` or ``derived``."""
        return self._eligible[1]

    def layer_tree(self, with_params: bool = True) -> list[Layer]:
        """The nested layer tree; ``with_params=False`` skips the weights index entirely."""
        params = self.weights.params if with_params else {}
        return build_tree(self.config_layers, set(self.eligible), self.eligible_source, params)

    def leaves(self, with_params: bool = True) -> list[Layer]:
        """Every layer that is not a sub-model, in config order."""
        return [layer for top in self.layer_tree(with_params) for layer in top.walk()
                if not layer.is_model]

    @cached_property
    def partial(self) -> Partial | None:
        """Why the model is ``partial`` (layers that disagree), or None when consistent."""
        return partial_of(self.leaves(with_params=False),
                          self.state.mixed_precision if self.state else None)

    @cached_property
    def precision(self) -> str:
        """``float32``, ``mixed_float16``, ``mixed_bfloat16`` or ``partial``."""
        if self.partial is not None:
            return "partial"
        return precision_of(self.leaves(with_params=False))

    @property
    def consistent_precision(self) -> str:
        """The precision that makes this model consistent ("Make consistent"): the state's
        ``mixed_precision`` when it has one (what Faceswap trains it as), else what most
        eligible layers hold."""
        leaves = self.leaves(with_params=False)
        mixed = [leaf.dtype_policy for leaf in leaves
                 if leaf.eligible and leaf.dtype_policy in MIXED_POLICIES]
        policy = max(set(mixed), key=mixed.count) if mixed else "mixed_float16"
        flag = self.state.mixed_precision if self.state else None
        if flag is None:
            flag = len(mixed) * 2 >= sum(1 for leaf in leaves if leaf.eligible) > 0
        return policy if flag else "float32"

    @property
    def pinned(self) -> list[str]:
        """Eligible layers left in float32 in a mixed model."""
        return pinned_of(self.leaves(with_params=False), self.precision)

    def layer_names(self) -> set[str]:
        """Every leaf layer name of the model."""
        return set(leaf_names(self.config_layers))

    def to_json(self, with_params: bool = True) -> dict[str, Any]:
        """The ``fsprec inspect --json`` document (DESIGN.md §3)."""
        tree = self.layer_tree(with_params)
        return {
            "format": self.format,
            "plugin": self.plugin,
            "model_file": str(self.model_file),
            "state_file": str(self.state_file) if self.state_file else None,
            "keras_version": self.keras_version,
            "precision": self.precision,
            "partial": self.partial.to_json() if self.partial else None,
            "eligible_source": self.eligible_source,
            "layers": [layer.to_json() for top in tree for layer in top.walk()],
            "eligible": self.eligible,
            "pinned": self.pinned,
            "iterations": self.iterations,
            "state_problem": self.state_problem,
            "backups": [str(p) for p in self.backups],
        }


def _candidates(folder: Path) -> list[Path]:
    """Model files in a folder: ``<plugin>.keras`` or legacy ``<plugin>.h5``."""
    found = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix not in faceswap.MODEL_SUFFIXES:
            continue
        if path.stem.endswith("_inference"):
            continue
        found.append(path)
    keras = {p.stem for p in found if p.suffix == ".keras"}
    # Faceswap upgrades <plugin>.h5 to <plugin>.keras and keeps the .h5: the .keras wins.
    return [p for p in found if p.suffix == ".keras" or p.stem not in keras]


def find_model_file(folder: Path) -> Path:
    """The one model file of a folder, or a clear error."""
    if not folder.is_dir():
        raise FsprecError(f"{folder} is not a folder.")
    candidates = _candidates(folder)
    if not candidates:
        raise FsprecError(f"No Faceswap model (<plugin>.keras or <plugin>.h5) in {folder}.")
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise FsprecError(f"{folder} holds more than one model ({names}); "
                          "keep one model per folder as Faceswap does.")
    return candidates[0]


def _read_keras3(path: Path) -> tuple[dict, dict]:
    with open_zip(path) as archive:  # declared sizes, ratios and duplicates checked here
        names = set(archive.namelist())
        for member in (CONFIG_MEMBER, METADATA_MEMBER, WEIGHTS_MEMBER):
            if member not in names:
                raise FsprecError(f"{path.name} is not a Keras 3 model: no {member} inside.")
        try:
            config_bytes = archive.read(CONFIG_MEMBER)
            metadata_bytes = archive.read(METADATA_MEMBER)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as err:
            raise FsprecError(f"{path.name} is damaged ({err}).") from err
    config = bounds.loads(config_bytes, f"config.json in {path.name}", bounds.MAX_CONFIG)
    metadata = bounds.loads(metadata_bytes, f"metadata.json in {path.name}", bounds.MAX_METADATA)
    return (structure.model_config(config, path.name),
            structure.metadata(metadata, f"{path.name}"))


def _read_keras2(path: Path) -> tuple[dict, dict]:
    import h5py

    h5guard.check(path, "keras2")
    try:
        with h5py.File(path, "r") as h5:
            if "model_config" not in h5.attrs:
                raise FsprecError(f"{path.name} is not a Keras model file (no model_config).")
            raw = read_attr(h5, "model_config", bounds.MAX_CONFIG)
            metadata = {key: _text(read_attr(h5, key, bounds.MAX_METADATA))
                        for key in ("keras_version", "backend") if key in h5.attrs}
    except H5_ERRORS as err:
        raise FsprecError(f"{path.name} is not a readable HDF5 file ({err}).") from err
    try:
        text = _text(raw)
    except UnicodeDecodeError as err:
        raise FsprecError(f"{path.name} has an unreadable model_config ({err}).") from err
    config = bounds.loads(text, f"The model_config of {path.name}", bounds.MAX_CONFIG)
    return structure.model_config(config, path.name), metadata


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
        if isinstance(value, bytes):
            return value.decode("utf-8")
    return str(value)


def read_config(model_file: Path, fmt: Format | None = None) -> tuple[Format, dict, dict]:
    """Format, model config and metadata of a model file (no weight data read); the format
    comes from the suffix unless given."""
    fmt = fmt or ("keras3" if model_file.suffix == ".keras" else "keras2")
    if fmt == "keras3":
        return "keras3", *_read_keras3(model_file)
    return "keras2", *_read_keras2(model_file)


def plugin_of(model_file: Path) -> str:
    """The Faceswap plugin name (the model file's stem)."""
    return model_file.stem


def open_model(folder: str | Path) -> ModelFolder:
    """Open a Faceswap model folder for inspection; raises :class:`FsprecError` on bad input.

    A missing or malformed state file does not stop the model from opening; it is reported
    in :attr:`ModelFolder.state_problem`.
    """
    folder = Path(folder).expanduser().resolve()
    model_file = find_model_file(folder)
    fmt, config, metadata = read_config(model_file)
    plugin = plugin_of(model_file)
    state_file = faceswap.state_file(folder, plugin)
    state, problem = None, None
    if state_file.is_file():
        try:
            state = State.load(state_file)
        except FsprecError as err:
            problem = str(err)
    else:
        problem = f"No state file ({state_file.name}); Faceswap needs it to resume training."
    backups = sorted(p for p in folder.iterdir() if p.name.startswith(plugin)
                     and p.name.endswith(faceswap.BACKUP_SUFFIX))
    snapshots = faceswap.snapshots_of(folder)
    return ModelFolder(folder, plugin, fmt, model_file, config, metadata,
                       state_file if state_file.is_file() else None, state, problem,
                       backups, snapshots)

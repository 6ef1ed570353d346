"""Load a Faceswap model folder into Keras, on whichever backend Keras runs.

``<plugin>.keras`` files go through ``keras.saving.load_model``; Faceswap 2 ``<plugin>.h5``
files through Keras 3's legacy h5 path after :func:`fsprec.core.keras.upgrade.upgrade_config`. A
requested policy is applied with :func:`fsprec.core.precision.switch_precision` before the
model is built, so weights are never converted.
"""
from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backend import ensure_backend
from ..errors import FsprecError
from ..config import entry_name, iter_leaves
from ..layers import POLICIES
from .upgrade import upgrade_config
from ..modelfile import ModelFolder, open_model
from ..precision import switch_precision

if TYPE_CHECKING:
    import keras

FACESWAP_MODULES = ("lib.model.layers", "lib.model.normalization", "lib.model.initializers")


def load_keras_model(folder: str | Path, policy: str | None = None, safe_mode: bool = True,
                     allow_lambda: bool = False, faceswap_dir: str | Path | None = None
                     ) -> keras.Model:
    """Build the model of a Faceswap model folder with its weights (not compiled).

    ``policy`` (``float32``, ``mixed_float16`` or ``mixed_bfloat16``) switches the model's
    eligible layers first. Models with ``Lambda`` layers are refused unless ``allow_lambda``
    (Keras' ``safe_mode`` still refuses Python code in a ``.keras`` file unless it is False;
    the legacy ``.h5`` path has no safe mode, so there ``allow_lambda`` is the only guard).
    ``faceswap_dir`` uses the custom classes of that Faceswap installation instead of
    fsprec's. Raises :class:`FsprecError` for a model that cannot be loaded.
    """
    if policy is not None and policy not in POLICIES:
        raise FsprecError(f"Unknown policy {policy!r}; choose one of {', '.join(POLICIES)}.")
    model = open_model(folder)
    config = upgrade_config(model.config) if model.format == "keras2" else model.config
    if not allow_lambda:
        _refuse_lambda(model, config)
    ensure_backend()
    import keras  # lazy: after the backend is chosen

    from . import compat  # lazy: imports Keras

    objects = faceswap_objects(faceswap_dir) if faceswap_dir else compat.custom_objects()
    compat.register(objects)
    if model.format == "keras3":
        config = _faceswap3_transposed_convolutions(config, objects)
    try:
        if model.format == "keras3" and policy is None and config is model.config:
            return keras.saving.load_model(model.model_file, custom_objects=objects,
                                           compile=False, safe_mode=safe_mode)
        if policy is not None:
            config = switch_precision(config, model.eligible, policy, keras_major=3)
        return _build(model, config, objects, safe_mode)
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise FsprecError(f"Keras cannot load {model.model_file.name}: {err}") from err


def _build(model: ModelFolder, config: dict[str, Any], objects: dict[str, type],
           safe_mode: bool) -> keras.Model:
    """Build ``config`` and load the folder's weights into it."""
    import keras  # lazy: after the backend is chosen

    if model.format == "keras3":
        built = keras.saving.deserialize_keras_object(config, custom_objects=objects,
                                                      safe_mode=safe_mode)
    else:  # Keras 2 entries carry no module: Model.from_config reads them (legacy path)
        built = keras.Model.from_config(config["config"], custom_objects=objects)
    built.load_weights(model.model_file)
    return built


ALIGNED = "fsprec>Conv2DTranspose"


def _faceswap3_transposed_convolutions(config: dict[str, Any], objects: dict[str, type]
                                       ) -> dict[str, Any]:
    """``config`` with its Conv2DTranspose layers built as the compat class that aligns their
    output as Faceswap 3 (Keras 3.14 on torch) trained them; ``config`` itself when it has
    none. Adds the class to ``objects``."""
    from .compat.convolution import Conv2DTranspose  # lazy: imports Keras

    if not any(e.get("class_name") == "Conv2DTranspose"
               for _, e in iter_leaves(config["config"]["layers"])):
        return config
    new = copy.deepcopy(config)
    for _, entry in iter_leaves(new["config"]["layers"]):
        if entry.get("class_name") == "Conv2DTranspose":
            entry["registered_name"] = ALIGNED
    objects[ALIGNED] = Conv2DTranspose
    return new


def _refuse_lambda(model: ModelFolder, config: dict[str, Any]) -> None:
    names = [entry_name(e) for _, e in iter_leaves(config["config"]["layers"])
             if e.get("class_name") == "Lambda"]
    if names:
        raise FsprecError(f"{model.model_file.name} has Lambda layer(s) ({', '.join(names)}), "
                          "which run Python code stored in the file; fsprec does not load "
                          "them unless allow_lambda=True (only for models you trust).")


def faceswap_objects(faceswap_dir: str | Path) -> dict[str, type]:
    """Import the custom classes of the Faceswap installed at ``faceswap_dir``."""
    root = Path(faceswap_dir).expanduser().resolve()
    if not (root / "lib" / "model" / "layers.py").is_file():
        raise FsprecError(f"{root} is not a Faceswap folder (no lib/model/layers.py).")
    loaded = sys.modules.get("lib")
    if loaded is not None and root / "lib" not in [Path(p).resolve()
                                                   for p in getattr(loaded, "__path__", [])]:
        raise FsprecError(f"Another 'lib' package is already imported ({loaded}); Faceswap's "
                          f"classes from {root} cannot be imported in this process.")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    objects: dict[str, type] = {}
    for name in FACESWAP_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise FsprecError(f"Faceswap's {name} cannot be imported from {root}: {err}") \
                from err
        objects.update({key: value for key, value in vars(module).items()
                        if isinstance(value, type) and value.__module__ == name})
    return objects

"""Check a model's documents once, up front: the config, metadata and state are turned into the
shapes the rest of fsprec relies on, or refused with a sentence that names the place
("layer 3 of the encoder is not an object").

After :func:`model_config`, every layer entry is an object; its ``class_name`` and names are
strings; its ``config`` is an object; a sub-model's ``layers`` is a list; ``inbound_nodes`` is a
list whose Keras 3 tensor references have a ``[layer name, node, tensor]`` history; dtype
objects carry hashable shared ids; there are at most ``bounds.MAX_LAYERS`` entries. After
:func:`state`, the state is an object whose ``mixed_precision_layers`` is a list of names,
``config`` and ``sessions`` objects and ``iterations`` a number. No other module needs to be
defensive about these shapes.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import bounds
from .config import MODEL_CLASSES, entry_name, keras3_tensors
from .errors import FsprecError


def _where(scope: str, index: int) -> str:
    owner = f"the {scope.rsplit('/', 1)[-1]}" if scope else "the model"
    return f"layer {index + 1} of {owner}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_entry(entry: Any, where: str, source: str) -> None:
    def refuse(problem: str) -> None:
        raise FsprecError(f"{source}: {where} {problem}; this is not a model Keras can load.")

    if not isinstance(entry, dict):
        refuse("is not an object")
    if not isinstance(entry.get("class_name", ""), str):
        refuse("has a class name that is not text")
    if not isinstance(entry.get("name", ""), str):
        refuse("has a name that is not text")
    config = entry.get("config", {})
    if not isinstance(config, dict):
        refuse("has a config that is not an object")
    if not isinstance(config.get("name", ""), str):
        refuse("has a name that is not text")
    if entry.get("class_name") in MODEL_CLASSES and "layers" in config and not isinstance(
            config["layers"], list):
        refuse("is a sub-model whose layers are not a list")
    _check_links(entry, refuse)


def _check_links(entry: dict, refuse) -> None:
    """The parts the precision switch follows: the dtype policy and the input references."""
    dtype = entry.get("config", {}).get("dtype")
    if isinstance(dtype, dict):
        if not isinstance(dtype.get("config", {}), dict):
            refuse("has a dtype policy whose config is not an object")
        shared = dtype.get("shared_object_id")
        if shared is not None and not isinstance(shared, (int, str)):
            refuse("has a dtype policy with a malformed shared id")
    nodes = entry.get("inbound_nodes", [])
    if not isinstance(nodes, list):
        refuse("has inbound nodes that are not a list")
    for tensor in keras3_tensors(nodes):
        history = tensor.get("keras_history")
        if history is not None and not (
                isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)
                and _is_int(history[1]) and _is_int(history[2])):
            refuse("has an input reference that is not [layer, node, tensor]")


def model_config(config: Any, source: str) -> dict[str, Any]:
    """``config`` checked to the shapes fsprec relies on, or :class:`FsprecError`."""
    if (not isinstance(config, dict) or not isinstance(config.get("config"), dict)
            or not isinstance(config["config"].get("layers"), list)):
        raise FsprecError(f"{source} does not hold a Keras model config (no layer list).")
    count = 0
    scopes: list[tuple[str, list]] = [("", config["config"]["layers"])]
    while scopes:
        scope, layers = scopes.pop()
        for index, entry in enumerate(layers):
            count += 1
            if count > bounds.MAX_LAYERS:
                raise FsprecError(f"{source} has more than {bounds.MAX_LAYERS:,} layers; this "
                                  "is not a Faceswap model.")
            _check_entry(entry, _where(scope, index), source)
            inner = entry.get("config", {}).get("layers")
            if entry.get("class_name") in MODEL_CLASSES and isinstance(inner, list):
                scopes.append((f"{scope}/{entry_name(entry)}", inner))
    return config


def metadata(value: Any, source: str) -> dict[str, Any]:
    """``metadata.json`` checked: an object whose ``keras_version`` (if any) is text."""
    if not isinstance(value, dict) or not isinstance(value.get("keras_version", ""), str):
        raise FsprecError(f"{source} has an invalid metadata.json.")
    return value


def state(value: Any, source: str) -> dict[str, Any]:
    """A ``<plugin>_state.json`` document checked to the shapes fsprec relies on."""
    if not isinstance(value, dict):
        raise FsprecError(f"{source} is not a Faceswap state (not a JSON object).")
    layers = value.get("mixed_precision_layers", [])
    if not isinstance(layers, list) or not all(isinstance(n, str) for n in layers):
        raise FsprecError(f"{source} has an invalid 'mixed_precision_layers'.")
    for key in ("config", "sessions"):
        if not isinstance(value.get(key, {}), Mapping):
            raise FsprecError(f"{source} has an invalid '{key}' section.")
    if not isinstance(value.get("iterations", 0), (int, float)):
        raise FsprecError(f"{source} has an invalid 'iterations' count.")
    return value

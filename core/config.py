"""Walking a Keras 2 or Keras 3 model config: the one place that knows its shapes.

Entries, sub-models, names, dtype forms and tensor references, in both Keras versions' JSON
forms; every other module walks a config through these functions. JSON only, no Keras.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})


def model_layers(config: Mapping[str, Any]) -> list[dict]:
    """The top-level ``layers`` list of a model config."""
    return config["config"]["layers"]


def policy_name(dtype: Any) -> str | None:
    """Normalise every stored dtype form to a policy name (``None`` when there is none).

    A plain string (``"float32"``), a Keras 3 ``DTypePolicy`` dict, a Keras 2 ``Policy`` dict
    (``{"class_name": "Policy", "config": {"name": ...}}``), and Keras 3 quantized policies,
    which serialize a ``mode`` and ``source_name`` instead of a name (named as Keras names
    them: ``int8_from_float32``).
    """
    if isinstance(dtype, str):
        return dtype
    if not isinstance(dtype, Mapping):
        return None
    config = dtype.get("config")
    if isinstance(config, Mapping):
        if isinstance(config.get("name"), str):
            return config["name"]
        if isinstance(config.get("mode"), str):
            source = config.get("source_name")
            return f"{config['mode']}_from_{source}" if isinstance(source, str) else config["mode"]
    if isinstance(dtype.get("name"), str):
        return dtype["name"]
    return None


def is_model_entry(entry: Mapping[str, Any]) -> bool:
    """True for a nested sub-model (its ``config.layers`` holds more layers)."""
    config = entry.get("config")
    return (entry.get("class_name") in MODEL_CLASSES
            and isinstance(config, Mapping) and isinstance(config.get("layers"), list))


def entry_name(entry: Mapping[str, Any]) -> str:
    """The name of a layer entry (Keras 3 keeps it at top level, Keras 2 in its config)."""
    config = entry.get("config") if isinstance(entry.get("config"), Mapping) else {}
    return str(config.get("name") or entry.get("name") or "")


def entry_policy(entry: Mapping[str, Any]) -> str | None:
    """The normalised dtype policy of an entry; ``None`` for sub-models and ops."""
    if is_model_entry(entry):
        return None
    config = entry.get("config")
    if not isinstance(config, Mapping) or "dtype" not in config:
        return None
    return policy_name(config["dtype"])


def iter_entries(layers: list[dict], prefix: str = "") -> Iterator[tuple[str, dict]]:
    """Yield ``(path, entry)`` for every entry, depth first, sub-models before their layers."""
    for entry in layers:
        path = f"{prefix}{entry_name(entry)}"
        yield path, entry
        if is_model_entry(entry):
            yield from iter_entries(entry["config"]["layers"], f"{path}/")


def iter_leaves(layers: list[dict], prefix: str = "") -> Iterator[tuple[str, dict]]:
    """Yield ``(path, entry)`` for every entry that is not a sub-model."""
    return ((path, entry) for path, entry in iter_entries(layers, prefix)
            if not is_model_entry(entry))


def iter_scopes(layers: list[dict], path: str = "") -> Iterator[tuple[str, list[dict]]]:
    """``(path, layer list)`` of the top model ("") and of every sub-model (``/encoder``)."""
    yield path, layers
    for entry in layers:
        if is_model_entry(entry):
            yield from iter_scopes(entry["config"]["layers"], f"{path}/{entry_name(entry)}")


def leaf_names(layers: list[dict]) -> list[str]:
    """The names of every leaf layer, in config order (a shared name appears once per use)."""
    return [entry_name(entry) for _, entry in iter_leaves(layers)]


# --- tensor references ----------------------------------------------------------------------
# Keras 3 writes a layer's inputs as ``__keras_tensor__`` dicts whose ``keras_history`` is
# ``[layer, node, tensor]``; Keras 2 writes ``[layer, node, tensor, kwargs]`` lists.

def keras3_tensors(node: Any) -> Iterator[dict]:
    """The config of every ``__keras_tensor__`` reference inside an ``inbound_nodes`` value."""
    if isinstance(node, Mapping):
        if node.get("class_name") == "__keras_tensor__" and isinstance(node.get("config"), dict):
            yield node["config"]
            return
        for value in node.values():
            yield from keras3_tensors(value)
    elif isinstance(node, list):
        for value in node:
            yield from keras3_tensors(value)


def keras3_histories(entry: Mapping[str, Any]) -> list[list]:
    """``[layer, node, tensor]`` of every Keras 3 input reference of an entry."""
    return [t["keras_history"] for t in keras3_tensors(entry.get("inbound_nodes", []))
            if isinstance(t.get("keras_history"), list) and len(t["keras_history"]) == 3]


def keras2_refs(node: Any) -> Iterator[list[Any]]:
    """The mutable ``[layer, node, tensor, kwargs]`` lists of a Keras 2 ``inbound_nodes``."""
    if isinstance(node, list):
        if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
            yield node
            return
        for item in node:
            yield from keras2_refs(item)


def producers(entry: Mapping[str, Any]) -> list[str]:
    """Names of the layers feeding an entry, in either Keras version's form."""
    nodes = entry.get("inbound_nodes", [])
    return ([str(h[0]) for h in keras3_histories(entry)]
            + [ref[0] for ref in keras2_refs(nodes)])


def output_refs(node: Any) -> list[list[Any]]:
    """``[layer, node, tensor]`` triples of a (nested, list or dict) ``output_layers`` value."""
    if isinstance(node, list) and len(node) >= 3 and isinstance(node[0], str) \
            and isinstance(node[1], int) and isinstance(node[2], int):
        return [[node[0], node[1], node[2]]]
    if isinstance(node, Mapping):
        return [ref for value in node.values() for ref in output_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in output_refs(value)]
    return []

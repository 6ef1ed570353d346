"""The one precision switch: a pure rewrite of a Keras model config.

Mixed policies keep variables in float32, so switching between ``float32`` and a mixed policy
changes the config only. The result equals what Faceswap's own switch followed by a Keras save
writes. Faceswap rebuilds the model from ``get_config()`` (no object sharing scope), so:

- each switched layer gets a fresh policy in the form its Keras version saves (``DTypePolicy``
  dict in Keras 3; ``"float32"`` or a ``Policy`` dict in Keras 2);
- no ``shared_object_id`` survives anywhere in the config (policies, initializers);
- Keras 3 tensor references carry the dtype their producer now outputs;
- Keras 3 records the default ``training`` (dropouts, noise) or ``mask`` (BatchNormalization)
  argument of a layer's call only when it did not have to cast its input; a rebuild keeps the
  recorded arguments and adds the default where the input now needs no cast.

Layers outside the eligible set that hold a mixed policy (a partial model) are set to float32,
which is what makes a partial model consistent again.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from .config import (entry_name, entry_policy, is_model_entry, iter_entries, iter_leaves,
                     iter_scopes, keras3_histories, keras3_tensors, model_layers, output_refs)
from .errors import FsprecError
from .layers import MIXED_POLICIES, POLICIES, compute_dtype

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def policy_form(policy: str, keras_major: int) -> str | dict[str, Any]:
    """The dtype value Keras itself saves for ``policy``."""
    if keras_major >= 3:
        return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": policy},
                "registered_name": None}
    if policy in MIXED_POLICIES:
        return {"class_name": "Policy", "config": {"name": policy}}
    return policy


def switch_precision(config: Mapping[str, Any], eligible: Iterable[str], target: str,
                     pinned: Iterable[str] = (), keras_major: int = 3) -> dict[str, Any]:
    """Return a copy of ``config`` with every eligible layer set to ``target``.

    ``pinned`` layers (names) stay ``float32``. Layers are matched by name, as Faceswap does,
    so a name used in several sub-models switches everywhere. The input is not modified.
    """
    if target not in POLICIES:
        raise FsprecError(f"Unknown target precision {target!r}; choose one of "
                          f"{', '.join(POLICIES)}.")
    eligible, pinned = set(eligible), set(pinned)
    new = copy.deepcopy(dict(config))
    layers = model_layers(new)
    old_outputs = _output_dtypes(layers)
    for _, entry in iter_leaves(layers):
        name = entry_name(entry)
        if "dtype" not in entry.get("config", {}):
            continue
        if name in eligible:
            wanted = "float32" if name in pinned else target
        elif entry_policy(entry) in MIXED_POLICIES:
            wanted = "float32"  # a stray mixed layer of a partial model
        else:
            continue
        if entry_policy(entry) != wanted:
            entry["config"]["dtype"] = policy_form(wanted, keras_major)
    _drop_shared_ids(new)
    if keras_major >= 3:
        _update_tensor_dtypes(layers, old_outputs, _output_dtypes(layers))
        _add_default_call_arguments(layers)
    return new


def _drop_shared_ids(node: Any) -> None:
    """Remove every ``shared_object_id``: a rebuilt model shares no serialized object."""
    if isinstance(node, dict):
        node.pop("shared_object_id", None)
        for value in node.values():
            _drop_shared_ids(value)
    elif isinstance(node, list):
        for value in node:
            _drop_shared_ids(value)


# The call argument Keras 3 records, with its default, for a layer fed a tensor of its own
# compute dtype (it drops it when it casts the input).
_DEFAULT_CALL_ARGUMENTS = {
    **dict.fromkeys(("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                     "GaussianNoise", "GaussianDropout", "AlphaDropout"), ("training", False)),
    "BatchNormalization": ("mask", None),
}


def _add_default_call_arguments(layers: list[dict]) -> None:
    for _, entry in iter_leaves(layers):
        default = _DEFAULT_CALL_ARGUMENTS.get(entry.get("class_name", ""))
        dtype = compute_dtype(entry_policy(entry))
        if default is None or dtype is None:
            continue
        for node in entry.get("inbound_nodes") or []:
            if not (isinstance(node, dict) and isinstance(node.get("kwargs"), dict)):
                continue
            first = next(keras3_tensors(node.get("args", [])), None)
            if first is not None and first.get("dtype") == dtype:
                node["kwargs"].setdefault(*default)


# --- Keras 3 tensor dtypes -------------------------------------------------------------------
# Each scope (the top model, and each sub-model by its path) maps its layer names to the dtypes
# of their output tensors, by output index; ``None`` where the config cannot tell.

Scope = dict[str, dict[int, str | None]]


def _output_dtypes(layers: list[dict]) -> dict[str, Scope]:
    """Output dtypes of every layer, per scope path ("" for the top model)."""
    scopes: dict[str, Scope] = {}
    _scope_outputs(layers, "", scopes)
    return scopes


def _scope_outputs(layers: list[dict], path: str, scopes: dict[str, Scope]) -> Scope:
    scope: Scope = {}
    scopes[path] = scope
    for entry in layers:
        name = entry_name(entry)
        if is_model_entry(entry):
            inner = _scope_outputs(entry["config"]["layers"], f"{path}/{name}", scopes)
            scope[name] = _model_outputs(entry, inner)
        elif entry_policy(entry) is not None:  # InputLayer and every layer with a policy
            scope[name] = {0: compute_dtype(entry_policy(entry))}
        else:  # an op: its result type follows its float inputs
            inputs = {scope.get(h[0], {}).get(h[2]) for h in keras3_histories(entry)}
            scope[name] = {0: _promote(inputs)}
    return scope


def _model_outputs(entry: Mapping[str, Any], inner: Scope) -> dict[int, str | None]:
    """A sub-model's output dtypes, from its ``output_layers``."""
    config = entry["config"]
    outputs = config.get("output_layers")
    if outputs is None and config.get("layers"):  # Sequential: the last layer
        last = entry_name(config["layers"][-1])
        return {0: inner.get(last, {}).get(0)}
    refs = output_refs(outputs)
    return {index: inner.get(ref[0], {}).get(ref[2]) for index, ref in enumerate(refs)}


def _promote(dtypes: set[str | None]) -> str | None:
    """The float type an op returns for these input dtypes (None if unknown)."""
    if not dtypes or None in dtypes or not dtypes <= set(FLOAT_DTYPES):
        return None
    if len(dtypes) == 1:
        return next(iter(dtypes))
    if dtypes == {"float16", "bfloat16"}:
        return "float32"
    return max(dtypes, key=FLOAT_DTYPES.index)


# Keras 3's spatial dropouts save their variable dtype ("float32") as their ``dtype``, not
# their policy: built under a global mixed_float16 policy they output float16 while their
# config says float32, and any load (Faceswap's switch included) rebuilds them float32, so
# their output references are saved as float32 after Faceswap's switch (Faceswap's unbalanced
# model). Their references follow the config, whatever was stored.
_VARIABLE_DTYPE_IN_CONFIG = frozenset(("SpatialDropout1D", "SpatialDropout2D",
                                       "SpatialDropout3D"))


def _update_tensor_dtypes(layers: list[dict], old: dict[str, Scope],
                          new: dict[str, Scope]) -> None:
    """Set each tensor reference's dtype to what its producer now outputs.

    Only references whose stored dtype matches what the old config implies are touched, so
    a producer whose output dtype cannot be told from the config is left exactly as saved;
    the spatial dropouts' references are always set (``_VARIABLE_DTYPE_IN_CONFIG``).
    """
    for path, scope_layers in iter_scopes(layers):
        before, after = old[path], new[path]
        classes = {entry_name(entry): entry.get("class_name") for entry in scope_layers}
        for entry in scope_layers:
            for tensor in keras3_tensors(entry.get("inbound_nodes", [])):
                history = tensor.get("keras_history")
                if not (isinstance(history, list) and len(history) == 3):
                    continue
                was = before.get(history[0], {}).get(history[2])
                now = after.get(history[0], {}).get(history[2])
                if None in (was, now):
                    continue
                if classes.get(history[0]) in _VARIABLE_DTYPE_IN_CONFIG or (
                        tensor.get("dtype") == was and now != was):
                    tensor["dtype"] = now


def changed_layers(before: Mapping[str, Any], after: Mapping[str, Any]
                   ) -> list[tuple[str, str, str]]:
    """``(path, old policy, new policy)`` for every leaf whose policy differs."""
    old = {p: entry_policy(e) for p, e in iter_entries(model_layers(before))}
    return [(path, str(old.get(path)), str(entry_policy(entry)))
            for path, entry in iter_leaves(model_layers(after))
            if entry_policy(entry) != old.get(path)]

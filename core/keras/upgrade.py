"""Make a Faceswap 2 (tf.keras 2) model config loadable by Keras 3; JSON only, no Keras.

Keras 3 reads Keras 2 configs through its legacy path but trips over a few things Faceswap's
own upgrader (``plugins/train/model/_base/update.py``) documents; :func:`upgrade_config`
fixes them the same way:

- nested ``output_layers`` of a model are flattened to ``[name, node, tensor]`` triples;
- a reference to a sub-model's output node ``n > 0`` becomes ``n - 1`` (Keras 3 counts the
  nodes of a nested Functional model one lower);
- every layer dtype (a string or a Keras 2 ``Policy`` dict) becomes a Keras 3
  ``DTypePolicy`` dict; input layers keep their plain dtype string;
- scalar ``TFOpLambda`` layers (``x * 127.5`` in an EfficientNet encoder) become
  ``ScalarOp`` layers; any other TFOpLambda is refused;
- arguments Keras 3 dropped are removed (``groups`` of depthwise, separable and transposed
  convolutions; the kernel settings of SeparableConv2D) and LeakyReLU's ``alpha`` is renamed
  ``negative_slope``.

CLIP encoders (a sub-model named ``visual``) need Faceswap's own rebuild and are refused.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from numbers import Real
from typing import Any

from ..config import is_model_entry, keras2_refs, output_refs, policy_name
from ..errors import FsprecError
from ..precision import policy_form

SCALAR_OPS = ("multiply", "truediv", "add", "subtract")
_NO_GROUPS = ("DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")
_SEPARABLE_DROPPED = ("kernel_initializer", "kernel_regularizer", "kernel_constraint")


def upgrade_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A Keras 3 loadable copy of a Keras 2 model config (the input is not modified)."""
    new = copy.deepcopy(dict(config))
    _upgrade_model(new, set())
    return new


def _upgrade_model(model: dict[str, Any], functional: set[str]) -> None:
    """Fix a model entry and, recursively, its layers; ``functional`` collects model names."""
    inner = model["config"]
    if "output_layers" in inner:
        inner["output_layers"] = output_refs(inner["output_layers"])
    for layer in inner["layers"]:
        if is_model_entry(layer):
            if layer.get("class_name") == "Functional":
                functional.add(layer.get("name") or layer["config"].get("name"))
            _upgrade_model(layer, functional)
        _upgrade_layer(layer)
        for ref in keras2_refs(layer.get("inbound_nodes") or []):
            if ref[0] in functional and ref[1] > 0:
                ref[1] -= 1


def _upgrade_layer(layer: dict[str, Any]) -> None:
    if (layer.get("name") or layer["config"].get("name")) == "visual":
        raise FsprecError("This Faceswap 2 model has a CLIP encoder ('visual'), which Keras 3 "
                          "cannot rebuild from its config; let Faceswap 3 upgrade it.")
    if layer.get("class_name") == "TFOpLambda":
        _to_scalar_op(layer)
    class_name, config = layer.get("class_name"), layer["config"]
    if class_name == "LeakyReLU" and "alpha" in config:
        config["negative_slope"] = config.pop("alpha")
    if class_name in _NO_GROUPS:
        config.pop("groups", None)
    if class_name == "SeparableConv2D":
        for key in _SEPARABLE_DROPPED:
            config.pop(key, None)
    if class_name != "InputLayer" and not is_model_entry(layer) and "dtype" in config:
        policy = policy_name(config["dtype"])
        if policy is not None:
            config["dtype"] = policy_form(policy, 3)


def _to_scalar_op(layer: dict[str, Any]) -> None:
    """Rewrite a scalar ``TFOpLambda`` entry as a ``ScalarOp`` (the same name and dtype)."""
    config = layer["config"]
    name = config.get("name") or layer.get("name", "")
    operation = str(config.get("function") or name).rsplit(".", maxsplit=1)[-1]
    nodes = layer.get("inbound_nodes") or []
    if nodes and isinstance(nodes[0], list) and nodes[0] and isinstance(nodes[0][0], str):
        nodes = [nodes]  # a TFOpLambda saves its single node one level flatter
    refs = list(keras2_refs(nodes))
    value = refs[0][3].get("y") if refs and len(refs[0]) > 3 and isinstance(
        refs[0][3], dict) else None
    if operation not in SCALAR_OPS or not isinstance(value, Real) or isinstance(value, bool):
        raise FsprecError(f"The Keras 2 TFOpLambda layer {name!r} ({operation}) is not a "
                          "scalar operation; Keras 3 cannot load it.")
    for ref in refs:
        ref[3:] = [{}]
    # The Keras 3 entry form (with a module) keeps the legacy loader from reading the
    # operation name as a Keras function of the same name.
    layer.update({"module": "lib.model.layers", "class_name": "ScalarOp",
                  "registered_name": "ScalarOp"})
    layer["inbound_nodes"] = nodes
    layer["config"] = {"name": name, "trainable": config.get("trainable", True),
                       "dtype": config.get("dtype", "float32"), "operation": operation,
                       "value": value}

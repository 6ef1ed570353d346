"""The layer tree of a model config: dtype policies and mixed-precision eligibility.

Works on the JSON config alone, walked with :mod:`.config`; no Keras import.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import (MODEL_CLASSES, entry_name, entry_policy, is_model_entry, iter_leaves,
                     producers)

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")
POLICIES = ("float32", *MIXED_POLICIES)

# Layers Faceswap builds in float32 even under the mixed policy.
_KEPT_FLOAT32_CLASSES = frozenset({
    "AdaInstanceNormalization",  # Phaze-A: built with dtype="float32"
    "SpatialDropout2D",  # a Keras quirk: its dtype is a plain string and stays float32
    "ClassEmbedding", "PositionalEmbedding", "Projection",  # CLIP embeddings
})
_OUTPUT_NAME = re.compile(r"^(face|mask)_out(_|$)")

EligibleSource = Literal["state", "config", "derived"]


def compute_dtype(policy: str | None) -> str | None:
    """The dtype a layer with this policy computes (and outputs) in."""
    if policy is None:
        return None
    return {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(policy, policy)


def kept_float32_reason(entry: Mapping[str, Any]) -> str | None:
    """Why Faceswap keeps this layer in float32 under mixed precision, or None."""
    class_name = entry.get("class_name", "")
    name = entry_name(entry)
    if class_name == "InputLayer":
        return "input layer"
    if class_name == "Activation" and (
            _OUTPUT_NAME.match(name) or f"{name}_conv2d" in producers(entry)):
        return "output activation kept float32 by Faceswap"
    if class_name in _KEPT_FLOAT32_CLASSES:
        return f"{class_name} kept float32 by Faceswap"
    return None


def derived_eligible(layers: list[dict]) -> list[str]:
    """The layers Faceswap would run in mixed precision, derived from a float32 config.

    For old float32 models that have no stored list: every leaf with a floating policy except
    inputs, ops and the layers Faceswap keeps in float32.
    """
    names: list[str] = []
    for _, entry in iter_leaves(layers):
        policy = entry_policy(entry)
        if policy is None or not policy.startswith(("float", "mixed_", "bfloat")):
            continue
        if kept_float32_reason(entry) is None:
            names.append(entry_name(entry))
    return names


def mixed_in_config(layers: list[dict]) -> list[str]:
    """Names of the layers whose stored policy is a mixed policy, in config order."""
    return [entry_name(e) for _, e in iter_leaves(layers) if entry_policy(e) in MIXED_POLICIES]


def resolve_eligible(layers: list[dict], stored: list[str] | None
                     ) -> tuple[list[str], EligibleSource]:
    """The eligible layer names (one per leaf, config order) and where they came from.

    Order of truth: the state's ``mixed_precision_layers``; the layers that are mixed in the
    config; otherwise a derived set.
    """
    if stored:
        wanted = set(stored)
        ordered = [entry_name(e) for _, e in iter_leaves(layers) if entry_name(e) in wanted]
        return ordered, "state"
    mixed = mixed_in_config(layers)
    if mixed:
        return mixed, "config"
    return derived_eligible(layers), "derived"


@dataclass
class Layer:
    """One entry of the layer tree, as the CLI, the GUI and the tests see it."""

    path: str
    name: str
    class_name: str
    dtype_policy: str | None
    eligible: bool
    reason: str
    params: int = 0
    children: list[Layer] = field(default_factory=list)

    @property
    def is_model(self) -> bool:
        """True for a nested sub-model."""
        return bool(self.children) or self.class_name in MODEL_CLASSES

    def walk(self) -> Iterator[Layer]:
        """This layer and every layer below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_json(self) -> dict[str, Any]:
        """The flat JSON record of the ``inspect`` contract."""
        return {"path": self.path, "name": self.name, "class_name": self.class_name,
                "dtype_policy": self.dtype_policy, "eligible": self.eligible,
                "reason": self.reason, "params": self.params}


def _reason(entry: Mapping[str, Any], policy: str | None, eligible: bool,
            source: EligibleSource) -> str:
    if eligible:
        return {"state": "stored in state",
                "config": "mixed in this model",
                "derived": "derived: float layer Faceswap runs in mixed precision"}[source]
    kept = kept_float32_reason(entry)
    if kept:
        return kept
    if policy is None:
        return "op without a dtype policy"
    if source == "state":
        return "not in the state's mixed precision list"
    return "float32 in this model"


def build_tree(layers: list[dict], eligible: set[str], source: EligibleSource,
               params: Mapping[str, int], prefix: str = "") -> list[Layer]:
    """Build the nested :class:`Layer` tree of a config's layer list."""
    nodes: list[Layer] = []
    for entry in layers:
        name = entry_name(entry)
        path = f"{prefix}{name}"
        if is_model_entry(entry):
            children = build_tree(entry["config"]["layers"], eligible, source, params, f"{path}/")
            nodes.append(Layer(path, name, entry.get("class_name", ""), None, False, "sub-model",
                               sum(c.params for c in children), children))
            continue
        policy = entry_policy(entry)
        is_eligible = name in eligible
        nodes.append(Layer(path, name, entry.get("class_name", ""), policy, is_eligible,
                           _reason(entry, policy, is_eligible, source), params.get(path, 0)))
    return nodes


def precision_of(leaves: list[Layer]) -> str:
    """The model's precision, judged on its eligible layers.

    One mixed policy on most eligible layers (the rest pinned to float32) is that policy; no
    mixed layer is ``float32``; anything else is ``partial``.
    """
    policies = [leaf.dtype_policy for leaf in leaves if leaf.eligible]
    mixed = {p for p in policies if p in MIXED_POLICIES}
    if not mixed:
        return "float32"
    if len(mixed) == 1:
        (policy,) = mixed
        if policies.count(policy) * 2 >= len(policies):
            return policy
    return "partial"


def pinned_of(leaves: list[Layer], precision: str) -> list[str]:
    """Eligible layers kept in float32 in a mixed model (the pins of a past conversion)."""
    if precision not in MIXED_POLICIES:
        return []
    return [leaf.name for leaf in leaves if leaf.eligible and leaf.dtype_policy == "float32"]

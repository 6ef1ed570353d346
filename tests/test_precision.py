"""The precision switch against what Faceswap itself wrote, and on the tiny models."""
from __future__ import annotations

import copy

import pytest

from conftest import fixture_path, needs_fixtures
from factory import ELIGIBLE, tiny_config
from fsprec.core import FsprecError, open_model
from fsprec.core.config import entry_policy, iter_entries, iter_leaves
from fsprec.core.precision import changed_layers, switch_precision


def _tensors(config):
    """{(scope path, consumer, arg index): (producer, dtype)} of every tensor reference."""
    found = {}
    for path, entry in iter_entries(config["config"]["layers"]):
        refs = []

        def visit(node):
            if isinstance(node, dict):
                if node.get("class_name") == "__keras_tensor__":
                    refs.append((node["config"]["keras_history"][0], node["config"]["dtype"]))
                    return
                for value in node.values():
                    visit(value)
            elif isinstance(node, list):
                for value in node:
                    visit(value)

        visit(entry.get("inbound_nodes", []))
        for index, ref in enumerate(refs):
            found[(path, index)] = ref
    return found


def _policies(config):
    return {path: entry_policy(entry) for path, entry in iter_leaves(config["config"]["layers"])}


PAIRS = [("fs3/original-fp32", "fs3/original-fp32-switched-to-mixed", "mixed_float16"),
         ("fs3/original-mixed", "fs3/original-mixed-switched-to-fp32", "float32"),
         ("fs2/lightweight-fp32", "fs2/lightweight-fp32_to_mixed", "mixed_float16"),
         ("fs2/lightweight-mixed", "fs2/lightweight-mixed_to_fp32", "float32")]


@needs_fixtures
@pytest.mark.parametrize("source,switched,target", PAIRS)
def test_switch_equals_faceswaps_own_switch(source, switched, target):
    """Layer by layer, tensor by tensor, and as a whole document."""
    model = open_model(fixture_path(source))
    reference = open_model(fixture_path(switched)).config
    new = switch_precision(model.config, model.eligible, target, keras_major=model.keras_major)
    assert _policies(new) == _policies(reference)
    assert _tensors(new) == _tensors(reference)
    assert new == reference


TWINS = ["fs3/original", "fs3/phaze_a", "fs3/dfaker", "fs3/lightweight",
         "fs3/original_lowmem_icnr_convaware_reflect", "fs2/original", "fs2/lightweight"]


@needs_fixtures
@pytest.mark.parametrize("name", TWINS)
def test_switch_to_mixed_equals_the_model_built_mixed(name):
    """fp32 -> mixed gives the dtypes and tensor dtypes of the same plugin built mixed."""
    model = open_model(fixture_path(f"{name}-fp32"))
    twin = open_model(fixture_path(f"{name}-mixed")).config
    new = switch_precision(model.config, model.eligible, "mixed_float16", (), model.keras_major)
    assert _policies(new) == _policies(twin)
    assert _tensors(new) == _tensors(twin)


@needs_fixtures
@pytest.mark.parametrize("name", ["fs3/phaze_a-fp32", "fs3/dfaker-fp32", "fs2/dfl_sae-fp32-opt"])
def test_round_trip_restores_every_dtype(name):
    model = open_model(fixture_path(name))
    mixed = switch_precision(model.config, model.eligible, "mixed_float16", (), model.keras_major)
    back = switch_precision(mixed, model.eligible, "float32", (), model.keras_major)
    assert _policies(back) == _policies(model.config)
    assert _tensors(back) == _tensors(model.config)


@needs_fixtures
def test_shared_decoder_nodes_follow_the_switch():
    """Phaze-A's decoder is called twice; both of its output tensors become float16."""
    model = open_model(fixture_path("fs3/phaze_a-fp32"))
    new = switch_precision(model.config, model.eligible, "mixed_float16")
    tensors = _tensors(new)
    into_decoder = [dtype for (path, _), (producer, dtype) in tensors.items()
                    if path == "decoder_both"]
    assert into_decoder and set(into_decoder) == {"float16"}


def test_input_is_not_modified():
    config = tiny_config()
    before = copy.deepcopy(config)
    switch_precision(config, ELIGIBLE, "mixed_float16")
    assert config == before


def test_tiny_switch_policies_tensors_and_ops():
    new = switch_precision(tiny_config(), ELIGIBLE, "mixed_float16")
    policies = _policies(new)
    assert policies["encoder/conv_8_0_conv2d"] == "mixed_float16"
    assert policies["encoder/stem/stem_conv2d"] == "mixed_float16"
    assert policies["encoder/spatial_dropout2d"] == "float32"
    assert policies["decoder_a/face_out_a_0"] == "float32"
    assert policies["encoder/add"] is None
    assert new == tiny_config(mixed=True)  # the factory's independent mixed model
    tensors = _tensors(new)
    # The op's output (float16 + float16) feeds flatten as float16.
    assert tensors[("encoder/flatten", 0)] == ("add", "float16")
    # Output activations take float16 in and stay float32 out (top-level outputs unchanged).
    assert tensors[("decoder_a/face_out_a_0", 0)] == ("face_out_a_0_conv2d", "float16")


def test_pins_keep_layers_float32_everywhere_the_name_is_used():
    new = switch_precision(tiny_config(), ELIGIBLE, "mixed_float16", pinned=["reshape"])
    policies = _policies(new)
    assert policies["decoder_a/reshape"] == policies["decoder_b/reshape"] == "float32"
    assert policies["decoder_a/dense_up"] == "mixed_float16"
    tensors = _tensors(new)
    assert tensors[("decoder_a/face_out_a_0_conv2d", 0)] == ("reshape", "float32")


def test_keras2_forms():
    new = switch_precision(tiny_config(keras_major=2), ELIGIBLE, "mixed_float16", keras_major=2)
    dense = next(e for p, e in iter_leaves(new["config"]["layers"]) if p == "encoder/dense")
    assert dense["config"]["dtype"] == {"class_name": "Policy",
                                        "config": {"name": "mixed_float16"}}
    back = switch_precision(new, ELIGIBLE, "float32", keras_major=2)
    assert back == tiny_config(keras_major=2)


def test_bfloat16_target():
    new = switch_precision(tiny_config(), ELIGIBLE, "mixed_bfloat16")
    assert _policies(new)["encoder/dense"] == "mixed_bfloat16"
    assert _tensors(new)[("encoder/flatten", 0)] == ("add", "bfloat16")


def test_changed_layers_and_unknown_target():
    new = switch_precision(tiny_config(), ELIGIBLE, "mixed_float16")
    changes = changed_layers(tiny_config(), new)
    assert len(changes) == len(ELIGIBLE)
    assert ("encoder/dense", "float32", "mixed_float16") in changes
    with pytest.raises(FsprecError, match="Unknown target"):
        switch_precision(tiny_config(), ELIGIBLE, "float16")


def test_lone_shared_policy_ids_are_dropped():
    """A policy object shared by several layers is saved with an id only while shared."""
    config = tiny_config()
    leaves = [e for _, e in iter_leaves(config["config"]["layers"])
              if isinstance(e["config"].get("dtype"), dict)]
    for entry in leaves:
        entry["config"]["dtype"]["shared_object_id"] = 42
    new = switch_precision(config, ELIGIBLE, "mixed_float16")
    kept = [e["config"]["dtype"] for p, e in iter_leaves(new["config"]["layers"])
            if p.endswith(("face_out_a_0", "face_out_b_0"))]
    assert all(d.get("shared_object_id") == 42 for d in kept)
    switched = [e["config"]["dtype"] for p, e in iter_leaves(new["config"]["layers"])
                if p == "encoder/dense"]
    assert "shared_object_id" not in switched[0]

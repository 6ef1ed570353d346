"""The precision switch against what Faceswap itself wrote, and on the tiny models."""
from __future__ import annotations

import copy
import json

import pytest

from conftest import fixture_path, needs_fixtures
from factory import ELIGIBLE, tiny_config
from fsprec.core import FsprecError, open_model
from fsprec.core.config import entry_policy, iter_entries, iter_leaves, keras3_tensors
from fsprec.core.precision import changed_layers, switch_precision


def _tensors(config):
    """{(scope path, consumer, arg index): (producer, dtype)} of every tensor reference."""
    found = {}
    for path, entry in iter_entries(config["config"]["layers"]):
        refs = [(t["keras_history"][0], t["dtype"])
                for t in keras3_tensors(entry.get("inbound_nodes", []))]
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
    # Phaze-A's dotted Dropouts: built mixed they are mixed; switched by Faceswap they stay
    # float32 (test_dotted_names_stay_as_faceswaps_switch_leaves_them).
    dotted = {p for p in _policies(twin) if "." in p.rsplit("/", 1)[-1]}
    assert {p: v for p, v in _policies(new).items() if p not in dotted} == {
        p: v for p, v in _policies(twin).items() if p not in dotted}
    if not dotted:
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


def test_no_shared_object_id_survives_a_switch():
    """Faceswap rebuilds the model from get_config(), which shares no object: its save writes
    no shared_object_id, on policies or initializers."""
    config = tiny_config()
    leaves = [e for _, e in iter_leaves(config["config"]["layers"])
              if isinstance(e["config"].get("dtype"), dict)]
    for entry in leaves:
        entry["config"]["dtype"]["shared_object_id"] = 42
        entry["config"]["kernel_initializer"] = {"class_name": "HeUniform", "config": {},
                                                 "shared_object_id": 7}
    new = switch_precision(config, ELIGIBLE, "mixed_float16")
    assert "shared_object_id" not in json.dumps(new)


@needs_fixtures
@pytest.mark.parametrize("source,target", [("fs3/dfaker-fp32", "mixed_float16"),
                                           ("fs3/dfaker-mixed", "float32")])
def test_shared_initializer_ids_go_as_in_faceswaps_save(source, target):
    """dfaker's decoders share an initializer object (saved with one shared_object_id)."""
    model = open_model(fixture_path(source))
    assert "shared_object_id" in json.dumps(model.config)
    new = switch_precision(model.config, model.eligible, target)
    assert "shared_object_id" not in json.dumps(new)


@needs_fixtures
def test_dotted_names_stay_as_faceswaps_switch_leaves_them():
    """Faceswap's state rewrites '0.0_1' to '0_0_1' when it loads, so its switch never
    matches Phaze-A's zero-rate Dropouts: they keep float32 in the switched model."""
    model = open_model(fixture_path("fs3/phaze_a-fp32"))
    dotted = [p for p, e in iter_leaves(model.config_layers) if "." in p.rsplit("/", 1)[-1]]
    assert dotted and not any("." in name for name in model.eligible)
    new = switch_precision(model.config, model.eligible, "mixed_float16")
    assert {p: _policies(new)[p] for p in dotted} == dict.fromkeys(dotted, "float32")
    reasons = {layer.path: layer.reason for layer in model.leaves(False)}
    assert all("dot" in reasons[p] for p in dotted)


def test_dropout_records_training_when_its_input_needs_no_cast():
    """Keras records ``training=False`` on a Dropout node only when the input is already in
    the layer's compute dtype; Faceswap's rebuild after a switch to float32 adds it."""
    config = tiny_config(mixed=True)
    drop = {"class_name": "Dropout", "name": "0.0_1", "module": "keras.layers",
            "registered_name": None,
            "config": {"name": "0.0_1", "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                                  "config": {"name": "mixed_float16"},
                                                  "registered_name": None}, "rate": 0.0},
            "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {
                "shape": [None, 4], "dtype": "float32",
                "keras_history": ["face_in_a", 0, 0]}}], "kwargs": {}}]}
    config["config"]["layers"].append(drop)
    back = switch_precision(config, [*ELIGIBLE, "0.0_1"], "float32")
    assert back["config"]["layers"][-1]["inbound_nodes"][0]["kwargs"] == {"training": False}
    again = switch_precision(back, [*ELIGIBLE, "0.0_1"], "mixed_float16")
    assert again["config"]["layers"][-1]["inbound_nodes"][0]["kwargs"] == {"training": False}


def test_spatial_dropout_outputs_follow_their_config_after_a_switch():
    """A spatial dropout built under Faceswap's global mixed policy outputs float16 while its
    config says "float32" (Keras saves its variable dtype); Faceswap's switch to float32
    saves its output as float32 (Faceswap's unbalanced model), and so does fsprec's."""
    config = tiny_config(mixed=True)
    stem = next(entry for path, entry in iter_entries(config["config"]["layers"])
                if path == "encoder/stem")
    reference = next(keras3_tensors(stem["inbound_nodes"]))
    assert reference["keras_history"][0] == "spatial_dropout2d"
    reference["dtype"] = "float16"  # as built: the float16 input passed through
    back = switch_precision(config, ELIGIBLE, "float32")
    assert _tensors(back)[("encoder/stem", 0)] == ("spatial_dropout2d", "float32")


def test_stray_mixed_layers_are_made_float32():
    """A mixed layer outside the eligible set (a partial model) is set to float32."""
    mixed = tiny_config(mixed=True)
    back = switch_precision(mixed, [n for n in ELIGIBLE if n != "dense"], "float32")
    assert _policies(back)["encoder/dense"] == "float32"


def test_state_is_written_as_faceswap_saves_it(tmp_path):
    """Faceswap's State.save: its keys in its order, only sessions that trained, a per-side
    lowest_avg_loss summed, the layer names as its State holds them."""
    from factory import make_keras3
    from fsprec.core import convert

    folder = make_keras3(tmp_path / "m")
    path = folder / "tiny_state.json"
    state = json.loads(path.read_text())
    state = {"extra": 1, **state, "lowest_avg_loss": {"a": 0.25, "b": 0.5},
             "sessions": {"1": {"iterations": 7}, "2": {"iterations": 0}}}
    state["mixed_precision_layers"] = [*state["mixed_precision_layers"], "clip.layer"]
    path.write_text(json.dumps(state, indent=2))
    convert.convert(folder, "mixed_float16", backup=False)
    written = json.loads(path.read_text())
    assert list(written) == ["name", "sessions", "lowest_avg_loss", "iterations",
                             "mixed_precision_layers", "lr_finder", "config"]
    assert written["sessions"] == {"1": {"iterations": 7}}
    assert written["lowest_avg_loss"] == 0.75
    assert written["mixed_precision_layers"][-1] == "clip_layer"
    assert not any("." in n for n in written["mixed_precision_layers"])
    assert written["config"]["mixed_precision"] is True

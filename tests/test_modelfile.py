"""Reading model folders: formats, layer trees, dtypes, eligibility and parameter counts."""
from __future__ import annotations

import io
import zipfile

import h5py

import pytest

from conftest import FIXTURES, fixture_names, fixture_path, needs_fixtures
from factory import ELIGIBLE, make_keras2, make_keras3
from fsprec.core import open_model
from fsprec.core.config import policy_name
from fsprec.core.layers import derived_eligible, mixed_in_config

# Layer counts from the fixtures' README (leaves; fs2 counts there include 3 sub-models).
LEAVES = {"dfaker": 78, "lightweight": 40, "original": 42,
          "original_lowmem_icnr_convaware_reflect": 50, "phaze_a": 98}
FS2_LEAVES = {"dfl_sae": 102, "lightweight": 40, "original": 40}


@needs_fixtures
@pytest.mark.parametrize("name", fixture_names("fs3"))
def test_fs3_fixture_layers_and_eligibility(name):
    model = open_model(FIXTURES / "fs3" / name)
    plugin = name.split("-")[0]
    assert model.format == "keras3" and model.keras_version == "3.14.1"
    leaves = model.leaves()
    assert len(leaves) == LEAVES[plugin]
    stored = model.state.mixed_precision_layers
    mixed = mixed_in_config(model.config_layers)
    # Faceswap's own list: the state's as its State holds it (dots read as underscores, so
    # Phaze-A's '0.0_1' Dropouts match nothing), or (models built mixed) the mixed layers.
    names = {leaf.name for leaf in leaves}
    held = [n.replace(".", "_") for n in stored] if any("." in n for n in stored) else stored
    assert model.eligible == ([n for n in held if n in names] if stored else mixed)
    assert model.eligible_source == ("state" if stored else "config")
    mixed_names = ("-mixed", "-mixed-trained", "-switched-to-mixed")
    expected = "mixed_float16" if name.endswith(mixed_names) else "float32"
    assert model.precision == expected
    # Every eligible layer carries the model's policy; the others stay float32 or have none.
    for leaf in leaves:
        if leaf.eligible:
            assert leaf.dtype_policy == expected
        else:
            assert leaf.dtype_policy in ("float32", None)
            assert leaf.reason


@needs_fixtures
@pytest.mark.parametrize("name", fixture_names("fs2"))
def test_fs2_fixture_layers_and_eligibility(name):
    model = open_model(FIXTURES / "fs2" / name)
    assert model.format == "keras2" and model.keras_version == "2.10.0"
    assert len(model.leaves()) == FS2_LEAVES[name.split("-")[0]]
    stored = model.state.mixed_precision_layers
    assert model.eligible == (stored or mixed_in_config(model.config_layers))
    expected = "mixed_float16" if name.endswith(("-mixed", "to_mixed")) else "float32"
    assert model.precision == expected


@needs_fixtures
@pytest.mark.parametrize("name", [f"fs3/{n}" for n in fixture_names("fs3")]
                         + [f"fs2/{n}" for n in fixture_names("fs2")])
def test_derived_set_equals_faceswaps_own_list(name):
    """The derived eligible set (for old models without a stored list) must agree exactly
    with the list Faceswap stored, or with the mixed layers of a model built mixed."""
    model = open_model(fixture_path(name))
    faceswap = model.state.mixed_precision_layers or mixed_in_config(model.config_layers)
    assert derived_eligible(model.config_layers) == faceswap


@needs_fixtures
@pytest.mark.parametrize("name", ["fs3/original-fp32", "fs3/phaze_a-mixed", "fs3/dfaker-fp32",
                                  "fs2/dfl_sae-fp32-opt", "fs2/original-mixed"])
def test_parameter_counts_match_the_weights_file(name):
    """Params per layer come from h5 shapes; the total equals every dataset in the file."""
    folder = fixture_path(name)
    model = open_model(folder)
    tree_total = sum(top.params for top in model.layer_tree())
    if model.format == "keras3":
        raw = zipfile.ZipFile(model.model_file).read("model.weights.h5")
        h5 = h5py.File(io.BytesIO(raw), "r")
        prefix = "layers"
    else:
        h5 = h5py.File(model.model_file, "r")
        prefix = "model_weights"
    sizes = []
    h5[prefix].visititems(lambda n, o: sizes.append(o.size) if isinstance(o, h5py.Dataset)
                          else None)
    h5.close()
    assert tree_total == model.weights.total_params == sum(sizes)
    assert not [w for w in model.weights.weights if "?" in w.layer]


@needs_fixtures
def test_known_layer_parameters():
    model = open_model(fixture_path("fs3/original-fp32"))
    params = {leaf.path: leaf.params for leaf in model.leaves()}
    assert params["encoder/conv_128_0_conv2d"] == 5 * 5 * 3 * 128 + 128
    assert params["encoder/dense"] == 16384 * 1024 + 1024
    assert params["decoder_a/face_out_a_0_conv2d"] == 5 * 5 * 64 * 3 + 3
    assert params["encoder/conv_128_0_leakyrelu"] == 0


@needs_fixtures
def test_reasons_explain_each_layer():
    model = open_model(fixture_path("fs3/phaze_a-fp32"))
    reasons = {leaf.path: leaf.reason for leaf in model.leaves()}
    assert reasons["face_in_a"] == "input layer"
    assert reasons["decoder_both/face_out_0"] == "output activation kept float32 by Faceswap"
    assert "AdaInstanceNormalization" in reasons["g_block_both/ada_instance_normalization"]
    assert reasons["encoder/fs_enc_convblk_0_conv2d"] == "stored in state"
    mixed = open_model(fixture_path("fs3/phaze_a-mixed"))
    assert {leaf.reason for leaf in mixed.leaves() if leaf.eligible} == {"mixed in this model"}


@needs_fixtures
def test_faceswap_backups_are_listed():
    model = open_model(fixture_path("fs3/original-fp32-backup"))
    assert [p.name for p in model.backups] == ["original.keras.bk", "original_state.json.bk"]


def test_policy_forms():
    assert policy_name("float32") == "float32"
    assert policy_name({"module": "keras", "class_name": "DTypePolicy",
                        "config": {"name": "mixed_float16"}, "registered_name": None,
                        "shared_object_id": 1}) == "mixed_float16"
    assert policy_name({"class_name": "Policy", "config": {"name": "mixed_bfloat16"}}) \
        == "mixed_bfloat16"
    assert policy_name(None) is None


@pytest.mark.parametrize("maker", [make_keras3, make_keras2])
def test_tiny_models_tree(tmp_path, maker):
    model = open_model(maker(tmp_path / "m"))
    paths = {leaf.path: leaf for leaf in model.leaves()}
    assert "encoder/stem/stem_conv2d" in paths  # nested two deep
    assert paths["encoder/spatial_dropout2d"].dtype_policy == "float32"
    assert not paths["encoder/spatial_dropout2d"].eligible
    assert paths["decoder_a/face_out_a_0"].reason == "output activation kept float32 by Faceswap"
    assert model.eligible == ELIGIBLE
    assert paths["encoder/dense"].params == 128 * 16 + 16
    assert paths["encoder/stem/stem_conv2d"].params == 8 * 8 + 8
    assert paths["decoder_b/face_out_b_0_conv2d"].params == 3 * 3 * 8 * 3 + 3
    if model.format == "keras3":
        op = paths["encoder/add"]
        assert op.dtype_policy is None and op.reason == "op without a dtype policy"
    assert derived_eligible(model.config_layers) == ELIGIBLE


def test_tiny_mixed_model(tmp_path):
    model = open_model(make_keras3(tmp_path / "m", mixed=True))
    assert model.precision == "mixed_float16"
    assert model.eligible_source == "config"
    assert model.eligible == ELIGIBLE


def test_missing_state_still_opens(tmp_path):
    folder = make_keras3(tmp_path / "m")
    (folder / "tiny_state.json").unlink()
    model = open_model(folder)
    assert model.state is None and "No state file" in model.state_problem
    assert model.eligible_source == "derived" and model.eligible == ELIGIBLE


def test_malformed_state_is_flagged(tmp_path):
    folder = make_keras3(tmp_path / "m")
    (folder / "tiny_state.json").write_text("{not json")
    model = open_model(folder)
    assert model.state is None and "cannot be read" in model.state_problem


def test_inference_models_and_bk_files_are_ignored(tmp_path):
    folder = make_keras3(tmp_path / "m")
    (folder / "tiny_inference.keras").write_bytes(b"x")
    (folder / "tiny.keras.bk").write_bytes((folder / "tiny.keras").read_bytes())
    model = open_model(folder)
    assert model.model_file.name == "tiny.keras"
    assert [p.name for p in model.backups] == ["tiny.keras.bk"]


# --- partial models: named and made consistent ----------------------------------------------

def _rewrite_config(model_file, edit) -> None:
    """Apply ``edit(config)`` to a ``.keras`` file's config.json (other members kept)."""
    import json

    with zipfile.ZipFile(model_file) as zin:
        members = [(info, zin.read(info)) for info in zin.infolist()]
    with zipfile.ZipFile(model_file, "w") as zout:
        for info, data in members:
            if info.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(info, data)


def _faceswap_partial_phaze_a(copy_fixture):
    """What Faceswap's switch back to float32 leaves of a Phaze-A whose dotted Dropouts were
    switched to mixed by another tool: those Dropouts still mixed_float16."""
    from fsprec.core.config import iter_leaves
    from fsprec.core.precision import policy_form

    folder = copy_fixture("fs3/phaze_a-fp32")

    def edit(config):
        for _, entry in iter_leaves(config["config"]["layers"]):
            if "." in entry["name"]:
                entry["config"]["dtype"] = policy_form("mixed_float16", 3)
    _rewrite_config(folder / "phaze_a.keras", edit)
    return folder


@needs_fixtures
def test_partial_model_is_named_with_its_layers_and_reason(copy_fixture, capsys):
    import json

    from fsprec.core.cli import main

    folder = _faceswap_partial_phaze_a(copy_fixture)
    model = open_model(folder)
    dotted = [leaf.path for leaf in model.leaves(False) if "." in leaf.name]
    assert model.precision == "partial"
    assert model.partial.layers == dotted and "never switches them back" in model.partial.reason
    assert model.consistent_precision == "float32"
    assert main(["inspect", str(folder), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["precision"] == "partial"
    assert document["partial"]["layers"] == dotted
    assert main(["inspect", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "Precision: partial" in text and dotted[0] in text
    assert "fsprec convert --to float32" in text


@needs_fixtures
@pytest.mark.parametrize("target", ["float32", "mixed_float16"])
def test_convert_makes_a_partial_model_consistent(copy_fixture, target):
    from fsprec.core import convert

    folder = _faceswap_partial_phaze_a(copy_fixture)
    convert.convert(folder, target, backup=False)
    model = open_model(folder)
    assert model.partial is None and model.precision == target
    assert model.state.mixed_precision == (target != "float32")  # what Faceswap keeps
    assert all(leaf.dtype_policy in ("float32", None)
               for leaf in model.leaves(False) if "." in leaf.name)


def test_state_flag_against_the_layers_is_partial(tmp_path):
    """Faceswap sets an old float32 model's flag to mixed when it cannot switch it (no layer
    list); the layers stay float32. Make consistent switches it."""
    import json

    from fsprec.core import convert

    folder = make_keras3(tmp_path / "m")
    path = folder / "tiny_state.json"
    state = json.loads(path.read_text())
    state["config"]["mixed_precision"] = True
    state["mixed_precision_layers"] = []
    path.write_text(json.dumps(state, indent=2))
    model = open_model(folder)
    assert model.precision == "partial" and "state says mixed" in model.partial.reason
    plan = convert.plan_consistent(folder, backup=False)
    assert plan.target == "mixed_float16" and plan.changes
    convert.run(plan)
    assert open_model(folder).precision == "mixed_float16"

"""Loading Faceswap folders into Keras safely (fsprec.core.keras.loading and .upgrade)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from keras_support import (FIXTURES, FP16_TOLERANCE, needs_fixtures, reference,
                           reference_inputs, reference_outputs, rehydrated, relative_l2,
                           scratch)
from test_keras_parity import forward, mixed_layer_count

from fsprec.core import load_keras_model
from fsprec.core.keras import compat
from fsprec.core.errors import FsprecError
from fsprec.core.keras.upgrade import upgrade_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_session():
    yield
    keras.backend.clear_session()


def test_core_never_imports_keras_and_defaults_to_tensorflow() -> None:
    """Every core module except Keras' own (settings, compat) and the validation child imports
    without Keras; loading one still defaults the backend to TensorFlow."""
    modules = sorted(".".join(p.relative_to(REPO / "core").with_suffix("").parts)
                     for p in (REPO / "core").rglob("*.py"))
    modules = [m.removesuffix(".__init__").removesuffix("__init__") for m in modules]
    modules = [m for m in modules if not m.startswith(
        ("keras.settings", "keras.compat", "validate.child"))]
    script = (f"import sys, importlib\nfor name in {modules!r}:\n"
              "    importlib.import_module(('fsprec.core.' + name).rstrip('.'))\n"
              "heavy = {'keras', 'tensorflow', 'torch'} & set(sys.modules)\n"
              "assert not heavy, heavy\n"
              "from fsprec.core.keras.backend import ensure_backend\nprint(ensure_backend())\n")
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    child = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=False)
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.split()[-1] == "tensorflow"
    assert {"keras.loading", "keras.upgrade", "validate.runner", "convert"} <= set(modules)


def save_folder(model: keras.Model, folder: Path, plugin: str = "tiny") -> Path:
    folder.mkdir()
    model.save(folder / f"{plugin}.keras")
    return folder


def test_lambda_layers_are_refused_unless_allowed(tmp_path: Path) -> None:
    inputs = keras.Input((4,))
    doubled = keras.layers.Lambda(lambda t: t * 2, name="double")(inputs)
    folder = save_folder(keras.Model(inputs, doubled), tmp_path / "lambda")
    with pytest.raises(FsprecError, match=r"Lambda layer\(s\) \(double\)"):
        load_keras_model(folder)
    model = load_keras_model(folder, allow_lambda=True, safe_mode=False)
    assert keras.ops.convert_to_numpy(model(np.ones((1, 4), "float32"))).tolist() == [[2] * 4]


def test_unknown_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FsprecError, match="float16"):
        load_keras_model(tmp_path, policy="float16")


KERAS2_CONFIG = {
    "class_name": "Functional",
    "config": {
        "name": "m", "input_layers": [["in", 0, 0]],
        "output_layers": [[["dec", 1, 0]], [["dec", 2, 0]]],
        "layers": [
            {"class_name": "InputLayer", "name": "in", "inbound_nodes": [],
             "config": {"name": "in", "dtype": "float32", "batch_input_shape": [None, 4]}},
            {"class_name": "TFOpLambda", "name": "tf.math.multiply_1",
             "config": {"name": "tf.math.multiply_1", "trainable": True,
                        "function": "math.multiply",
                        "dtype": {"class_name": "Policy", "config": {"name": "mixed_float16"},
                                  "shared_object_id": 3}},
             "inbound_nodes": [["in", 0, 0, {"y": 127.5, "name": None}]]},
            {"class_name": "Functional", "name": "dec", "config": {
                "name": "dec", "input_layers": [["dec_in", 0, 0]],
                "output_layers": [["leaky", 0, 0]],
                "layers": [
                    {"class_name": "InputLayer", "name": "dec_in", "inbound_nodes": [],
                     "config": {"name": "dec_in", "dtype": "float32"}},
                    {"class_name": "LeakyReLU", "name": "leaky",
                     "config": {"name": "leaky", "dtype": "float32", "alpha": 0.1},
                     "inbound_nodes": [[["dec_in", 0, 0, {}]]]}]},
             "inbound_nodes": [[["tf.math.multiply_1", 0, 0, {}]], [["in", 0, 0, {}]]]},
            {"class_name": "Add", "name": "sum",
             "config": {"name": "sum", "dtype": "float32"},
             "inbound_nodes": [[["dec", 1, 0, {}], ["dec", 2, 0, {}]]]},
        ]}}


def test_upgrade_config_applies_faceswaps_documented_fixes() -> None:
    before = json.dumps(KERAS2_CONFIG)
    new = upgrade_config(KERAS2_CONFIG)
    assert json.dumps(KERAS2_CONFIG) == before  # the input is left alone
    layers = {entry["name"]: entry for entry in new["config"]["layers"]}
    assert new["config"]["output_layers"] == [["dec", 1, 0], ["dec", 2, 0]]
    assert layers["in"]["config"]["dtype"] == "float32"
    scalar = layers["tf.math.multiply_1"]
    assert (scalar["module"], scalar["class_name"], scalar["registered_name"]) == (
        "lib.model.layers", "ScalarOp", "ScalarOp")
    assert scalar["config"] == {"name": "tf.math.multiply_1", "trainable": True,
                                "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                          "config": {"name": "mixed_float16"},
                                          "registered_name": None},
                                "operation": "multiply", "value": 127.5}
    assert scalar["inbound_nodes"] == [[["in", 0, 0, {}]]]
    leaky = layers["dec"]["config"]["layers"][1]["config"]
    assert leaky["negative_slope"] == 0.1 and "alpha" not in leaky
    assert leaky["dtype"]["class_name"] == "DTypePolicy"
    assert layers["sum"]["inbound_nodes"] == [[["dec", 0, 0, {}], ["dec", 1, 0, {}]]]
    assert layers["dec"]["inbound_nodes"] == KERAS2_CONFIG["config"]["layers"][2][
        "inbound_nodes"]  # references to plain layers keep their node index


def test_upgrade_config_drops_arguments_keras3_removed() -> None:
    conv = {"name": "c", "dtype": "float32", "groups": 1, "kernel_initializer": "he_uniform",
            "kernel_regularizer": None, "kernel_constraint": None, "depthwise_initializer": "x"}
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": cls, "name": cls, "config": dict(conv, name=cls), "inbound_nodes": []}
        for cls in ("SeparableConv2D", "DepthwiseConv2D", "Conv2D")]}}
    layers = {e["name"]: e["config"] for e in upgrade_config(config)["config"]["layers"]}
    assert set(layers["SeparableConv2D"]) == {"name", "dtype", "depthwise_initializer"}
    assert "groups" not in layers["DepthwiseConv2D"]
    assert "kernel_initializer" in layers["DepthwiseConv2D"]
    assert layers["Conv2D"]["groups"] == 1  # Keras 3 Conv2D still has groups


def test_upgrade_config_refuses_what_keras3_cannot_load() -> None:
    tensor_op = json.loads(json.dumps(KERAS2_CONFIG))
    tensor_op["config"]["layers"][1]["inbound_nodes"] = [["in", 0, 0, {"y": ["in", 0, 0]}]]
    with pytest.raises(FsprecError, match="not a scalar operation"):
        upgrade_config(tensor_op)
    clip = json.loads(json.dumps(KERAS2_CONFIG))
    clip["config"]["layers"][2]["name"] = "visual"
    with pytest.raises(FsprecError, match="CLIP"):
        upgrade_config(clip)


@needs_fixtures
def test_keras2_scalar_tfoplambda_loads_as_scalar_op() -> None:
    """A Faceswap 2 file with a scalar TFOpLambda (as EfficientNet encoders have) loads, and
    the op computes: ``x * 2`` into the encoder equals feeding the encoder ``2 * x``."""
    source = rehydrated("fs2/original-fp32")
    _, arrays = reference("fs2/original-fp32")
    face_a, face_b = reference_inputs(arrays)
    with scratch() as folder:
        shutil.copy(source / "original.h5", folder / "original.h5")
        with h5py.File(folder / "original.h5", "r+") as h5:
            config = json.loads(h5.attrs["model_config"])
            layers = config["config"]["layers"]
            encoder = next(e for e in layers if e["name"] == "encoder")
            encoder["inbound_nodes"][0] = [["tf.math.multiply", 0, 0, {}]]
            layers.insert(2, {"class_name": "TFOpLambda", "name": "tf.math.multiply",
                              "config": {"name": "tf.math.multiply", "trainable": True,
                                         "dtype": "float32", "function": "math.multiply"},
                              "inbound_nodes": [["face_in_a", 0, 0, {"y": 2.0, "name": None}]]})
            h5.attrs["model_config"] = json.dumps(config)
        patched = load_keras_model(folder)
    assert type(patched.get_layer("tf.math.multiply")).__name__ == "ScalarOp"
    got = forward(patched, [face_a, face_b])
    want = forward(load_keras_model(source), [2 * face_a, face_b])
    assert relative_l2(got[0], want[0]) < 1e-6


@needs_fixtures
def test_keras2_model_switches_policy_on_load() -> None:
    info, arrays = reference("fs2/original-fp32")
    model = load_keras_model(rehydrated("fs2/original-fp32"), policy="mixed_float16")
    assert mixed_layer_count(model) == info["mixed_precision_layers_in_state"]
    outputs = forward(model, reference_inputs(arrays))
    errors = [relative_l2(o, r) for o, r in zip(outputs, reference_outputs(arrays), strict=True)]
    assert 0 < max(errors) <= FP16_TOLERANCE


FAKE_LAYERS = """
from fsprec.core.keras.compat import PixelShuffler as _Base

class PixelShuffler(_Base):
    from_faceswap_dir = True
"""


@pytest.fixture
def fake_faceswap(tmp_path: Path):
    """A minimal Faceswap tree whose PixelShuffler is marked; imports undone afterwards."""
    root = tmp_path / "faceswap"
    (root / "lib" / "model").mkdir(parents=True)
    for name in ("lib/__init__.py", "lib/model/__init__.py", "lib/model/normalization.py",
                 "lib/model/initializers.py"):
        (root / name).write_text("")
    (root / "lib" / "model" / "layers.py").write_text(FAKE_LAYERS)
    path, modules = list(sys.path), set(sys.modules)
    yield root
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    compat.register()


@needs_fixtures
def test_faceswap_dir_uses_faceswaps_own_classes(fake_faceswap: Path, tmp_path: Path) -> None:
    model = load_keras_model(FIXTURES / "fs3/original-fp32", faceswap_dir=fake_faceswap)
    shufflers = [layer for sub in model.layers if isinstance(sub, keras.Model)
                 for layer in sub.layers if type(layer).__name__ == "PixelShuffler"]
    assert shufflers and all(getattr(s, "from_faceswap_dir", False) for s in shufflers)
    default = load_keras_model(FIXTURES / "fs3/original-fp32")
    encoder = default.get_layer("encoder")
    assert type(encoder.get_layer("upscale_512_0_pixelshuffler")) is compat.PixelShuffler
    with pytest.raises(FsprecError, match="not a Faceswap folder"):
        load_keras_model(FIXTURES / "fs3/original-fp32", faceswap_dir=tmp_path)

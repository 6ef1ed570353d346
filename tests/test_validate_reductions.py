"""Whole-tensor reductions as config risks: found from the config and the measured shapes,
settled by running the layer alone in float16 on float32's inputs (faces and stress inputs)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from keras_models import build_layer_folder
from fsprec.core.validate import Options, ValidationResult, decide, run_validation
from fsprec.core.validate.report import text_report
from fsprec.core.validate.child.reductions import layer_reduction, op_reduction

SHAPE = [6, 256, 256, 4]  # 2 faces + 4 stress inputs, as the quick pass feeds them


@pytest.mark.parametrize(("class_name", "config", "what", "count"), [
    ("InstanceNormalization", {"axis": None}, "mean and standard deviation", 256 * 256 * 4),
    ("InstanceNormalization", {"axis": -1}, "mean and standard deviation", 256 * 256),
    ("AdaInstanceNormalization", {"axis": -1}, "mean and standard deviation", 256 * 256),
    ("GroupNormalization", {"axis": [-1], "group": 2}, "mean and variance per group",
     256 * 256 * 2),
    ("RMSNormalization", {"axis": 3, "partial": 0.5}, "mean of squares", 2),
    ("GlobalStdDevPooling2D", {}, "standard deviation", 256 * 256),
    ("L2Normalize", {"axis": -1}, "sum of squares", 4),
    ("LayerNormalization", {"axis": [1, 2, 3]}, "mean and variance", 256 * 256 * 4),
    ("MyNorm", {"axis": None}, "MyNorm's reduction", 256 * 256 * 4),
])
def test_reductions_are_sized_from_the_config_and_the_input_shape(class_name, config, what,
                                                                  count):
    found = layer_reduction(class_name, config, SHAPE)
    assert (found.what, found.count) == (what, count)


def test_only_sums_that_can_pass_65504_are_risks():
    whole = layer_reduction("InstanceNormalization", {"axis": None}, [6, 64, 64, 4])
    assert whole.count == 16384 and not whole.overflows(1.0)  # a white frame sums to 16384
    assert whole.overflows(2.5)  # its squares can reach 16384 * 6.25
    assert layer_reduction("InstanceNormalization", {"axis": None}, SHAPE).overflows(0.5)
    assert "over 262,144 values per image (|x| up to 1); float16 sums overflow past 65504" in \
        layer_reduction("InstanceNormalization", {"axis": None}, SHAPE).reason(1.0)
    # Keras' own layers are known by name: an axis list there is not a reduction.
    assert layer_reduction("Concatenate", {"axis": -1}, SHAPE) is None
    assert layer_reduction("Normalization", {"axis": [1, 2]}, SHAPE, builtin=True) is None


def test_reducing_op_nodes_are_named_as_unmeasured():
    node = {"module": "keras.src.ops.numpy", "class_name": "Sum",
            "config": {"name": "sum", "axis": None, "keepdims": False}, "name": "sum"}
    assert "sum over every axis, the batch included" in op_reduction(node)
    assert "fsprec measures layers, not ops" in op_reduction(node)
    assert op_reduction({**node, "class_name": "Square"}) is None
    assert op_reduction({"module": "keras.layers", "class_name": "Sum"}) is None


TORCH_RUN = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import keras
from keras import ops
from keras_models import build_layer_folder, build_model_folder
from fsprec.core.keras.compat import InstanceNormalization
from fsprec.core.validate import Options
from fsprec.core.validate.child import engine


@keras.saving.register_keras_serializable(package="fsprec_tests")
class SquareNorm(keras.layers.Layer):
    # x / sqrt(mean(x**2)) over ``axis``: the mean as ops.sum(...) / n (a float16 sum, which
    # overflows past 65504) or as ops.mean (accumulated in float32 by Keras).
    def __init__(self, axis=None, accumulate="sum", **kwargs):
        super().__init__(**kwargs)
        self.axis, self.accumulate = axis, accumulate

    def call(self, x):
        axes = self.axis or list(range(1, len(x.shape)))
        count = 1
        for axis in axes:
            count *= x.shape[axis]
        if self.accumulate == "sum":
            mean_square = ops.sum(ops.square(x), axes, keepdims=True) / count
        else:
            mean_square = ops.mean(ops.square(x), axes, keepdims=True)
        return x * ops.rsqrt(mean_square + 1e-3)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "accumulate": self.accumulate}


root = Path(sys.argv[1])
models = {
    "sum": lambda: SquareNorm([1, 2], "sum", name="norm"),
    "mean": lambda: SquareNorm(None, "mean", name="norm"),
    "instance": lambda: InstanceNormalization(axis=None, name="norm"),
    "op": lambda: (lambda x: x - ops.mean(x, axis=[1, 2, 3], keepdims=True)),
}
found = {}
for name, make in models.items():
    folder = build_layer_folder(root / name, make)
    found[name] = engine.run(folder, Options(steps=0, speed=False)).to_json()
found["healthy"] = engine.run(build_model_folder(root / "healthy"),
                              Options(steps=0, speed=False)).to_json()
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def torch_results(tmp_path_factory) -> dict[str, ValidationResult]:
    """Quick passes on the torch backend (Faceswap 3's): one model per reduction."""
    pytest.importorskip("torch")
    from keras_support import run_torch
    found = run_torch(TORCH_RUN, str(tmp_path_factory.mktemp("reductions")),
                      str(Path(__file__).parent))
    return {name: ValidationResult.from_json(doc) for name, doc in found.items()}


def test_a_float16_sum_that_overflows_only_on_white_is_pinned(torch_results):
    """x / sqrt(sum(x**2) / n) over 256x256: the faces sum to less than 65504, the white frame
    to 65536 = Inf, so the layer outputs 0 there — finite, so no stress input shows Inf/NaN;
    only the layer's own measurement finds it."""
    result = torch_results["sum"]
    assert not any(s.new_nonfinite for s in result.stress)
    (risk,) = result.config_risks
    assert risk.path == "norm" and risk.fails
    assert "over 65,536 values per image" in risk.reason and "65504" in risk.reason
    assert "on the white input" in risk.measured and "off by 100%" in risk.measured
    assert result.verdict.status == "safe_with_pins" and result.verdict.pins == ["norm"]
    assert risk.outcome == "pinned"
    assert "norm (" in result.verdict.text and "white input" in result.verdict.text
    assert decide(replace(result, autopin=None)).status == "not_safe"
    assert f"config risk norm ({risk.reason}): pinned; {risk.measured}" in text_report(result)


@pytest.mark.parametrize("name", ["mean", "instance"])
def test_a_whole_tensor_reduction_accumulated_in_float32_is_measured_harmless(torch_results,
                                                                             name):
    """axis=None over 256x256x3 = 196,608 values: ops.mean and ops.std (Faceswap's
    InstanceNormalization) accumulate in float32 on torch, so the verdict stays safe and says
    why the risk is harmless."""
    result = torch_results[name]
    (risk,) = result.config_risks
    assert "over 196,608 values per image" in risk.reason
    assert risk.outcome == "harmless" and not risk.fails
    assert "largest error" in risk.measured
    assert result.verdict.status == "safe"
    assert "measured harmless on the faces and stress inputs" in result.verdict.text


def test_a_reducing_op_node_is_reported_unmeasured(torch_results):
    result = torch_results["op"]
    (risk,) = result.config_risks
    assert risk.outcome == "unmeasured" and "keras.ops mean over axis [1, 2, 3]" in risk.reason
    assert result.verdict.status == "safe"
    assert "judged only by the model's outputs" in result.verdict.text


def test_a_healthy_model_gains_no_config_risk(torch_results):
    result = torch_results["healthy"]
    assert result.config_risks == [] and result.verdict.status == "safe"


def test_tensorflow_instance_normalization_over_256x256_is_finite_but_wrong(tmp_path):
    """Faceswap's InstanceNormalization(axis=-1) takes its standard deviation over 65,536
    values; TensorFlow computes ops.std in float16 and gets 0, so the layer's output is finite
    but far from float32's: the validator pins the layer."""
    from fsprec.core.keras.compat import InstanceNormalization
    folder = build_layer_folder(tmp_path / "model",
                                lambda: InstanceNormalization(axis=-1, name="norm"))
    result = run_validation(folder, Options(steps=0, speed=False), backend="tensorflow")
    assert result.runtime.backend == "tensorflow"
    (risk,) = result.config_risks
    assert risk.fails and "over 65,536 values per image" in risk.reason
    assert "off by" in risk.measured
    assert result.verdict.status == "safe_with_pins" and result.verdict.pins == ["norm"]
    assert json.loads(json.dumps(result.to_json()))["config_risks"][0]["fails"] is True


def _tensorflow_layer_check(make) -> tuple[bool, str]:
    """``make(dtype)``'s layer alone in mixed_float16 against float32, on TensorFlow (the
    suite's in-process backend), fed 2 faces and a white frame at 256x256x4."""
    import keras
    import numpy as np

    from fsprec.core.validate.child.inputs import synthetic_faces
    from fsprec.core.validate.child.layercheck import check_layer
    from fsprec.core.validate.child.probe import Call
    assert keras.backend.backend() == "tensorflow"
    images = np.concatenate([synthetic_faces(2, 256, 256, 4), np.ones((1, 256, 256, 4),
                                                                       "float32")])
    reference, target = make("float32"), make("mixed_float16")
    expected = np.asarray(reference(images))
    target(images[:1])
    target.set_weights(reference.get_weights())
    found = check_layer(target, [Call((images,), {}, [expected])], ["faces", "faces", "white"],
                        0.1)
    return found.fails, found.measured


@pytest.mark.parametrize(("name", "config", "fails"), [
    ("GroupNormalization", {"group": 2}, False),
    ("RMSNormalization", {}, False),
    ("LayerNormalization", {"axis": [1, 2, 3]}, False),
    ("InstanceNormalization", {"axis": None}, True),
    ("GlobalStdDevPooling2D", {}, True),
])
def test_what_tensorflow_computes_in_float16_as_docs_validation_says(name, config, fails):
    """docs/validation.md's facts: ops.mean and ops.var accumulate in float32, so these layers
    agree with float32 over 65,536 values and more; TensorFlow's ops.std is float16 throughout.
    (Faceswap's layers as fsprec rebuilds them; LayerNormalization is Keras' own.)"""
    import keras

    from fsprec.core.keras import compat
    kind = getattr(compat, name, None) or getattr(keras.layers, name)
    failed, measured = _tensorflow_layer_check(lambda dtype: kind(dtype=dtype, **config))
    assert failed is fails, measured

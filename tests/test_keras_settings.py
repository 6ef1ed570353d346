"""fsprec.core.keras.settings: Faceswap's Settings contract on fsprec's one precision switch."""
from __future__ import annotations

import copy
import logging

import keras
import numpy as np
import pytest
from keras_support import FIXTURES, needs_fixtures, rehydrated, scratch

from fsprec.core import load_keras_model, open_model
from fsprec.core.keras.compat import PixelShuffler
from fsprec.core.convert import convert
from fsprec.core.errors import FsprecError
from fsprec.core.config import entry_policy, iter_leaves
from fsprec.core.layers import derived_eligible
from fsprec.core.keras.settings import Settings
from fsprec.core.state import State


@pytest.fixture(autouse=True)
def restore_policy():
    """Settings change Keras' global policy: put float32 back after each test."""
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


def build_faceswap_style(inputs: list) -> keras.Model:
    """A tiny Faceswap-like model: an encoder/decoder pair with a float32 output activation."""
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv_16_conv2d")(inputs[0])
    x = keras.layers.LeakyReLU(0.1, name="conv_16_leakyrelu")(x)
    x = PixelShuffler(name="upscale_pixelshuffler")(x)
    x = keras.layers.Conv2D(3, 3, padding="same", name="face_out_a_conv2d")(x)
    x = keras.layers.Activation("sigmoid", dtype="float32", name="face_out_a")(x)
    return keras.Model(inputs, x, name="tiny")


def layer_policies(config: dict) -> dict[str, str | None]:
    """``path -> dtype policy`` of every leaf of a (file or in-memory) model config."""
    return {path: entry_policy(entry) for path, entry in iter_leaves(config["layers"])}


@pytest.mark.parametrize("requested, predict, policy, mixed", [
    (False, False, "float32", False), (True, False, "mixed_float16", True),
    (True, True, "float32", False), ("mixed_bfloat16", False, "mixed_bfloat16", True)])
def test_settings_set_the_global_policy(requested, predict, policy, mixed) -> None:
    settings = Settings(None, requested, predict)
    assert settings.use_mixed_precision is mixed
    assert settings.policy == policy
    assert keras.config.dtype_policy().name == policy


def test_settings_refuse_an_unknown_policy() -> None:
    with pytest.raises(FsprecError, match="float16"):
        Settings(mixed_precision="float16")


def test_get_mixed_precision_layers_lists_the_layers_that_take_the_mixed_policy() -> None:
    settings = Settings(mixed_precision=False)
    inputs = [keras.Input((8, 8, 3), name="face_in_a")]
    model, names = settings.get_mixed_precision_layers(build_faceswap_style, inputs)
    assert names == ["conv_16_conv2d", "conv_16_leakyrelu", "upscale_pixelshuffler",
                     "face_out_a_conv2d"]  # the float32 output and the input are left out
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert keras.config.dtype_policy().name == "float32"
    assert model([np.zeros((1, 8, 8, 3), "float32")]).shape == (1, 16, 16, 3)


def test_check_model_precision_refuses_without_a_stored_list(caplog) -> None:
    model = build_faceswap_style([keras.Input((8, 8, 3))])
    state = State({"name": "tiny", "mixed_precision_layers": []})
    with caplog.at_level(logging.WARNING, logger="fsprec.core.keras.settings"):
        result = Settings(mixed_precision=True).check_model_precision(model, state)
    assert result is model
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert state.mixed_precision_layers == []
    assert "stays in full precision" in caplog.text


def test_check_model_precision_uses_an_explicit_eligible_list() -> None:
    model = build_faceswap_style([keras.Input((8, 8, 3))])
    weights = model.get_weights()
    eligible = derived_eligible(model.get_config()["layers"])
    state = State({"name": "tiny", "mixed_precision_layers": []})
    result = Settings(mixed_precision=True).check_model_precision(model, state, eligible)
    policies = {layer.name: layer.dtype_policy.name for layer in result.layers}
    assert policies == {result.layers[0].name: "float32", "conv_16_conv2d": "mixed_float16",
                        "conv_16_leakyrelu": "mixed_float16",
                        "upscale_pixelshuffler": "mixed_float16",
                        "face_out_a_conv2d": "mixed_float16", "face_out_a": "float32"}
    assert state.mixed_precision_layers == eligible
    assert all(np.array_equal(a, b) for a, b in zip(weights, result.get_weights(), strict=True))
    output = keras.ops.convert_to_numpy(result([np.ones((1, 8, 8, 3), "float32")]))
    assert output.dtype == np.float32


def switch_like_the_file_engine(name: str, target: str, mixed: bool, faceswaps: str) -> None:
    """check_model_precision on a loaded model gives the per-layer policies of Faceswap's own
    switch (fixture ``faceswaps``) and the policies and weights of the same model converted
    on disk by fsprec.core.convert."""
    source = rehydrated(name)
    folder = open_model(source)
    state = State(copy.deepcopy(folder.state.data))
    model = load_keras_model(source)
    original = model.get_weights()
    switched = Settings(mixed_precision=mixed).check_model_precision(model, state)
    with scratch() as tmp:
        result = convert(source, target, out_dir=tmp / "converted")
        converted = open_model(tmp / "converted")
        reloaded = load_keras_model(tmp / "converted")
    policies = layer_policies(switched.get_config())
    assert policies == layer_policies(converted.config["config"])
    assert policies == layer_policies(open_model(FIXTURES / faceswaps).config["config"])
    assert policies["encoder/conv_128_0_conv2d"] == target
    # Faceswap's switch leaves the state's config flag to its train.ini step; convert sets it
    assert state.mixed_precision_layers == converted.state.mixed_precision_layers
    for before, after, on_disk in zip(original, switched.get_weights(), reloaded.get_weights(),
                                      strict=True):
        assert before.dtype == after.dtype == on_disk.dtype
        assert before.tobytes() == after.tobytes() == on_disk.tobytes()
    assert result.changed > 0


@needs_fixtures
def test_check_model_precision_to_mixed_matches_convert() -> None:
    switch_like_the_file_engine("fs3/original-fp32", "mixed_float16", True,
                                "fs3/original-fp32-switched-to-mixed")


@needs_fixtures
def test_check_model_precision_to_float32_matches_convert() -> None:
    """A mixed model with an empty stored list: the list comes from the model, as Faceswap
    and the file engine both do."""
    switch_like_the_file_engine("fs3/original-mixed", "float32", False,
                                "fs3/original-mixed-switched-to-fp32")


def test_loss_scale_optimizer_trains_one_step() -> None:
    settings = Settings(mixed_precision=True)
    optimizer = settings.loss_scale_optimizer(keras.optimizers.SGD(0.1), initial_scale=2.0 ** 8,
                                              dynamic_growth_steps=10)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    model = build_faceswap_style([keras.Input((8, 8, 3))])
    assert model.get_layer("conv_16_conv2d").compute_dtype == "float16"
    kernel = model.get_layer("conv_16_conv2d").kernel.numpy().copy()
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    loss = model.train_on_batch([rng.random((2, 8, 8, 3), "float32")],
                                rng.random((2, 16, 16, 3), "float32"))
    scale = float(optimizer.dynamic_scale.numpy())
    assert np.isfinite(loss) and np.isfinite(scale) and scale == 2.0 ** 8
    trained = model.get_layer("conv_16_conv2d").kernel.numpy()
    assert trained.dtype == np.float32 and not np.array_equal(kernel, trained)

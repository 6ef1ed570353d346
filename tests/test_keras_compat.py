"""fsprec.core.keras.compat: Faceswap's custom objects, checked one by one on small cases."""
from __future__ import annotations

import math
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from fsprec.core.keras import compat
from fsprec.core.keras.compat import (ICNR, AdaInstanceNormalization, ConvolutionAware,
                                GlobalMinPooling2D, GlobalStdDevPooling2D, GroupNormalization,
                                InstanceNormalization, KResizeImages, L2Normalize, PixelShuffler,
                                QuickGELU, ReflectionPadding2D, RMSNormalization, ScalarOp, Swish)

# The config keys each class adds to Keras' own, as Faceswap's classes write them.
FACESWAP_KEYS = {
    PixelShuffler: {"size", "data_format"},
    ReflectionPadding2D: {"stride", "kernel_size"},
    KResizeImages: {"size", "interpolation"},
    Swish: {"beta"},
    ScalarOp: {"operation", "value"},
    L2Normalize: {"axis"},
    QuickGELU: set(),
    GlobalMinPooling2D: {"data_format"},
    GlobalStdDevPooling2D: {"data_format"},
    InstanceNormalization: {"axis", "epsilon", "center", "scale", "beta_initializer",
                            "gamma_initializer", "beta_regularizer", "gamma_regularizer",
                            "beta_constraint", "gamma_constraint"},
    AdaInstanceNormalization: {"axis", "momentum", "epsilon", "center", "scale"},
    # Faceswap does not save data_format (a channels_first layer would come back
    # channels_last); fsprec adds it, and Faceswap's class accepts it.
    GroupNormalization: {"epsilon", "axis", "gamma_init", "beta_init", "gamma_regularizer",
                         "beta_regularizer", "group", "data_format"},
    RMSNormalization: {"axis", "epsilon", "partial", "bias"},
}
MODULES = {cls: "lib.model.normalization" if cls.__module__.endswith("normalization")
           else "lib.model.layers" for cls in FACESWAP_KEYS}
ARGS = {L2Normalize: {"axis": -1}, ScalarOp: {"operation": "add", "value": 1.5}}


@pytest.fixture(autouse=True)
def float32_policy():
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


def run(layer: keras.layers.Layer, *inputs: np.ndarray) -> np.ndarray:
    """Call ``layer`` eagerly and return the result as NumPy."""
    arrays = [np.asarray(x, "float32") for x in inputs]
    out = layer(arrays if len(arrays) > 1 else arrays[0])
    return keras.ops.convert_to_numpy(out)


def test_custom_objects_cover_faceswaps_names() -> None:
    assert set(compat.custom_objects()) == {cls.__name__ for cls in FACESWAP_KEYS} | {
        "ICNR", "ConvolutionAware"}


@pytest.mark.parametrize("cls", list(FACESWAP_KEYS), ids=lambda c: c.__name__)
def test_config_round_trip_under_faceswaps_name(cls: type) -> None:
    layer = cls(**ARGS.get(cls, {}))
    config = layer.get_config()
    assert set(config) - {"name", "trainable", "dtype"} == FACESWAP_KEYS[cls]
    assert cls.from_config(config).get_config() == config
    compat.register()
    saved = {"module": MODULES[cls], "class_name": cls.__name__, "config": config,
             "registered_name": cls.__name__}  # the form Faceswap's saves carry
    restored = keras.saving.deserialize_keras_object(saved)
    assert type(restored) is cls and restored.get_config() == config


def test_pixel_shuffler_moves_channels_into_blocks() -> None:
    last = run(PixelShuffler(), np.arange(8).reshape(1, 1, 1, 8))
    assert last.tolist() == [[[[0, 1], [2, 3]], [[4, 5], [6, 7]]]]
    first = run(PixelShuffler(data_format="channels_first"), np.arange(8).reshape(1, 8, 1, 1))
    assert first.tolist() == [[[[0, 2], [4, 6]], [[1, 3], [5, 7]]]]
    layer = PixelShuffler(size=(2, 2))
    assert layer.compute_output_shape((None, 4, 6, 12)) == (None, 8, 12, 3)
    assert run(layer, np.zeros((2, 4, 6, 12))).shape == (2, 8, 12, 3)
    with pytest.raises(ValueError, match="cannot be split"):
        layer.compute_output_shape((None, 4, 4, 6))


def test_reflection_padding_pads_like_same_convolution() -> None:
    image = np.arange(16).reshape(1, 4, 4, 1)
    out = run(ReflectionPadding2D(stride=2, kernel_size=5), image)  # 5 - 2 = 3: 1 + 2
    assert out.shape == (1, 7, 7, 1)
    assert out[0, :, 0, 0].tolist() == [5, 1, 5, 9, 13, 9, 5]
    assert out[0, 0, :, 0].tolist() == [5, 4, 5, 6, 7, 6, 5]
    odd = ReflectionPadding2D(stride=(2, 2), kernel_size=5)  # 5 % 2 = 1: 5 - 1 = 4: 2 + 2
    assert odd.compute_output_shape((None, 5, 5, 3)) == (None, 9, 9, 3)
    assert run(odd, np.zeros((1, 5, 5, 3))).shape == (1, 9, 9, 3)
    with pytest.raises(ValueError, match="square stride"):
        ReflectionPadding2D(stride=(1, 2))


def test_kresize_images_scales_the_spatial_axes() -> None:
    out = run(KResizeImages(size=2), np.array([[1, 2], [3, 4]]).reshape(1, 2, 2, 1))
    assert out[0, :, :, 0].tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    bilinear = KResizeImages(size=1.5, interpolation="bilinear")
    assert bilinear.compute_output_shape((None, 2, 4, 3)) == (None, 3, 6, 3)
    assert run(bilinear, np.ones((1, 2, 4, 3))).tolist() == np.ones((1, 3, 6, 3)).tolist()


def test_activations_compute_faceswaps_formulas() -> None:
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    assert run(Swish(beta=2.0), [-1.0, 0.0, 1.0]) == pytest.approx(
        [-2 * sigmoid(-2), 0.0, 2 * sigmoid(2)], rel=1e-6)
    assert run(QuickGELU(), [1.0, -2.0]) == pytest.approx(
        [sigmoid(1.702), -2 * sigmoid(-3.404)], rel=1e-6)
    assert QuickGELU().name == "QuickGELU"
    assert run(L2Normalize(axis=-1), [[3.0, 4.0]]) == pytest.approx(np.array([[0.6, 0.8]]))


def test_scalar_op_applies_its_operation() -> None:
    results = {op: run(ScalarOp(op, 4.0), [2.0]).item()
               for op in ("multiply", "truediv", "add", "subtract")}
    assert results == {"multiply": 8.0, "truediv": 0.5, "add": 6.0, "subtract": -2.0}
    assert ScalarOp("multiply", 2.0).name == "ScalarOp_multiply"
    with pytest.raises(ValueError, match="operation"):
        ScalarOp("power", 2.0)


def test_global_pooling_reduces_the_spatial_axes() -> None:
    x = np.array([1.0, 5.0, 2.0, 6.0, 3.0, 7.0, 4.0, 8.0]).reshape(1, 2, 2, 2)
    assert run(GlobalMinPooling2D(), x).tolist() == [[1.0, 5.0]]
    std = math.sqrt(1.25)  # population std of 1, 2, 3, 4 (and of 5, 6, 7, 8)
    assert run(GlobalStdDevPooling2D(), x) == pytest.approx(np.array([[std, std]]))
    first = GlobalMinPooling2D(data_format="channels_first")
    assert first.compute_output_shape((None, 3, 4, 4)) == (None, 3)
    assert run(first, np.transpose(x, (0, 3, 1, 2))).tolist() == [[1.0, 5.0]]


def test_instance_normalization_uses_std_plus_epsilon() -> None:
    layer = InstanceNormalization(axis=-1, epsilon=1e-3)
    x = np.array([1.0, 2.0, 3.0, 6.0]).reshape(1, 2, 1, 2)  # channel 0: 1, 3; channel 1: 2, 6
    layer.build(x.shape)
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [("gamma", (2,)), ("beta", (2,))]
    layer.set_weights([np.array([2.0, 1.0]), np.array([0.0, 10.0])])
    out = run(layer, x)[0, :, 0, :]
    assert out[:, 0] == pytest.approx([-2 / 1.001, 2 / 1.001], rel=1e-6)  # mean 2, std 1
    assert out[:, 1] == pytest.approx([10 - 2 / 2.001, 10 + 2 / 2.001], rel=1e-6)  # 4, 2
    whole = InstanceNormalization(center=False)
    whole.build((None, 2, 1, 2))
    assert [(w.name, tuple(w.shape)) for w in whole.weights] == [("gamma", (1,))]
    std = math.sqrt(3.5)  # 1, 2, 3, 6 around their mean 3
    assert run(whole, x).ravel() == pytest.approx((x.ravel() - 3) / (std + 1e-3), rel=1e-6)


def test_group_normalization_normalizes_each_group() -> None:
    layer = GroupNormalization(group=2, epsilon=0.0)
    x = np.array([1.0, 3.0, 10.0, 30.0, 3.0, 5.0, 10.0, 50.0]).reshape(1, 1, 2, 4)
    layer.build(x.shape)
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [
        ("gamma", (1, 1, 1, 4)), ("beta", (1, 1, 1, 4))]
    out = run(layer, x)[0, 0]
    root2 = math.sqrt(2)  # group 0 holds 1, 3 and 3, 5: mean 3, variance 2
    assert out[:, :2].ravel() == pytest.approx([-2 / root2, 0, 0, 2 / root2], abs=1e-6)
    flat = GroupNormalization(group=1, epsilon=0.0)
    assert run(flat, [[1.0, 3.0], [5.0, 7.0]]).ravel() == pytest.approx(
        np.array([-3, -1, 1, 3]) / math.sqrt(5), rel=1e-6)  # rank 2: the whole batch
    with pytest.raises(ValueError, match="fewer than the group size"):
        run(GroupNormalization(group=8), np.zeros((1, 2, 2, 4)))


def test_rms_normalization_scales_by_the_root_mean_square() -> None:
    layer = RMSNormalization(bias=True)
    layer.build((None, 2))
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [("scale", (2,)),
                                                                 ("offset", (2,))]
    assert layer.get_config()["axis"] == 1  # stored non-negative, as Faceswap does
    assert run(layer, [[3.0, 4.0]]) == pytest.approx(np.array([[3.0, 4.0]]) / math.sqrt(12.5),
                                                     rel=1e-6)
    partial = RMSNormalization(partial=0.5)
    assert run(partial, [[3.0, 4.0, 100.0, 0.0]]) == pytest.approx(
        np.array([[3.0, 4.0, 100.0, 0.0]]) / math.sqrt(12.5), rel=1e-6)
    assert [w.name for w in RMSNormalization().weights] == []


def test_rms_epsilon_underflows_in_float16_as_in_faceswap() -> None:
    tiny = np.full((1, 4), 1e-4, "float32")  # mean square 1e-8, the size of epsilon
    with_eps, without = RMSNormalization(epsilon=1e-8), RMSNormalization(epsilon=0.0)
    assert run(with_eps, tiny) == pytest.approx(np.full((1, 4), 1 / math.sqrt(2)), rel=1e-5)
    assert run(without, tiny) == pytest.approx(np.ones((1, 4)), rel=1e-5)
    values = np.array([[0.5, -1.0, 2.0, 0.25]], "float32")
    half_eps = RMSNormalization(epsilon=1e-8, dtype="mixed_float16")
    half_none = RMSNormalization(epsilon=0.0, dtype="mixed_float16")
    out = run(half_eps, values)
    assert out.dtype == np.float16 and out.tobytes() == run(half_none, values).tobytes()


def test_ada_instance_normalization_applies_the_style() -> None:
    layer = AdaInstanceNormalization(epsilon=1e-3)
    content = np.array([1.0, 3.0]).reshape(1, 2, 1, 1)
    beta, gamma = np.full((1, 1, 1, 1), 0.5), np.full((1, 1, 1, 1), 2.0)
    assert run(layer, content, beta, gamma).ravel() == pytest.approx(
        [0.5 - 2 / 1.001, 0.5 + 2 / 1.001], rel=1e-6)
    assert layer.weights == []
    assert layer.compute_output_shape([(None, 4, 4, 8), (None, 1, 1, 8), (None, 1, 1, 8)]) == (
        None, 4, 4, 8)


def test_mixed_policy_computes_in_float16_with_float32_variables() -> None:
    keras.config.set_dtype_policy("mixed_float16")
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 64)).astype("float32")
    for layer in (InstanceNormalization(axis=-1), GroupNormalization(), RMSNormalization(),
                  PixelShuffler(), ReflectionPadding2D(), Swish(), ScalarOp("multiply", 2.0)):
        out = run(layer, x)
        assert out.dtype == np.float16, layer.name
        assert {w.dtype for w in layer.weights} <= {"float32"}, layer.name
    ada = AdaInstanceNormalization(dtype="float32")  # as Phaze-A builds it
    half = [keras.ops.cast(v, "float16") for v in (x, x[:, :1, :1], x[:, :1, :1])]
    assert keras.ops.convert_to_numpy(ada(half)).dtype == np.float32


def test_weights_are_saved_in_faceswaps_order(tmp_path: Path) -> None:
    """A .keras file stores weights under the snake-cased class name (as Faceswap's classes
    of the same names do), in creation order."""
    inputs = keras.Input((4, 4, 32))
    x = InstanceNormalization(axis=-1, name="inorm")(inputs)
    x = GroupNormalization(group=4, name="gnorm")(x)
    x = RMSNormalization(bias=True, name="rms")(x)
    path = tmp_path / "m.keras"
    keras.Model(inputs, x).save(path)
    with zipfile.ZipFile(path) as archive:
        (tmp_path / "w.h5").write_bytes(archive.read("model.weights.h5"))
    groups = ("instance_normalization", "group_normalization", "rms_normalization")
    with h5py.File(tmp_path / "w.h5") as h5:
        shapes = {name: [h5[f"layers/{name}/vars/{i}"].shape for i in range(2)]
                  for name in groups}
    assert shapes == {"instance_normalization": [(32,), (32,)],
                      "group_normalization": [(1, 1, 1, 32), (1, 1, 1, 32)],
                      "rms_normalization": [(32,), (32,)]}
    reloaded = keras.saving.load_model(path, custom_objects=compat.custom_objects())
    assert [w.name for w in reloaded.get_layer("gnorm").weights] == ["gamma", "beta"]


def test_icnr_repeats_one_sub_kernel_per_block() -> None:
    icnr = ICNR(keras.initializers.GlorotUniform(seed=1), scale=2)
    kernel = keras.ops.convert_to_numpy(icnr((3, 3, 4, 8)))
    assert kernel.shape == (3, 3, 4, 8)
    for block in range(1, 4):
        assert np.array_equal(kernel[..., 2 * block:2 * block + 2], kernel[..., :2])
    assert not np.array_equal(kernel[..., 0], kernel[..., 1])
    config = icnr.get_config()
    assert config["scale"] == 2 and config["initializer"]["class_name"] == "GlorotUniform"
    saved = {"scale": 2, "initializer": {"module": "lib.model.initializers",
                                         "class_name": "ConvolutionAware",
                                         "config": {"eps_std": 0.05, "seed": None,
                                                    "initialized": True},
                                         "registered_name": "ConvolutionAware"}}
    from_file = ICNR.from_config(saved)
    assert from_file.get_config() == saved
    assert keras.ops.convert_to_numpy(from_file((3, 3, 4, 16))).shape == (3, 3, 4, 16)


def test_convolution_aware_has_he_variance_and_is_seeded() -> None:
    init = ConvolutionAware(seed=7)
    kernel = keras.ops.convert_to_numpy(init((3, 3, 4, 8)))
    assert kernel.shape == (3, 3, 4, 8) and kernel.dtype == np.float32
    assert np.var(kernel.astype(np.float64)) == pytest.approx(2 / 36, rel=1e-5)  # fan_in 3*3*4
    assert init.get_config() == {"eps_std": 0.05, "seed": 7, "initialized": True}
    again = keras.ops.convert_to_numpy(ConvolutionAware(seed=7)((3, 3, 4, 8)))
    assert np.array_equal(kernel, again)
    reloaded = keras.ops.convert_to_numpy(ConvolutionAware(initialized=True)((3, 3, 4, 8)))
    assert np.abs(reloaded).max() <= math.sqrt(6 / 36)  # He-uniform bound: a cheap draw
    dense = keras.ops.convert_to_numpy(ConvolutionAware()((6, 6)))
    assert dense.T @ dense == pytest.approx(np.eye(6), abs=1e-5)  # orthogonal fallback

"""Tiny Faceswap-style models built with Keras itself (as Faceswap builds them) and saved as
real model folders: ``<plugin>.keras`` plus a state file holding the eligible layers."""
from __future__ import annotations

import json
from pathlib import Path

PLUGIN = "tinyae"


def build_model_folder(folder: Path, overflow: bool = False, rms_norm: bool = False,
                       size: int = 16) -> Path:
    """Save a shared-encoder / two-decoder autoencoder.

    ``overflow`` plants a ``boost`` layer (x 1e6, past float16's 65504) followed by ``shrink``
    (x 1e-6): harmless in float32, infinite in float16. ``rms_norm`` adds Faceswap's
    RMSNormalization with its default epsilon (1e-8), which is 0 in float16.
    """
    from fsprec.core.keras.backend import ensure_backend
    ensure_backend()
    import keras

    from fsprec.core.keras.compat import PixelShuffler, RMSNormalization
    from fsprec.core.keras.settings import Settings

    def build(inputs):
        keras.utils.set_random_seed(7)
        enc_in = keras.Input((size, size, 3))
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv_8_0_conv2d")(enc_in)
        x = keras.layers.LeakyReLU(0.1, name="conv_8_0_leakyrelu")(x)
        if overflow:
            x = keras.layers.Rescaling(1e6, name="boost")(x)
            x = keras.layers.Rescaling(1e-6, name="shrink")(x)
        if rms_norm:
            x = RMSNormalization(name="rms_norm")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(16, name="dense")(x)
        half = size // 2
        x = keras.layers.Dense(half * half * 8, name="dense_1")(x)
        x = keras.layers.Reshape((half, half, 8), name="reshape")(x)
        encoder = keras.Model(enc_in, x, name="encoder")
        outputs = []
        for side in "ab":
            dec_in = keras.Input((half, half, 8))
            y = keras.layers.Conv2D(12, 3, padding="same", name=f"upscale_{side}_conv2d")(dec_in)
            y = PixelShuffler(name=f"upscale_{side}_pixelshuffler")(y)
            y = keras.layers.Conv2D(3, 3, padding="same", name=f"face_out_{side}_0_conv2d")(y)
            y = keras.layers.Activation("sigmoid", dtype="float32", name=f"face_out_{side}_0")(y)
            decoder = keras.Model(dec_in, y, name=f"decoder_{side}")
            outputs.append(decoder(encoder(inputs[len(outputs)])))
        return keras.Model(inputs, outputs, name=PLUGIN)

    settings = Settings(mixed_precision=False)
    inputs = [keras.Input((size, size, 3), name=f"face_in_{side}") for side in "ab"]
    model, names = settings.get_mixed_precision_layers(build, inputs)
    return _save_with_state(folder, model, names)


def _save_with_state(folder: Path, model, names: list[str]) -> Path:
    """Save ``model`` as a float32 Faceswap 3 folder whose state lists ``names`` as eligible."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / f"{PLUGIN}.keras")
    state = {"name": PLUGIN, "sessions": {}, "lowest_avg_loss": 0.0, "iterations": 0,
             "mixed_precision_layers": names, "lr_finder": -1.0,
             "config": {"mixed_precision": False}}
    (folder / f"{PLUGIN}_state.json").write_text(json.dumps(state, indent=2))
    keras.backend.clear_session()
    return folder


def build_layer_folder(folder: Path, make_layer, size: int = 256, channels: int = 3) -> Path:
    """Save a one-input model ``face -> make_layer() (named "norm") -> 1x1 Conv2D -> sigmoid``
    at ``size`` x ``size`` x ``channels``, with Faceswap's eligible layers in its state file:
    the smallest model whose verdict turns on one layer."""
    from fsprec.core.keras.backend import ensure_backend
    ensure_backend()
    import keras

    from fsprec.core.keras.settings import Settings

    def build(inputs):
        keras.utils.set_random_seed(7)
        x = make_layer()(inputs[0])
        x = keras.layers.Conv2D(3, 1, name="face_out_conv2d")(x)
        x = keras.layers.Activation("sigmoid", dtype="float32", name="face_out")(x)
        return keras.Model(inputs, x, name=PLUGIN)

    inputs = [keras.Input((size, size, channels), name="face_in")]
    model, names = Settings(mixed_precision=False).get_mixed_precision_layers(build, inputs)
    return _save_with_state(folder, model, names)

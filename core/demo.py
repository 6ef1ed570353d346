"""A small Faceswap-style demo model, written without Keras.

The demo is an "Original"-shaped Faceswap 3 model at toy size: a shared encoder and two
decoders with PixelShuffler upscales, saved as ``original.keras`` (Keras 3.14 serialization:
``metadata.json``, ``config.json`` and ``model.weights.h5`` in a ZIP_STORED zip) beside an
``original_state.json`` holding the ``mixed_precision_layers`` list Faceswap stores for a model
built in float32. Weights are random but finite and deterministic. Building it takes a fraction
of a second, so a first-time user sees a model at once.
"""
from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from . import faceswap
from .atomic import write_atomic
from .weights import WEIGHTS_MEMBER, snake_case

PLUGIN = "original"
FOLDER_NAME = "fsprec-demo"
KERAS_VERSION = "3.14.1"
_SHARED_POLICY_ID = 140245108813904  # Keras saves id() of the one policy the layers share
_SIZE = 64

# Faceswap's defaults for the Original plugin, as its State stores them.
_STATE_CONFIG: dict[str, Any] = {
    "centering": "face", "coverage": 100.0, "vertical_offset": 0, "icnr_init": False,
    "conv_aware_init": False, "lr_finder_iterations": 1000, "lr_finder_mode": "set",
    "lr_finder_strength": "default", "reflect_padding": False, "mixed_precision": False,
    "nan_protection": True, "convert_batchsize": 16, "loss_function": "ssim",
    "loss_function_2": "mse", "loss_weight_2": 100, "loss_function_3": "none",
    "loss_weight_3": 0, "loss_function_4": "none", "loss_weight_4": 0,
    "mask_loss_function": "mse", "eye_multiplier": 3, "mouth_multiplier": 2,
    "penalized_mask_loss": True, "mask_type": "extended", "mask_dilation": 0.0,
    "mask_blur_kernel": 3, "mask_threshold": 4, "learn_mask": False, "optimizer": "adam",
    "learning_rate": 5e-05, "epsilon_exponent": -7, "save_optimizer": "exit",
    "gradient_clipping": "none", "clipping_value": 1.0, "autoclip_history": 10000,
    "weight_decay": 0.0, "gradient_accumulation": 1, "ada_beta_1": 0.9, "ada_beta_2": 0.999,
    "ada_amsgrad": False, "lowmem": False,
}


def _policy(shared: bool) -> dict[str, Any]:
    policy: dict[str, Any] = {"module": "keras", "class_name": "DTypePolicy",
                              "config": {"name": "float32"}, "registered_name": None}
    if shared:
        policy["shared_object_id"] = _SHARED_POLICY_ID
    return policy


def _initializer(name: str) -> dict[str, Any]:
    config: dict[str, Any] = {} if name == "Zeros" else {"seed": None}
    return {"module": "keras.initializers", "class_name": name, "config": config,
            "registered_name": None}


def _tensor(shape: list[int | None], history: tuple[str, int, int]) -> dict[str, Any]:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": "float32", "keras_history": list(history)}}


@dataclass
class _Scope:
    """One functional model being assembled: its layer entries and their weights."""

    name: str
    input_shape: list[int | None]
    layers: list[dict[str, Any]] = field(default_factory=list)
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    shape: list[int | None] = field(default_factory=list)
    last: str = ""
    input_name: str = ""

    def input(self, name: str) -> None:
        """Add the InputLayer (its dtype is the plain string Keras saves)."""
        self.layers.append({
            "module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": self.input_shape, "dtype": "float32", "sparse": False,
                       "ragged": False, "name": name, "optional": False},
            "registered_name": None, "name": name, "inbound_nodes": []})
        self.shape, self.last, self.input_name = list(self.input_shape), name, name

    def add(self, class_name: str, name: str, options: dict[str, Any], out_shape: list,
            weights: Sequence[np.ndarray] = (), build: bool = True, module: str = "keras.layers",
            registered: str | None = None, shared: bool = True) -> None:
        """Append a layer fed by the previous one."""
        entry: dict[str, Any] = {
            "module": module, "class_name": class_name,
            "config": {"name": name, "trainable": True, "dtype": _policy(shared), **options},
            "registered_name": registered}
        if build:
            entry["build_config"] = {"input_shape": self.shape}
        entry["name"] = name
        entry["inbound_nodes"] = [{"args": [_tensor(self.shape, (self.last, 0, 0))],
                                   "kwargs": {}}]
        self.layers.append(entry)
        self.weights[name] = list(weights)
        self.shape, self.last = out_shape, name

    def conv(self, name: str, filters: int, kernel: int, strides: int,
             rng: np.random.Generator, shared: bool = True) -> None:
        """A Conv2D ("same" padding, He-uniform kernel as Faceswap builds it)."""
        fan_in = kernel * kernel * int(self.shape[-1])
        limit = np.sqrt(6.0 / fan_in)
        kernel_value = rng.uniform(-limit, limit, (kernel, kernel, self.shape[-1], filters))
        height = int(self.shape[1]) // strides
        self.add("Conv2D", name, {
            "filters": filters, "kernel_size": [kernel, kernel], "strides": [strides, strides],
            "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1],
            "groups": 1, "activation": "linear", "use_bias": True,
            "kernel_initializer": _initializer("HeUniform"),
            "bias_initializer": _initializer("Zeros"), "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None},
            [None, height, height, filters],
            [kernel_value.astype(np.float32), np.zeros(filters, np.float32)], shared=shared)

    def leaky(self, name: str) -> None:
        """A LeakyReLU(0.1), Faceswap's activation after each convolution."""
        self.add("LeakyReLU", name, {"negative_slope": 0.1}, list(self.shape), build=False)

    def dense(self, name: str, units: int, rng: np.random.Generator) -> None:
        """A Dense layer with a Glorot-uniform kernel."""
        fan_in = int(self.shape[-1])
        limit = np.sqrt(6.0 / (fan_in + units))
        kernel = rng.uniform(-limit, limit, (fan_in, units)).astype(np.float32)
        self.add("Dense", name, {
            "units": units, "activation": "linear", "use_bias": True,
            "kernel_initializer": _initializer("GlorotUniform"),
            "bias_initializer": _initializer("Zeros"), "kernel_regularizer": None,
            "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
            "quantization_config": None}, [None, units], [kernel, np.zeros(units, np.float32)])

    def upscale(self, prefix: str, filters: int, rng: np.random.Generator) -> None:
        """Faceswap's UpscaleBlock: Conv2D to 4x filters, LeakyReLU, PixelShuffler."""
        self.conv(f"{prefix}_conv2d_conv2d", filters * 4, 3, 1, rng)
        self.leaky(f"{prefix}_conv2d_leakyrelu")
        height = int(self.shape[1]) * 2
        self.add("PixelShuffler", f"{prefix}_pixelshuffler",
                 {"size": [2, 2], "data_format": "channels_last"},
                 [None, height, height, filters], module="lib.model.layers",
                 registered="PixelShuffler")

    def entry(self, inbound: list[tuple[str, int, int]], input_shape: list,
              nested_outputs: bool) -> dict[str, Any]:
        """This scope as a nested Functional entry, called once per ``inbound`` tensor."""
        output = [self.last, 0, 0]
        return {
            "module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": self.name, "trainable": True, "layers": self.layers,
                       "input_layers": [self.input_name, 0, 0],
                       "output_layers": [output] if nested_outputs else output},
            "registered_name": "Functional", "build_config": {"input_shape": None},
            "compile_config": {}, "name": self.name,
            "inbound_nodes": [{"args": [_tensor(input_shape, history)],
                               "kwargs": {"mask": None}} for history in inbound]}


def _encoder(rng: np.random.Generator) -> _Scope:
    scope = _Scope("encoder", [None, _SIZE, _SIZE, 3])
    scope.input("input_layer")
    for index, filters in enumerate((16, 32, 64, 128)):
        scope.conv(f"conv_{filters}_0_conv2d", filters, 5, 2, rng, shared=index > 0)
        scope.leaky(f"conv_{filters}_0_leakyrelu")
    scope.add("Flatten", "flatten", {"data_format": "channels_last"},
              [None, int(np.prod(scope.shape[1:]))])
    scope.dense("dense", 64, rng)
    scope.dense("dense_1", 4 * 4 * 128, rng)
    scope.add("Reshape", "reshape", {"target_shape": [4, 4, 128]}, [None, 4, 4, 128],
              build=False)
    scope.upscale("upscale_64_0", 64, rng)
    return scope


def _decoder(side: str, index: int, counters: dict[int, int], input_shape: list,
             rng: np.random.Generator) -> _Scope:
    scope = _Scope(f"decoder_{side}", input_shape)
    scope.input(f"input_layer_{index}")
    for filters in (64, 32, 16):
        scope.upscale(f"upscale_{filters}_{counters[filters]}", filters, rng)
        counters[filters] += 1
    scope.conv(f"face_out_{side}_0_conv2d", 3, 5, 1, rng)
    scope.add("Activation", f"face_out_{side}_0", {"activation": "sigmoid"}, list(scope.shape),
              build=False, shared=False)
    return scope


def _write_vars(group: h5py.Group, entries: list[dict], weights: dict[str, list[np.ndarray]],
                scopes: dict[str, _Scope]) -> None:
    """Keras's weights layout: ``layers/<snake_class>[_n]/vars/<i>`` with a ``name`` attr."""
    seen: dict[str, int] = {}
    for entry in entries:
        base = snake_case(entry["class_name"])
        key = base if base not in seen else f"{base}_{seen[base]}"
        seen[base] = seen.get(base, 0) + 1
        layer_group = group.create_group(f"layers/{key}")
        if entry["name"] in scopes:
            scope = scopes[entry["name"]]
            _write_vars(layer_group, scope.layers, scope.weights, {})
        variables = layer_group.create_group("vars")
        variables.attrs["name"] = entry["name"]
        for index, value in enumerate(weights.get(entry["name"], [])):
            variables[str(index)] = value


def _build(seed: int) -> tuple[dict[str, Any], bytes, list[str]]:
    """The model config, the weights file and the eligible layer names."""
    rng = np.random.default_rng(seed)
    encoder = _encoder(rng)
    counters = {64: 1, 32: 0, 16: 0}
    decoders = [_decoder(side, index, counters, list(encoder.shape), rng)
                for index, side in ((1, "a"), (2, "b"))]
    top = _Scope(PLUGIN, [None, _SIZE, _SIZE, 3])
    inputs = []
    for side in ("a", "b"):
        top.input(f"face_in_{side}")
        inputs.append(top.layers[-1])
    top.layers = inputs + [
        encoder.entry([("face_in_a", 0, 0), ("face_in_b", 0, 0)], top.input_shape, False),
        *(decoder.entry([("encoder", index, 0)], list(encoder.shape), True)
          for index, decoder in enumerate(decoders))]
    config = {
        "module": "keras.src.models.functional", "class_name": "Functional",
        "config": {"name": PLUGIN, "trainable": True, "layers": top.layers,
                   "input_layers": [["face_in_a", 0, 0], ["face_in_b", 0, 0]],
                   "output_layers": [["decoder_a", 1, 0], ["decoder_b", 1, 0]]},
        "registered_name": "Functional", "build_config": {"input_shape": None},
        "compile_config": {}}
    scopes = {scope.name: scope for scope in (encoder, *decoders)}
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        _write_vars(h5, top.layers, {}, scopes)
        h5.create_group("vars").attrs["name"] = PLUGIN
    eligible = [entry["name"] for scope in (encoder, *decoders) for entry in scope.layers
                if entry["class_name"] not in ("InputLayer", "Activation")]
    return config, buffer.getvalue(), eligible


def _keras_file(config: dict[str, Any], weights: bytes) -> bytes:
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo("metadata.json"), json.dumps(metadata))
        archive.writestr(zipfile.ZipInfo("config.json"), json.dumps(config))
        archive.writestr(zipfile.ZipInfo(WEIGHTS_MEMBER, time.localtime()[:6]), weights)
    return buffer.getvalue()


def _state(eligible: list[str]) -> bytes:
    state = {"name": PLUGIN, "sessions": {}, "lowest_avg_loss": 0.0, "iterations": 0,
             "mixed_precision_layers": eligible, "lr_finder": -1.0,
             "config": dict(_STATE_CONFIG)}
    return faceswap.state_bytes(state)


def write_demo(folder: str | Path, seed: int = 0) -> Path:
    """Write the demo model into ``folder`` (created if needed) and return the folder.

    The state file is written first and the model file last, each atomically, so an
    interrupted write never leaves a folder that looks complete.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config, weights, eligible = _build(seed)
    write_atomic(faceswap.state_file(folder, PLUGIN), _state(eligible))
    write_atomic(folder / f"{PLUGIN}.keras", _keras_file(config, weights))
    return folder


def ensure_demo(data_dir: str | Path) -> Path:
    """The demo model folder under ``data_dir``, written on first use."""
    folder = Path(data_dir) / FOLDER_NAME
    if not (folder / f"{PLUGIN}.keras").is_file():
        write_demo(folder)
    return folder

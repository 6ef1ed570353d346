"""Tiny Faceswap-style model folders made by the tests themselves (no Keras needed).

They exercise what the shared fixtures do not: ops without a dtype, a SpatialDropout2D with a
plain-string dtype, a sub-model nested two deep, a shared encoder called twice, an unknown
zip member, and Keras 2 attributes split into numbered chunks.
"""
from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import h5py
import numpy as np

PLUGIN = "tiny"
# (name, class, weight shapes) of each sub-model's layers after its InputLayer.
ENCODER = [("conv_8_0_conv2d", "Conv2D", [(3, 3, 3, 8), (8,)]),
           ("conv_8_0_leakyrelu", "LeakyReLU", []),
           ("spatial_dropout2d", "SpatialDropout2D", []),
           ("stem", "Functional", None),
           ("add", "Add", None),  # an op: module keras.src.ops.numpy, no dtype
           ("flatten", "Flatten", []),
           ("dense", "Dense", [(128, 16), (16,)])]
STEM = [("stem_conv2d", "Conv2D", [(1, 1, 8, 8), (8,)])]
DECODER = [("dense_up", "Dense", [(16, 128), (128,)]),
           ("reshape", "Reshape", []),
           ("face_out_{s}_0_conv2d", "Conv2D", [(3, 3, 8, 3), (3,)]),
           ("face_out_{s}_0", "Activation", [])]
ELIGIBLE = ["conv_8_0_conv2d", "conv_8_0_leakyrelu", "stem_conv2d", "flatten", "dense",
            "dense_up", "reshape", "face_out_a_0_conv2d",
            "dense_up", "reshape", "face_out_b_0_conv2d"]


def _policy(name: str, mixed: bool, keras_major: int) -> object:
    policy = "mixed_float16" if mixed else "float32"
    if keras_major == 2:
        return {"class_name": "Policy", "config": {"name": policy}} if mixed else policy
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": policy},
            "registered_name": None}


class _Builder:
    """Writes a config in the Keras 3 or Keras 2 form, tracking each tensor's dtype."""

    def __init__(self, mixed: bool, keras_major: int) -> None:
        self.mixed, self.major = mixed, keras_major

    def tensor(self, producer: str, dtype: str, node: int = 0, index: int = 0) -> object:
        if self.major == 2:
            return [producer, node, index, {}]
        return {"class_name": "__keras_tensor__",
                "config": {"shape": [None, 8], "dtype": dtype,
                           "keras_history": [producer, node, index]}}

    def node(self, *tensors: object) -> object:
        if self.major == 2:
            return list(tensors)
        return {"args": [list(tensors) if len(tensors) > 1 else tensors[0]], "kwargs": {}}

    def input_layer(self, name: str) -> dict:
        config = {"batch_shape": [None, 8, 8, 3], "dtype": "float32", "name": name}
        return self.entry("InputLayer", name, config, [])

    def entry(self, class_name: str, name: str, config: dict, nodes: list) -> dict:
        entry: dict = {"class_name": class_name, "config": config}
        if self.major >= 3:
            entry["module"] = "keras.layers"
            entry["registered_name"] = None
            entry["name"] = name
        else:
            entry["name"] = name
        entry["inbound_nodes"] = nodes
        return entry

    def layer(self, class_name: str, name: str, eligible: bool, nodes: list) -> dict:
        if class_name == "SpatialDropout2D":
            dtype: object = "float32"  # Keras writes a plain string; it stays float32
        elif class_name == "Activation":
            dtype = _policy(name, False, self.major)
        else:
            dtype = _policy(name, self.mixed and eligible, self.major)
        config = {"name": name, "trainable": True, "dtype": dtype}
        return self.entry(class_name, name, config, nodes)

    def out_dtype(self, class_name: str) -> str:
        if class_name in ("SpatialDropout2D", "Activation", "InputLayer"):
            return "float32"
        return "float16" if self.mixed else "float32"

    def chain(self, specs: list, input_name: str, sub: dict[str, dict],
              side: str = "") -> tuple[list[dict], str, str]:
        layers, prev, prev_dtype = [], input_name, "float32"
        for name, class_name, _ in specs:
            name = name.format(s=side)
            if class_name == "Functional":
                entry = sub[name]
                nodes = [self.node(self.tensor(prev, prev_dtype))]
                entry["inbound_nodes"] = nodes
                layers.append(entry)
                prev_dtype = "float16" if self.mixed else "float32"
            elif class_name == "Add":
                entry = {"module": "keras.src.ops.numpy", "class_name": "Add",
                         "config": {"name": name}, "registered_name": None, "name": name,
                         "inbound_nodes": [self.node(self.tensor(prev, prev_dtype),
                                                     self.tensor("conv_8_0_leakyrelu",
                                                                 self.out_dtype("LeakyReLU")))]}
                if self.major == 2:
                    continue
                layers.append(entry)
                prev_dtype = "float16" if self.mixed else "float32"
            else:
                eligible = name in ELIGIBLE
                layers.append(self.layer(class_name, name, eligible,
                                         [self.node(self.tensor(prev, prev_dtype))]))
                prev_dtype = self.out_dtype(class_name)
            prev = name
        return layers, prev, prev_dtype

    def model(self, name: str, layers: list[dict], output: str) -> dict:
        config = {"name": name, "trainable": True, "layers": layers,
                  "input_layers": [[layers[0]["name"], 0, 0]], "output_layers": [[output, 0, 0]]}
        return {"module": "keras.src.models.functional", "class_name": "Functional",
                "config": config, "registered_name": "Functional" if self.major >= 3 else None,
                "name": name, "inbound_nodes": []}


def tiny_config(mixed: bool = False, keras_major: int = 3) -> dict:
    """The config of a tiny Faceswap-style autoencoder (shared encoder, two decoders)."""
    b = _Builder(mixed, keras_major)
    stem_layers, stem_out, _ = b.chain(STEM, "stem_input", {})
    stem = b.model("stem", [b.input_layer("stem_input"), *stem_layers], stem_out)
    enc_layers, enc_out, enc_dtype = b.chain(ENCODER, "input_layer", {"stem": stem})
    encoder = b.model("encoder", [b.input_layer("input_layer"), *enc_layers], enc_out)
    decoders = []
    for index, side in enumerate("ab"):
        layers, out, _ = b.chain(DECODER, f"input_layer_{index + 1}", {}, side)
        decoders.append(b.model(f"decoder_{side}",
                                [b.input_layer(f"input_layer_{index + 1}"), *layers], out))
    encoder["inbound_nodes"] = [b.node(b.tensor("face_in_a", "float32")),
                                b.node(b.tensor("face_in_b", "float32"))]
    for index, decoder in enumerate(decoders):
        decoder["inbound_nodes"] = [b.node(b.tensor("encoder", enc_dtype, node=index))]
    top = b.model(PLUGIN, [b.input_layer("face_in_a"), b.input_layer("face_in_b"), encoder,
                           *decoders], "decoder_a")
    top["config"]["output_layers"] = [["decoder_a", 0, 0], ["decoder_b", 0, 0]]
    top.pop("inbound_nodes")
    top.pop("name")
    return top


def _weight_specs() -> list[tuple[str, str, list]]:
    """(sub-model path, layer name, shapes) of every layer with weights."""
    specs = [("encoder", n, s) for n, c, s in ENCODER if s] + [("encoder/stem", n, s)
                                                               for n, c, s in STEM]
    for side in "ab":
        specs += [(f"decoder_{side}", n.format(s=side), s) for n, c, s in DECODER if s]
    return specs


def _values(shape: tuple, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _keras3_weights() -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        groups = {"": h5.create_group("layers")}
        keys = {"encoder": "functional", "encoder/stem": "functional/layers/functional",
                "decoder_a": "functional_1", "decoder_b": "functional_2"}
        for path, key in keys.items():
            group = h5.require_group(f"layers/{key}")
            group.create_group("vars").attrs["name"] = path.rsplit("/", 1)[-1]
            groups[path] = group
        counters: dict[tuple[str, str], int] = {}
        for seed, (path, name, shapes) in enumerate(_weight_specs()):
            base = "conv2d" if "conv" in name else "dense"
            count = counters.get((path, base), 0)
            counters[(path, base)] = count + 1
            key = base if count == 0 else f"{base}_{count}"
            vars_group = groups[path].require_group(f"layers/{key}/vars")
            vars_group.attrs["name"] = name
            for index, shape in enumerate(shapes):
                vars_group.create_dataset(str(index), data=_values(shape, seed * 10 + index))
        h5.create_group("vars")
    return buffer.getvalue()


def _state(mixed: bool) -> dict:
    return {"name": PLUGIN, "sessions": {}, "lowest_avg_loss": 0.0, "iterations": 7,
            "mixed_precision_layers": [] if mixed else list(ELIGIBLE), "lr_finder": -1.0,
            "config": {"centering": "face", "mixed_precision": mixed, "learning_rate": 5e-05}}


def make_keras3(folder: Path, mixed: bool = False, optimizer: bool = True) -> Path:
    """A ``.keras`` model folder; with ``optimizer`` a deflated ``optimizer.pt`` and an
    unknown member are added, as Faceswap's trainer leaves them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{PLUGIN}.keras"
    members = [("metadata.json", json.dumps({"keras_version": "3.14.1",
                                             "date_saved": "2026-11-24@19:22:09"}).encode()),
               ("config.json", json.dumps(tiny_config(mixed, 3)).encode()),
               ("model.weights.h5", _keras3_weights())]
    if optimizer:
        members += [("optimizer.pt", np.arange(50000, dtype="int64").tobytes()),
                    ("notes/unknown.bin", b"kept as it is")]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, (2026, 11, 24, 19, 22, 10))
            if name == "optimizer.pt":
                info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    (folder / f"{PLUGIN}_state.json").write_bytes(json.dumps(_state(mixed), indent=2).encode())
    return folder


def make_keras2(folder: Path, mixed: bool = False, chunks: int = 2) -> Path:
    """A Faceswap 2 ``.h5`` model folder whose ``layer_names`` / ``weight_names`` are split
    into ``chunks`` numbered attributes, as Keras 2 does for long lists."""
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / f"{PLUGIN}.h5", "w") as h5:
        h5.attrs["backend"] = "tensorflow"
        h5.attrs["keras_version"] = "2.10.0"
        h5.attrs["model_config"] = json.dumps(tiny_config(mixed, 2))
        weights = h5.create_group("model_weights")
        top = ["face_in_a", "face_in_b", "encoder", "decoder_a", "decoder_b"]
        _chunked(weights, "layer_names", top, chunks)
        for name in top:
            weights.create_group(name)
        names: dict[str, list[str]] = {}
        for seed, (path, layer, shapes) in enumerate(_weight_specs()):
            group_name = path.split("/")[0]
            for index, shape in enumerate(shapes):
                weight = f"{layer}/{'kernel' if index == 0 else 'bias'}:0"
                weights[group_name].create_dataset(weight, data=_values(shape, seed * 10 + index))
                names.setdefault(group_name, []).append(weight)
        for name in top:
            _chunked(weights[name], "weight_names", names.get(name, []), chunks)
    (folder / f"{PLUGIN}_state.json").write_bytes(json.dumps(_state(mixed), indent=2).encode())
    return folder


def _chunked(group: h5py.Group, name: str, values: list[str], chunks: int) -> None:
    encoded = [v.encode() for v in values]
    if chunks <= 1 or len(encoded) < chunks:
        group.attrs[name] = np.array(encoded, dtype="S")
        return
    size = -(-len(encoded) // chunks)
    for index in range(chunks):
        group.attrs[f"{name}{index}"] = np.array(encoded[index * size:(index + 1) * size],
                                                 dtype="S")


def flip_stored_byte(model: Path, member: str, mask: int = 0x01) -> None:
    """Flip bits of the middle byte of ``member``'s stored bytes in the zip ``model``, keeping
    the zip's CRC: bit rot that only the CRC check can find."""
    with zipfile.ZipFile(model) as archive:
        info = archive.getinfo(member)
    data = bytearray(model.read_bytes())
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.compress_size // 2] ^= mask
    model.write_bytes(bytes(data))

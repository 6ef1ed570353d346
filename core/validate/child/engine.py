"""The validation pass itself (runs in the child process; imports Keras)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ...config import entry_name, iter_leaves
from ...layers import MIXED_POLICIES
from ...modelfile import open_model
from ...precision import switch_precision
from . import autopin, measure
from .inputs import load_images, synthetic_faces
from .probe import FLOAT16_TINY, layer_stats
from ..options import Options
from ..report import verdict

Emit = Callable[[str, int, int], None]


class Builder:
    """Builds the model under any policy and pin set, from one set of float32 weights."""

    def __init__(self, folder: Path) -> None:
        import keras

        from ...keras import compat
        from ...keras.upgrade import upgrade_config
        from ...keras.loading import load_keras_model

        self.folder = open_model(folder)
        self.config = (upgrade_config(self.folder.config) if self.folder.format == "keras2"
                       else self.folder.config)
        self.base = load_keras_model(folder, policy="float32")
        self.weights = self.base.get_weights()
        self.objects = compat.custom_objects()
        self._keras = keras

    def build(self, policy: str, pins: list[str] | tuple[str, ...] = (),
              fresh: bool = False) -> Any:
        """The model with its eligible layers in ``policy`` and ``pins`` in float32 (a new
        model when ``fresh``, else the loaded float32 model is reused for float32)."""
        if policy == "float32" and not pins and not fresh:
            return self.base
        config = switch_precision(self.config, self.folder.eligible, policy, pins, 3)
        if self.folder.format == "keras3":
            model = self._keras.saving.deserialize_keras_object(config,
                                                                custom_objects=self.objects)
        else:
            model = self._keras.Model.from_config(config["config"], custom_objects=self.objects)
        model.set_weights(self.weights)
        return model


def make_inputs(model: Any, options: Options) -> list[np.ndarray]:
    """One batch per model input, at the model's input size."""
    batches = []
    for index, tensor in enumerate(model.inputs):
        _, height, width, channels = tensor.shape
        if options.images:
            batches.append(load_images(options.images, options.batch, height, width, channels))
        else:
            batches.append(synthetic_faces(options.batch, height, width, channels, seed=index))
    return batches


def config_risks(builder: Builder) -> dict[str, str]:
    """Eligible layers whose config holds an epsilon that flushes to zero in float16."""
    eligible = set(builder.folder.eligible)
    risks = {}
    for path, entry in iter_leaves(builder.config["config"]["layers"]):
        epsilon = entry.get("config", {}).get("epsilon")
        if entry_name(entry) in eligible and isinstance(epsilon, (int, float)) \
                and 0 < epsilon < FLOAT16_TINY:
            risks[path] = f"epsilon {epsilon:g} is 0 in float16"
    return risks


def run(folder: str | Path, options: Options, emit: Emit = lambda s, d, t: None
        ) -> dict[str, Any]:
    """Validate ``folder`` for ``options.policy``; returns the result document."""
    started = time.perf_counter()
    if options.policy not in MIXED_POLICIES:
        raise ValueError("validation compares float32 against a mixed policy")
    emit("Loading model", 0, 1)
    builder = Builder(Path(folder))
    inputs = make_inputs(builder.base, options)
    emit("Loading model", 1, 1)

    emit("Output parity", 0, 2)
    fp32_stats, fp32_outputs = layer_stats(builder.base, inputs)
    pins = builder.folder.pinned if options.pins is None else list(options.pins)
    target = builder.build(options.policy, pins)
    target_stats, target_outputs = layer_stats(target, inputs)
    outputs = measure.parity(fp32_outputs, target_outputs)
    emit("Output parity", 2, 2)

    risks = config_risks(builder)
    eligible = set(builder.folder.eligible)
    layers = []
    for path, stats in fp32_stats.items():
        row = stats.to_json()
        row["eligible"] = path.rsplit("/", 1)[-1] in eligible
        mixed = target_stats.get(path)
        row["nonfinite_target"] = mixed.nonfinite if mixed else 0
        row["introduces_nonfinite"] = bool(mixed and mixed.introduces_nonfinite)
        row["config_risk"] = risks.get(path)
        row["risk"] = _risk(row)
        layers.append(row)

    training = None
    if options.steps > 0:
        emit("Training check", 0, 2 * options.steps)
        fp32_run = measure.training_run(builder.build("float32", fresh=True), "float32",
                                        inputs, options.steps,
                                        lambda s: emit("Training check", s, 2 * options.steps))
        mixed_run = measure.training_run(
            builder.build(options.policy, pins), options.policy, inputs, options.steps,
            lambda s: emit("Training check", options.steps + s, 2 * options.steps))
        training = {"steps": options.steps, "float32": fp32_run, "target": mixed_run}

    speed = _speed(builder, options.policy, pins, inputs, emit) if options.speed else None
    if speed is not None and training is not None:
        speed["train_float32_ips"] = training["float32"]["images_per_s"]
        speed["train_target_ips"] = training["target"]["images_per_s"]

    tolerance = options.rel_l2_tolerance
    search = None
    if options.autopin and not measure.outputs_ok(outputs, tolerance):
        emit("Auto-pin", 0, 1)
        risky = [row["path"].rsplit("/", 1)[-1] for row in layers
                 if row["eligible"] and row["risk"] in ("overflow", "nonfinite")]

        def passes(candidate: list[str]) -> bool:
            emit("Auto-pin", 0, 1)
            model = builder.build(options.policy, candidate)
            return measure.outputs_ok(measure.parity(fp32_outputs,
                                                     measure.forward(model, inputs)), tolerance)

        found = autopin.search(list(dict.fromkeys(builder.folder.eligible)), passes,
                               [*pins, *risky])
        search = asdict(found)
        emit("Auto-pin", 1, 1)

    result = {
        "schema": "fsprec.validation/1",
        "model": {"folder": str(builder.folder.path), "plugin": builder.folder.plugin,
                  "format": builder.folder.format, "precision": builder.folder.precision},
        "policy": options.policy,
        "pins": pins,
        "device": measure.device_info(),
        "inputs": {"source": "images" if options.images else "synthetic",
                   "batch": options.batch, "shapes": [list(x.shape) for x in inputs]},
        "tolerance": {"rel_l2": tolerance},
        "outputs": outputs,
        "layers": layers,
        "training": training,
        "speed": speed,
        "autopin": search,
    }
    result["verdict"] = verdict(result)
    result["seconds"] = time.perf_counter() - started
    return result


def _risk(row: dict[str, Any]) -> str | None:
    """The layer's own risk (a layer only passing on non-finite values has none)."""
    if row["introduces_nonfinite"]:
        return "nonfinite"
    if row["overflow"]:
        return "overflow"
    if row["underflow"] or row["config_risk"]:
        return "underflow"
    return None


def _speed(builder: Builder, policy: str, pins: list[str], inputs: list[np.ndarray],
           emit: Emit) -> dict[str, Any]:
    emit("Speed", 0, 2)
    found: dict[str, Any] = {}
    batch = inputs[0].shape[0]
    for index, (label, model) in enumerate((("float32", builder.build("float32")),
                                            ("target", builder.build(policy, pins)))):
        measure.reset_peak_memory()
        found[f"forward_{label}_ips"] = measure.throughput(
            lambda m=model: measure.forward(m, inputs), batch)
        found[f"peak_memory_{label}_mb"] = measure.peak_memory_mb()
        emit("Speed", index + 1, 2)
    found["speedup"] = found["forward_target_ips"] / found["forward_float32_ips"]
    return found

"""The validation pass itself (runs in the child process; imports Keras)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ...config import entry_name, iter_leaves
from ...layers import MIXED_POLICIES
from ...modelfile import open_model
from ...precision import switch_precision
from . import autopin, measure, training
from .inputs import load_images, stress_inputs, synthetic_faces
from .layercheck import LayerCheck, check_layer
from .probe import LayerStats, layer_calls, layer_stats, walk_layers
from .reductions import layer_reduction, op_reduction
from ..options import Options, Preset
from ..result import (CPU_NO_TRAINING, CPU_NOT_TIMED, FLOAT16_TINY, STRESS_INPUTS, AutoPin,
                      ConfigRisk, Inputs, LayerRisk, ModelInfo, Speed, Training,
                      ValidationResult, decide, layer_risk)

Emit = Callable[[str, int, int, float | None], None]  # stage, done, total, seconds left
OnStage = Callable[[str, ValidationResult], None]


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
        self._last: tuple[tuple[str, tuple[str, ...]], Any] | None = None  # one model kept

    def build(self, policy: str, pins: list[str] | tuple[str, ...] = (),
              fresh: bool = False) -> Any:
        """The model with its eligible layers in ``policy`` and ``pins`` in float32: a new one
        when ``fresh`` (to train), else the loaded float32 model or the last one built, which
        are only ever run forward."""
        if policy == "float32" and not pins and not fresh:
            return self.base
        key = (policy, tuple(pins))
        if not fresh and self._last is not None and self._last[0] == key:
            return self._last[1]
        model = self._make(policy, pins)
        if not fresh:
            self._last = (key, model)
        return model

    def _make(self, policy: str, pins: list[str] | tuple[str, ...]) -> Any:
        config = switch_precision(self.config, self.folder.eligible, policy, pins, 3)
        if self.folder.format == "keras3":
            model = self._keras.saving.deserialize_keras_object(config,
                                                                custom_objects=self.objects)
        else:
            model = self._keras.Model.from_config(config["config"], custom_objects=self.objects)
        model.set_weights(self.weights)
        return model


def make_inputs(model: Any, options: Options, batch: int) -> list[np.ndarray]:
    """Per model input: ``batch`` faces, then one image per stress input."""
    batches = []
    for index, tensor in enumerate(model.inputs):
        _, height, width, channels = tensor.shape
        if options.images:
            faces = load_images(options.images, batch, height, width, channels)
        else:
            faces = synthetic_faces(batch, height, width, channels, seed=index)
        batches.append(np.concatenate([faces, stress_inputs(height, width, channels)]))
    return batches


def config_risks(builder: Builder, policy: str, stats: dict[str, LayerStats]
                 ) -> dict[str, str]:
    """What in the config float16 can break, in words, per layer path: an eligible layer's
    epsilon that is 0 in float16, an eligible layer's reduction whose float16 sums can pass
    65504 (sized by the float32 run's input shape and largest |value|), a reducing op node.
    None for mixed_bfloat16, which has float32's range."""
    if policy != "mixed_float16":
        return {}
    eligible = set(builder.folder.eligible)
    risks = {}
    for path, entry in iter_leaves(builder.config["config"]["layers"]):
        op = op_reduction(entry)
        if op:
            risks[path] = op
            continue
        if entry_name(entry) not in eligible:
            continue
        config = entry.get("config", {})
        found = []
        epsilon = config.get("epsilon")
        if isinstance(epsilon, (int, float)) and 0 < epsilon < FLOAT16_TINY:
            found.append(f"epsilon {epsilon:g} is 0 in float16")
        measured = stats.get(path)
        if measured and measured.input_shape:
            builtin = str(entry.get("module") or "").startswith("keras")
            reduction = layer_reduction(entry.get("class_name", ""), config,
                                        measured.input_shape, builtin)
            if reduction and reduction.overflows(measured.max_abs_input):
                found.append(reduction.reason(measured.max_abs_input))
        if found:
            risks[path] = "; ".join(found)
    return risks


def check_config_risks(builder: Builder, options: Options, pins: list[str],
                       inputs: list[np.ndarray], batch: int, risks: dict[str, str]
                       ) -> dict[str, LayerCheck]:
    """Each risky layer that is float16 in the target, run alone on float32's inputs and held
    to the outputs' error-to-variation threshold."""
    layers = dict(walk_layers(builder.base))  # op nodes are not layers: nothing to run alone
    paths = [p for p in risks if p in layers and p.rsplit("/", 1)[-1] not in pins]
    if not paths:
        return {}
    calls = layer_calls(builder.base, inputs, paths)
    target = dict(walk_layers(builder.build(options.policy, pins)))
    rows = ["faces"] * batch + list(STRESS_INPUTS)
    tolerance = options.thresholds.error_to_variation
    return {path: check_layer(target[path], calls[path], rows, tolerance) for path in paths
            if calls[path] and path in target}


class Clock:
    """Seconds left: an estimate per remaining stage, replaced by what was measured."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.plan: dict[str, float] = {}

    def left(self, stage: str, done: int, total: int) -> float | None:
        if not self.plan:
            return None
        share = 1 - done / total if total else 1.0
        stages = list(self.plan)
        rest = stages[stages.index(stage) + 1:] if stage in self.plan else stages
        return self.plan.get(stage, 0.0) * share + sum(self.plan[s] for s in rest)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.emit(stage, done, total, self.left(stage, done, total))


def run(folder: str | Path, options: Options, emit: Emit = lambda s, d, t, e: None,
        on_stage: OnStage = lambda stage, partial: None) -> ValidationResult:
    """Validate ``folder`` for ``options.policy``; the partial result reaches ``on_stage``
    after each stage, the whole result is returned."""
    started = time.perf_counter()
    if options.policy not in MIXED_POLICIES:
        raise ValueError("validation compares float32 against a mixed policy")
    clock = Clock(emit)
    clock.progress("Loading model", 0, 1)
    builder = Builder(Path(folder))
    runtime = measure.runtime()
    preset = options.preset(runtime.kind)
    inputs = make_inputs(builder.base, options, preset.batch)
    faces = [x[:preset.batch] for x in inputs]
    clock.progress("Loading model", 1, 1)
    pins = builder.folder.pinned if options.pins is None else list(options.pins)
    result = ValidationResult(
        model=ModelInfo(str(builder.folder.path), builder.folder.plugin, builder.folder.format,
                        builder.folder.precision),
        policy=options.policy, pins=pins, runtime=runtime,
        inputs=Inputs("images" if options.images else "synthetic", preset.batch,
                      [list(x.shape) for x in faces]),
        thresholds=options.thresholds)

    clock.progress("Output parity", 0, 2)
    begun = time.perf_counter()
    fp32_stats, fp32_outputs = layer_stats(builder.base, inputs)
    eager = time.perf_counter() - begun
    emulated = 3.0 if runtime.kind == "cpu" else 1.0  # float16 is emulated on a CPU
    clock.plan = {"Output parity": eager * emulated,
                  "Training check": 8 * eager * (1 + emulated) * preset.steps / preset.batch,
                  "Speed": 2 * (preset.speed_seconds + (1 + preset.speed_calls) * eager * emulated
                                / 2) if options.speed else 0.0}
    clock.progress("Output parity", 1, 2)
    target_stats, target_outputs = layer_stats(builder.build(options.policy, pins), inputs)
    clock.progress("Output parity", 2, 2)
    result.outputs, result.stress = _parity(fp32_outputs, target_outputs, preset.batch)
    on_stage("parity", result)

    risks = config_risks(builder, options.policy, fp32_stats)
    checks = check_config_risks(builder, options, pins, inputs, preset.batch, risks)
    result.layers = _layers(builder, fp32_stats, target_stats, risks)
    result.config_risks = [
        ConfigRisk(path, reason, "", checks[path].measured, checks[path].fails)
        if path in checks else ConfigRisk(path, reason, "") for path, reason in risks.items()]
    _settle_config_risks(result, pins)
    on_stage("risk map", result)

    if preset.steps > 0:
        result.training = _training(builder, options.policy, pins, faces, preset, runtime.kind,
                                    clock)
        if not result.training.timed:
            result.notes.append(CPU_NOT_TIMED)
        on_stage("training", result)
    elif runtime.kind == "cpu" and options.steps is None:
        result.notes.append(CPU_NO_TRAINING)
    if options.speed:
        result.speed = _speed(builder, options.policy, pins, faces, preset, clock)
        if result.training is not None and result.training.timed:
            result.speed.train_float32_ips = result.training.float32.images_per_s
            result.speed.train_target_ips = result.training.target.images_per_s
        on_stage("speed", result)

    if options.autopin and result.problems():
        result.autopin = _autopin(builder, result, inputs, fp32_outputs, clock)
        _settle_config_risks(result, result.autopin.pins if result.autopin.passed else pins)
        on_stage("auto-pin", result)
    result.verdict = decide(result)
    result.seconds = time.perf_counter() - started
    return result


def _parity(fp32: list[np.ndarray], target: list[np.ndarray], batch: int):
    """Face rows' parity and the stress rows' non-finite counts."""
    outputs = measure.parity([o[:batch] for o in fp32], [o[:batch] for o in target])
    stress = measure.stress(STRESS_INPUTS, [o[batch:] for o in fp32],
                            [o[batch:] for o in target])
    return outputs, stress


def _layers(builder: Builder, fp32: dict[str, LayerStats], target: dict[str, LayerStats],
            risks: dict[str, str]) -> list[LayerRisk]:
    eligible = set(builder.folder.eligible)
    rows = []
    for path, stats in fp32.items():
        mixed = target.get(path)
        introduces = bool(mixed and mixed.introduces_nonfinite)
        rows.append(LayerRisk(
            path=path, class_name=stats.class_name, eligible=path.rsplit("/", 1)[-1] in eligible,
            values=stats.values, max_abs=stats.max_abs,
            min_abs_nonzero=None if stats.min_abs_nonzero == float("inf")
            else stats.min_abs_nonzero,
            nonzero=stats.nonzero, above_fp16_max=stats.above_fp16_max,
            below_fp16_normal=stats.below_fp16_normal, below_fp16_tiny=stats.below_fp16_tiny,
            nonfinite_target=mixed.nonfinite if mixed else 0, introduces_nonfinite=introduces,
            config_risk=risks.get(path),
            risk=layer_risk(stats.overflow, introduces, stats.underflow_share)))
    return rows


def _settle_config_risks(result: ValidationResult, pins: list[str]) -> None:
    """Each config risk is pinned, harmful (its layer alone went wrong in float16, or made
    Inf/NaN in the mixed run) or measured harmless; an op node's is unmeasured."""
    layers = {layer.path: layer for layer in result.layers or []}
    for risk in result.config_risks or []:
        layer = layers.get(risk.path)
        if layer is None:
            risk.outcome = "unmeasured"
        elif risk.name in pins:
            risk.outcome = "pinned"
        else:
            risk.outcome = "harmful" if risk.fails or layer.risk == "nonfinite" else "harmless"


def _training(builder: Builder, policy: str, pins: list[str], faces: list[np.ndarray],
              preset: Preset, kind: str, clock: Clock) -> Training:
    import keras

    total = 2 * preset.steps
    clock.progress("Training check", 0, total)
    spec = training.optimizer_spec(builder.folder.state.data.get("config")
                                   if builder.folder.state else None)
    runs, times = [], []
    for offset, policy_run, run_pins in ((0, "float32", ()), (preset.steps, policy, pins)):
        model = builder.build(policy_run, run_pins, fresh=True)
        batches = [(faces, training.targets_for(model, faces))] * preset.steps
        run, seconds = training.run(model, policy_run, batches, spec, lambda s, o=offset:
                                    clock.progress("Training check", o + s, total))
        runs.append(run)
        times.append(seconds)
    timed = kind == "gpu"
    if timed:
        for run, seconds in zip(runs, times, strict=True):
            run.images_per_s = training.images_per_s(seconds, preset.batch)
    clock.plan["Training check"] = 0.0
    return Training(preset.steps, training.scaler_name(policy, keras.backend.backend()),
                    spec.description, training.LOSS, runs[0], runs[1], timed)


def _speed(builder: Builder, policy: str, pins: list[str], faces: list[np.ndarray],
           preset: Preset, clock: Clock) -> Speed:
    clock.progress("Speed", 0, 2)
    found: dict[str, Any] = {}
    for index, (label, model) in enumerate((("float32", builder.build("float32")),
                                            ("target", builder.build(policy, pins)))):
        measure.reset_peak_memory()
        found[f"forward_{label}_ips"] = measure.throughput(
            lambda m=model: measure.forward(m, faces), preset.batch,
            budget=preset.speed_seconds, minimum=preset.speed_calls)
        found[f"peak_memory_{label}_mb"] = measure.peak_memory_mb()
        clock.progress("Speed", index + 1, 2)
    clock.plan["Speed"] = 0.0
    return Speed(speedup=found["forward_target_ips"] / found["forward_float32_ips"], **found)


def _autopin(builder: Builder, result: ValidationResult, inputs: list[np.ndarray],
             fp32_outputs: list[np.ndarray], clock: Clock) -> AutoPin:
    """The smallest pin set found that removes every problem (faces and stress inputs)."""
    batch = result.inputs.batch
    clock.progress("Auto-pin", 0, 1)

    def passes(candidate: list[str]) -> bool:
        clock.progress("Auto-pin", 0, 1)
        model = builder.build(result.policy, candidate)
        outputs, stress = _parity(fp32_outputs, measure.forward(model, inputs), batch)
        return not replace(result, outputs=outputs, stress=stress,
                           pins=list(candidate)).problems()

    suspects = [layer.name for layer in result.layers or [] if layer.eligible and (
        layer.risk in ("overflow", "nonfinite") or layer.config_risk)]
    found = autopin.search(list(dict.fromkeys(builder.folder.eligible)), passes,
                           [*result.pins, *suspects])
    clock.progress("Auto-pin", 1, 1)
    return AutoPin(found.pins, found.passed, found.evaluations)

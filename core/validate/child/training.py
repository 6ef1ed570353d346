"""The training check: a few optimizer steps in float32 and in the target policy, with loss
scaling the way Faceswap applies it.

Faceswap 3 (torch backend) trains with a torch optimizer and ``torch.amp.GradScaler`` at its
defaults (initial scale 2**16, growth x2 after 2000 clean steps, back-off x0.5 on an Inf/NaN
gradient, which skips the step); on TensorFlow and JAX the check uses Keras'
``LossScaleOptimizer`` through ``Settings.loss_scale_optimizer``, as Faceswap 2 did. The
optimizer comes from the model's state file when fsprec can rebuild it faithfully; the loss is
always a plain reconstruction error, and the result says so.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..result import TrainingRun

Batch = tuple[list[np.ndarray], list[np.ndarray]]  # inputs, targets
LOSS = ("mean squared reconstruction error of each output against its input (Faceswap's own "
        "loss, masks and eye/mouth multipliers are not reproduced)")
GRAD_SCALER = {"init_scale": 2.0 ** 16, "growth_factor": 2.0, "backoff_factor": 0.5,
               "growth_interval": 2000}  # torch's defaults, which Faceswap uses
# Faceswap's optimizer names -> (torch.optim class, keras.optimizers class)
OPTIMIZERS = {"adam": ("Adam", "Adam"), "adamax": ("Adamax", "Adamax"),
              "adamw": ("AdamW", "AdamW"), "nadam": ("NAdam", "Nadam"),
              "rms-prop": ("RMSprop", "RMSprop")}
DEFAULT = {"optimizer": "adam", "learning_rate": 5e-5, "epsilon_exponent": -7,
           "ada_beta_1": 0.9, "ada_beta_2": 0.999, "ada_amsgrad": False}  # Faceswap's defaults


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimizer the check uses and how it was chosen."""

    name: str  # a key of OPTIMIZERS
    learning_rate: float
    epsilon: float
    betas: tuple[float, float]
    amsgrad: bool
    description: str

    def torch(self, params: list[Any]) -> Any:
        import torch

        kwargs: dict[str, Any] = {"lr": self.learning_rate, "eps": self.epsilon}
        if self.name != "rms-prop":
            kwargs["betas"] = self.betas
        if self.name in ("adam", "adamw"):
            kwargs["amsgrad"] = self.amsgrad
        if self.name == "adamw":
            kwargs["weight_decay"] = 0.0
        return getattr(torch.optim, OPTIMIZERS[self.name][0])(params, **kwargs)

    def keras(self) -> Any:
        import keras

        kwargs: dict[str, Any] = {"learning_rate": self.learning_rate, "epsilon": self.epsilon}
        if self.name != "rms-prop":
            kwargs.update(beta_1=self.betas[0], beta_2=self.betas[1])
        if self.name in ("adam", "adamw"):
            kwargs["amsgrad"] = self.amsgrad
        if self.name == "adamw":
            kwargs["weight_decay"] = 0.0
        return getattr(keras.optimizers, OPTIMIZERS[self.name][1])(**kwargs)


def optimizer_spec(config: dict[str, Any] | None) -> OptimizerSpec:
    """The optimizer from a Faceswap state's ``config``, else Faceswap's default Adam (the
    description says which, and what could not be reproduced)."""
    config = config or {}
    name = config.get("optimizer")
    unfaithful = []
    if name is None:
        source = "Faceswap's default; the state records no optimizer"
    elif name not in OPTIMIZERS:
        unfaithful.append(f"its optimizer {name!r} is Faceswap's own")
    if config.get("gradient_clipping", "none") != "none":
        unfaithful.append(f"gradient clipping {config['gradient_clipping']!r}")
    if config.get("gradient_accumulation", 1) != 1:
        unfaithful.append("gradient accumulation")
    if config.get("weight_decay", 0.0):
        unfaithful.append("weight decay")
    if unfaithful:
        source = ("Faceswap's default Adam; the model's settings are not reproduced ("
                  + ", ".join(unfaithful) + ")")
        config = {}
    elif name is not None:
        source = "from the model's state"
    settings = {**DEFAULT, **{k: v for k, v in config.items() if k in DEFAULT}}
    spec = OptimizerSpec(settings["optimizer"], float(settings["learning_rate"]),
                         10.0 ** settings["epsilon_exponent"],
                         (float(settings["ada_beta_1"]), float(settings["ada_beta_2"])),
                         bool(settings["ada_amsgrad"]), "")
    words = f"{spec.name} (lr {spec.learning_rate:g}, eps {spec.epsilon:g}), {source}"
    return OptimizerSpec(spec.name, spec.learning_rate, spec.epsilon, spec.betas, spec.amsgrad,
                         words)


def targets_for(model: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Reconstruction targets: each output learns its side's input, resized to its shape
    (a one-channel output, such as a mask, learns the input's grey level)."""
    import keras

    targets = []
    for index, output in enumerate(keras.tree.flatten(model.outputs)):
        source = inputs[index % len(inputs)]
        height, width, channels = output.shape[1], output.shape[2], output.shape[3]
        resized = np.asarray(keras.ops.convert_to_numpy(
            keras.ops.image.resize(source, (height, width))), "float32")
        if channels != resized.shape[-1]:
            resized = np.repeat(resized.mean(axis=-1, keepdims=True), channels, axis=-1)
        targets.append(np.clip(resized, 0.0, 1.0))
    return targets


def scaler_name(policy: str, backend: str) -> str | None:
    """The loss scaling a run in ``policy`` gets on ``backend`` (None: none)."""
    if policy != "mixed_float16":
        return None
    return "torch.amp.GradScaler" if backend == "torch" else "keras LossScaleOptimizer"


def run(model: Any, policy: str, batches: Sequence[Batch], spec: OptimizerSpec,
        on_step: Callable[[int], None] = lambda step: None) -> tuple[TrainingRun, list[float]]:
    """Train ``model`` one step per batch; the run and each step's seconds."""
    import keras

    if keras.backend.backend() == "torch":
        return torch_run(model, policy, batches, spec, on_step)
    return keras_run(model, policy, batches, spec, on_step)


def torch_run(model: Any, policy: str, batches: Sequence[Batch], spec: OptimizerSpec,
              on_step: Callable[[int], None] = lambda step: None
              ) -> tuple[TrainingRun, list[float]]:
    """Faceswap 3's step: ``scaler.scale(loss).backward()``, ``scaler.step``,
    ``scaler.update``; a step whose scale went down was skipped for Inf/NaN gradients."""
    import keras
    import torch

    params = [variable._value for variable in model.trainable_variables]  # as Faceswap does
    optimizer = spec.torch(params)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    scaler = (torch.amp.GradScaler(device, **GRAD_SCALER) if policy == "mixed_float16"
              else None)
    losses, scales, times, skipped = [], [], [], 0
    for step, (inputs, targets) in enumerate(batches):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        outputs = keras.tree.flatten(model(inputs if len(inputs) > 1 else inputs[0],
                                           training=True))
        loss = sum(torch.mean((out.float() - keras.ops.convert_to_tensor(target)) ** 2)
                   for out, target in zip(outputs, targets, strict=True)) / len(outputs)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            before = scaler.get_scale()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scales.append(float(scaler.get_scale()))
            skipped += scales[-1] < before
        times.append(time.perf_counter() - start)
        losses.append(float(loss.detach().cpu()))
        on_step(step + 1)
    return TrainingRun(losses, scales or None, skipped, None), times


def keras_run(model: Any, policy: str, batches: Sequence[Batch], spec: OptimizerSpec,
              on_step: Callable[[int], None] = lambda step: None
              ) -> tuple[TrainingRun, list[float]]:
    """Faceswap 2's step: ``train_on_batch`` with Keras' dynamic loss scaling under
    ``mixed_float16``; a step whose scale went down was skipped."""
    from ...keras.settings import Settings

    optimizer = spec.keras()
    if policy == "mixed_float16":
        optimizer = Settings.loss_scale_optimizer(optimizer)
    model.compile(optimizer=optimizer, loss="mse")
    losses, scales, times, skipped = [], [], [], 0
    for step, (inputs, targets) in enumerate(batches):
        before = _scale(optimizer)
        start = time.perf_counter()
        logs = model.train_on_batch(inputs if len(inputs) > 1 else inputs[0],
                                    targets if len(targets) > 1 else targets[0],
                                    return_dict=True)
        times.append(time.perf_counter() - start)
        losses.append(float(logs["loss"]))
        after = _scale(optimizer)
        if after is not None:
            scales.append(after)
        if (before is not None and after is not None and after < before) or \
                not math.isfinite(losses[-1]):
            skipped += 1
        on_step(step + 1)
    return TrainingRun(losses, scales or None, skipped, None), times


def images_per_s(times: list[float], batch: int) -> float | None:
    """Steady-state training throughput (the first two steps compile and warm up)."""
    steady = times[2:]
    return batch * len(steady) / sum(steady) if steady and sum(steady) else None


def _scale(optimizer: Any) -> float | None:
    import keras

    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return None
    scale = getattr(optimizer, "dynamic_scale", None)  # created on the first step
    if scale is None:
        return float(optimizer.initial_scale)
    return float(keras.ops.convert_to_numpy(scale))

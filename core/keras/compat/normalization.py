"""Faceswap's normalization layers (``lib.model.normalization``) on ``keras.ops``.

Weights are created with the same names, shapes and order as Faceswap's, so saved weights
load unchanged. Epsilons are Python floats added in the layer's compute dtype: under
``mixed_float16`` RMSNormalization's ``1e-8`` underflows to zero exactly as in Faceswap.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

Shape = tuple[int | None, ...]


def _reduction_axes(ndim: int, axis: int | None) -> list[int]:
    """Every axis but the batch axis and ``axis`` (the normalized feature axis)."""
    kept = None if axis is None else axis % ndim
    return [i for i in range(1, ndim) if i != kept]


class AdaInstanceNormalization(keras.layers.Layer):
    """Adaptive instance normalization of ``inputs[0]`` with ``beta = inputs[1]`` and
    ``gamma = inputs[2]``: ``(x - mean) / (std + epsilon) * gamma + beta``. No weights;
    ``momentum``, ``center`` and ``scale`` are kept in the config only."""

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
        self.center = center
        self.scale = scale

    def build(self, input_shape: list[Shape]) -> None:
        if input_shape[0][self.axis] is None:
            raise ValueError(f"Axis {self.axis} of the input must have a defined size; got "
                             f"shape {input_shape[0]}.")
        super().build(input_shape)

    def call(self, inputs: list[Any]) -> Any:
        content, beta, gamma = inputs
        axes = _reduction_axes(len(content.shape), self.axis)
        mean = ops.mean(content, axes, keepdims=True)
        std = ops.std(content, axes, keepdims=True) + self.epsilon
        return (content - mean) / std * gamma + beta

    def compute_output_shape(self, input_shape: list[Shape]) -> Shape:
        return input_shape[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale}


class GroupNormalization(keras.layers.Layer):
    """Group normalization: channels split into ``group`` groups, each normalized with
    ``sqrt(var + epsilon)`` over the spatial axes and its channels; weights ``gamma``, ``beta``
    broadcast over the input (``[1, 1, 1, C]`` channels-last). A rank 2 input is normalized
    over the whole batch, as Faceswap does. ``axis`` is kept in the config only."""

    def __init__(self, axis: int | list[int] = -1, gamma_init: Any = "one",
                 beta_init: Any = "zero", gamma_regularizer: Any = None,
                 beta_regularizer: Any = None, epsilon: float = 1e-6, group: int = 32,
                 data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        self.gamma_init = initializers.get(gamma_init)
        self.beta_init = initializers.get(beta_init)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.epsilon = epsilon
        self.group = group
        self.data_format = data_format or "channels_last"
        self.supports_masking = True

    def build(self, input_shape: Shape) -> None:
        channel_axis = -1 if self.data_format == "channels_last" else 1
        shape = [1] * len(input_shape)
        shape[channel_axis] = input_shape[channel_axis]
        self.gamma = self.add_weight(shape=shape, initializer=self.gamma_init,
                                     regularizer=self.gamma_regularizer, name="gamma")
        self.beta = self.add_weight(shape=shape, initializer=self.beta_init,
                                    regularizer=self.beta_regularizer, name="beta")

    def _normalize(self, values: Any, axes: list[int] | None) -> Any:
        mean = ops.mean(values, axis=axes, keepdims=True)
        return (values - mean) / ops.sqrt(ops.var(values, axis=axes, keepdims=True)
                                          + self.epsilon)

    def call(self, inputs: Any) -> Any:
        shape = inputs.shape
        if len(shape) == 2:
            return self.gamma * self._normalize(inputs, None) + self.beta
        if len(shape) != 4:
            raise ValueError(f"GroupNormalization needs a rank 2 or 4 input, got {shape}.")
        batch = -1 if shape[0] is None else shape[0]
        last = self.data_format == "channels_last"
        channels = shape[3] if last else shape[1]
        if channels < self.group:
            raise ValueError(f"GroupNormalization: {channels} channels are fewer than the "
                             f"group size {self.group}.")
        per_group = channels // self.group
        if last:
            grouped = ops.reshape(inputs, (batch, shape[1], shape[2], self.group, per_group))
            normed = self._normalize(grouped, [1, 2, 4])
        else:
            grouped = ops.reshape(inputs, (batch, self.group, per_group, shape[2], shape[3]))
            normed = self._normalize(grouped, [2, 3, 4])
        return self.gamma * ops.reshape(normed, (batch, *shape[1:])) + self.beta

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon, "axis": self.axis,
                "gamma_init": initializers.serialize(self.gamma_init),
                "beta_init": initializers.serialize(self.beta_init),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "group": self.group, "data_format": self.data_format}


class InstanceNormalization(keras.layers.Layer):
    """Instance normalization: ``(x - mean) / (std + epsilon)`` per sample over every axis but
    ``axis`` (all axes when ``axis`` is None), then ``* gamma + beta`` (shape ``(C,)``, or
    ``(1,)`` when ``axis`` is None)."""

    def __init__(self, axis: int | None = None, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True
        self.axis = axis
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.gamma = None
        self.beta = None

    def build(self, input_shape: Shape) -> None:
        if self.axis == 0:
            raise ValueError("InstanceNormalization cannot normalize the batch axis (axis=0).")
        if self.axis is not None and len(input_shape) == 2:
            raise ValueError("InstanceNormalization: no axis can be set for a rank 2 input.")
        self.input_spec = keras.InputSpec(ndim=len(input_shape))
        shape = (1,) if self.axis is None else (input_shape[self.axis],)
        if self.scale:
            self.gamma = self.add_weight(shape=shape, name="gamma",
                                         initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight(shape=shape, name="beta",
                                        initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint)

    def call(self, inputs: Any) -> Any:
        ndim = len(inputs.shape)
        axes = _reduction_axes(ndim, self.axis)
        mean = ops.mean(inputs, axes, keepdims=True)
        normed = (inputs - mean) / (ops.std(inputs, axes, keepdims=True) + self.epsilon)
        broadcast = [1] * ndim
        if self.axis is not None:
            broadcast[self.axis] = inputs.shape[self.axis]
        if self.scale:
            normed = normed * ops.reshape(self.gamma, broadcast)
        if self.center:
            normed = normed + ops.reshape(self.beta, broadcast)
        return normed

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}


class RMSNormalization(keras.layers.Layer):
    """Root mean square normalization: ``scale * x * rsqrt(mean(x**2) + epsilon) + offset``
    along ``axis``; with ``0 < partial < 1`` the mean covers the first ``partial`` of that axis
    (pRMSNorm). Weights ``scale`` and, with ``bias``, ``offset``, both of shape ``(C,)``.
    ``axis`` is stored non-negative once built, as Faceswap stores it."""

    def __init__(self, axis: int = -1, epsilon: float = 1e-8, partial: float = 0.0,
                 bias: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise TypeError(f"RMSNormalization needs an int axis, got {axis!r}.")
        if not 0.0 <= partial <= 1.0:
            raise ValueError(f"RMSNormalization partial must be in [0, 1], got {partial}.")
        self.axis = axis
        self.epsilon = epsilon
        self.partial = partial
        self.bias = bias
        self.scale = None
        self.offset: Any = 0.0

    def build(self, input_shape: Shape) -> None:
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"RMSNormalization: invalid axis {self.axis} for rank {ndim}.")
        self.axis %= ndim
        shape = (input_shape[self.axis],)
        self.scale = self.add_weight(name="scale", shape=shape, initializer="ones")
        if self.bias:
            self.offset = self.add_weight(name="offset", shape=shape, initializer="zeros")

    def call(self, inputs: Any) -> Any:
        values = inputs
        if self.partial not in (0.0, 1.0):
            size = int(inputs.shape[self.axis] * self.partial)
            values = ops.split(inputs, [size], axis=self.axis)[0]
        mean_square = ops.mean(ops.square(values), axis=self.axis, keepdims=True)
        return self.scale * inputs * ops.rsqrt(mean_square + self.epsilon) + self.offset

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "partial": self.partial, "bias": self.bias}


NORMALIZATION: tuple[type[keras.layers.Layer], ...] = (
    AdaInstanceNormalization, GroupNormalization, InstanceNormalization, RMSNormalization)

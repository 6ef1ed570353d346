"""Faceswap's custom layers (``lib.model.layers``), written on ``keras.ops`` for any backend.

Each class takes and returns the same config keys as Faceswap's, owns no weights (as there)
and computes the same result in the layer's compute dtype, so Python constants follow that
dtype exactly as they do in Faceswap.
"""
from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import keras
from keras import InputSpec, ops

Shape = tuple[int | None, ...]


class _GlobalPooling2D(keras.layers.Layer):
    """Reduce the two spatial axes of a 4D input with the subclass's ``reduction`` op."""

    reduction: Callable[..., Any]

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format or "channels_last"
        self.input_spec = InputSpec(ndim=4)

    def _spatial_axes(self) -> list[int]:
        return [1, 2] if self.data_format == "channels_last" else [2, 3]

    def call(self, inputs: Any) -> Any:
        return self.reduction(inputs, axis=self._spatial_axes())

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        channels = input_shape[3] if self.data_format == "channels_last" else input_shape[1]
        return (input_shape[0], channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}


class GlobalMinPooling2D(_GlobalPooling2D):
    """The minimum over the spatial axes."""

    reduction = staticmethod(ops.min)


class GlobalStdDevPooling2D(_GlobalPooling2D):
    """The (population) standard deviation over the spatial axes."""

    reduction = staticmethod(ops.std)


class KResizeImages(keras.layers.Layer):
    """Resize the spatial axes of a channels-last image by the factor ``size``.

    The new size is ``round(side * size)``; ``interpolation`` is ``nearest`` or ``bilinear``.
    Faceswap hands the new size to ``resize`` as (width, height); that is the same for the
    square images Faceswap trains on, and (height, width) here keeps a non-square output in
    step with :meth:`compute_output_shape`.
    """

    def __init__(self, size: float = 2, interpolation: str = "nearest", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = size
        self.interpolation = interpolation

    def _scaled(self, side: int) -> int:
        return round(side * self.size)

    def call(self, inputs: Any) -> Any:
        height, width = inputs.shape[1:3]
        return ops.image.resize(inputs, (self._scaled(height), self._scaled(width)),
                                interpolation=self.interpolation, data_format="channels_last")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        batch, height, width, channels = input_shape
        return (batch, self._scaled(height), self._scaled(width), channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation}


class L2Normalize(keras.layers.Layer):
    """Divide by the L2 norm along ``axis`` (``keras.ops.normalize``)."""

    def __init__(self, axis: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs: Any) -> Any:
        return ops.normalize(inputs, self.axis, order=2)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


class PixelShuffler(keras.layers.Layer):
    """Sub-pixel upscaling (depth to space): ``C`` channels become ``C / (h * w)`` channels on
    an ``h`` x ``w`` larger grid; channel ``(i * w + j) * C_out + c`` lands at offset ``(i, j)``.
    """

    def __init__(self, size: int | tuple[int, int] = (2, 2), data_format: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format or "channels_last"
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def call(self, inputs: Any) -> Any:
        if len(inputs.shape) != 4:
            raise ValueError(f"PixelShuffler needs a rank 4 input, got shape {inputs.shape}.")
        rows, cols = self.size
        batch = -1 if inputs.shape[0] is None else inputs.shape[0]
        if self.data_format == "channels_last":
            _, height, width, channels = inputs.shape
            out_channels = channels // (rows * cols)
            grid = ops.reshape(inputs, (batch, height, width, rows, cols, out_channels))
            grid = ops.transpose(grid, (0, 1, 3, 2, 4, 5))
            return ops.reshape(grid, (batch, height * rows, width * cols, out_channels))
        _, channels, height, width = inputs.shape
        out_channels = channels // (rows * cols)
        grid = ops.reshape(inputs, (batch, rows, cols, out_channels, height, width))
        grid = ops.transpose(grid, (0, 3, 4, 1, 5, 2))
        return ops.reshape(grid, (batch, out_channels, height * rows, width * cols))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 4:
            raise ValueError(f"PixelShuffler needs a rank 4 input, got shape {input_shape}.")
        rows, cols = self.size
        last = self.data_format == "channels_last"
        channels, height, width = ((input_shape[3], input_shape[1], input_shape[2]) if last
                                   else input_shape[1:4])
        if channels is None or channels % (rows * cols):
            raise ValueError(f"PixelShuffler: {channels} channels cannot be split into "
                             f"{rows}x{cols} blocks.")
        height = None if height is None else height * rows
        width = None if width is None else width * cols
        out = channels // (rows * cols)
        return ((input_shape[0], height, width, out) if last
                else (input_shape[0], out, height, width))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size, "data_format": self.data_format}


class QuickGELU(keras.layers.Layer):
    """The fast GELU approximation ``x * sigmoid(1.702 * x)``."""

    def __init__(self, name: str = "QuickGELU", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, inputs: Any) -> Any:
        return inputs * ops.sigmoid(1.702 * inputs)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape


class ReflectionPadding2D(keras.layers.Layer):
    """Reflect-pad a channels-last image so that a ``kernel_size`` convolution with ``stride``
    covers it as ``same`` padding would; the extra row/column goes to the bottom/right."""

    def __init__(self, stride: int | tuple[int, int] = 2, kernel_size: int = 5,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(stride, (tuple, list)):
            if len(stride) != 2 or stride[0] != stride[1]:
                raise ValueError(f"ReflectionPadding2D needs a square stride, got {stride}.")
            stride = stride[0]
        self.stride = stride
        self.kernel_size = kernel_size

    def _padding(self, side: int) -> int:
        remainder = side % self.stride
        return max(self.kernel_size - (remainder or self.stride), 0)

    def call(self, inputs: Any) -> Any:
        pad_h, pad_w = self._padding(inputs.shape[1]), self._padding(inputs.shape[2])
        return ops.pad(inputs, [[0, 0], [pad_h // 2, pad_h - pad_h // 2],
                                [pad_w // 2, pad_w - pad_w // 2], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        batch, height, width, channels = input_shape
        return (batch, height + self._padding(height), width + self._padding(width), channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stride": self.stride, "kernel_size": self.kernel_size}


class Swish(keras.layers.Layer):
    """Swish of the scaled input: ``swish(beta * x)``."""

    def __init__(self, beta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.beta = beta

    def call(self, inputs: Any) -> Any:
        return ops.nn.swish(inputs * self.beta)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta": self.beta}


_SCALAR_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "multiply": operator.mul, "truediv": operator.truediv,
    "add": operator.add, "subtract": operator.sub}


class ScalarOp(keras.layers.Layer):
    """``input <operation> value`` for a Python scalar ``value``; Faceswap's replacement for the
    scalar ``TFOpLambda`` layers of Keras 2 models."""

    def __init__(self, operation: str, value: float, **kwargs: Any) -> None:
        if operation not in _SCALAR_OPS:
            raise ValueError(f"ScalarOp operation must be one of {', '.join(_SCALAR_OPS)}; "
                             f"got {operation!r}.")
        kwargs.setdefault("name", f"ScalarOp_{operation}")
        super().__init__(**kwargs)
        self.operation = operation
        self.value = value

    def call(self, inputs: Any) -> Any:
        return _SCALAR_OPS[self.operation](inputs, self.value)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "operation": self.operation, "value": self.value}


LAYERS: tuple[type[keras.layers.Layer], ...] = (
    GlobalMinPooling2D, GlobalStdDevPooling2D, KResizeImages, L2Normalize, PixelShuffler,
    QuickGELU, ReflectionPadding2D, Swish, ScalarOp)

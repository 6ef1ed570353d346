"""Keras' Conv2DTranspose with the output alignment Faceswap 3 models were trained with.

Faceswap 3 runs Keras below 3.15 on torch. There, a ``"same"`` transposed convolution whose
kernel is odd and whose stride is above 1 (Phaze-A's ``upscale_hybrid`` and ``resize_images``
blocks: kernel 3, stride 2) keeps the full output from its second row and column on, where
TensorFlow, JAX and Keras 3.15's torch keep it from the first: the same weights give outputs
one pixel apart. This class computes the full ("valid", no output padding) transposed
convolution and crops it the way torch did under Keras 3.14 (``padding`` rows off the start,
then the output length), on any backend and Keras version; other paddings, even kernels and
stride 1, where every alignment agrees, are Keras' own call.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _torch_crop(kernel: int, stride: int, dilation: int, output_padding: int | None
                ) -> tuple[int, int]:
    """The torch ``padding`` and ``output_padding`` Keras 3.14 passed for one ``"same"`` axis.

    Torch drops ``padding`` rows from each end of the full output and adds ``output_padding``
    at the end: the result is the full output from row ``padding`` on.
    """
    size = (kernel - 1) * dilation + 1
    wanted = stride - size % 2 if output_padding is None else output_padding
    padding = max(-((size % 2 - size + wanted) // 2), 0)
    extra = min(2 * padding + size % 2 - size + wanted, max(0, stride - 1))
    return padding, extra


class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` that aligns its output as Faceswap 3 trained it."""

    def _needs_torch_alignment(self) -> bool:
        return self.padding == "same" and any(
            k % 2 == 1 and s > 1 for k, s in zip(self.kernel_size, self.strides, strict=True))

    def call(self, inputs: Any) -> Any:
        if not self._needs_torch_alignment():
            return super().call(inputs)
        full = ops.conv_transpose(inputs, self.kernel, strides=list(self.strides),
                                  padding="valid", output_padding=0,
                                  dilation_rate=self.dilation_rate, data_format=self.data_format)
        first = 1 if self.data_format == "channels_last" else 2
        paddings = self.output_padding or (None,) * 2
        for axis, (kernel, stride, dilation, extra_padding) in enumerate(zip(
                self.kernel_size, self.strides, self._pair(self.dilation_rate), paddings,
                strict=True)):
            start, extra = _torch_crop(kernel, stride, dilation, extra_padding)
            axis += first
            length = full.shape[axis] - 2 * start + extra
            pad_end = max(0, start + length - full.shape[axis])
            if pad_end:
                widths = [(0, 0)] * len(full.shape)
                widths[axis] = (0, pad_end)
                full = ops.pad(full, widths)
            window = [slice(None)] * len(full.shape)
            window[axis] = slice(start, start + length)
            full = full[tuple(window)]
        outputs = full
        if self.use_bias:
            shape = ((1, 1, 1, self.filters) if self.data_format == "channels_last"
                     else (1, self.filters, 1, 1))
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    @staticmethod
    def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
        return (value, value) if isinstance(value, int) else tuple(value)

"""Faceswap's kernel initializers (``lib.model.initializers``), backend independent.

They only matter when a layer is built fresh: a loaded model overwrites the kernels with its
saved weights. The config keys are Faceswap's, so configs round-trip both ways.
"""
from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import initializers, ops


class ConvolutionAware(initializers.Initializer):
    """Convolution-aware initialization (Aghajanyan, arXiv:1702.06295): orthogonal filters
    built in the Fourier domain plus ``eps_std`` noise, scaled to variance ``2 / fan_in``.

    Shapes of rank 3, 4 and 5 are convolution kernels; other shapes get an orthogonal matrix.
    ``seed`` seeds NumPy's legacy generator (the same stream as ``np.random.seed``). Once it
    has run it sets ``initialized``, which is saved, so a reloaded model skips the costly
    computation and draws He-uniform values that its saved weights then replace.
    """

    def __init__(self, eps_std: float = 0.05, seed: int | None = None,
                 initialized: bool = False) -> None:
        self.eps_std = eps_std
        self.seed = seed
        self.initialized = initialized

    def __call__(self, shape: tuple[int, ...], dtype: str | None = None) -> Any:
        if self.initialized:
            return initializers.HeUniform()(shape, dtype=dtype)
        dtype = dtype or keras.config.floatx()
        rank = len(shape)
        if rank not in (3, 4, 5):
            self.initialized = True
            return initializers.Orthogonal()(shape, dtype=dtype)
        rng = np.random if self.seed is None else np.random.RandomState(self.seed)
        *kernel_shape, stack_size, filters = shape
        fourier_shape = np.fft.rfftn(np.zeros(kernel_shape)).shape
        basis = self._basis(rng, filters, stack_size, math.prod(fourier_shape), dtype)
        basis = basis.reshape((filters, stack_size, *fourier_shape))
        noise = rng.normal(0.0, self.eps_std, (filters, stack_size, *kernel_shape))
        kernel = np.fft.irfftn(basis, kernel_shape, axes=range(-len(kernel_shape), 0)) + noise
        fan_in = stack_size * math.prod(kernel_shape)
        kernel = (kernel * np.sqrt(2.0 / fan_in / np.var(kernel))).astype(dtype)
        self.initialized = True
        # (filters, stack, *kernel) -> (*kernel, stack, filters)
        order = (*range(2, rank), 1, 0)
        return ops.convert_to_tensor(np.transpose(kernel, order), dtype=dtype)

    def _basis(self, rng: Any, filters: int, stack_size: int, size: int,
               dtype: str) -> np.ndarray:
        """``stack_size`` orthonormal vectors of length ``size`` for each filter."""
        if size == 1:
            return rng.normal(0.0, self.eps_std, (filters, stack_size, size))
        blocks = stack_size // size + 1
        random = rng.normal(0.0, 1.0, (filters, blocks, size, size))
        symmetric = random + np.swapaxes(random, -1, -2) - random * np.eye(size)
        vectors = np.swapaxes(np.linalg.svd(symmetric)[0], -1, -2)
        return vectors.reshape((filters, blocks * size, size))[:, :stack_size].astype(dtype)

    def get_config(self) -> dict[str, Any]:
        return {"eps_std": self.eps_std, "seed": self.seed, "initialized": self.initialized}


class ICNR(initializers.Initializer):
    """ICNR (Aitken et al., arXiv:1707.02937) for a convolution feeding a ``scale`` x
    ``scale`` PixelShuffler: ``initializer`` fills ``out / scale**2`` filters and the kernel
    repeats them ``scale**2`` times along the output axis (a tile, as Faceswap does), so
    each upscaled pixel block starts identical and no checkerboard appears."""

    def __init__(self, initializer: Any, scale: int = 2) -> None:
        self.initializer = initializer
        self.scale = scale

    def _inner(self) -> initializers.Initializer:
        if isinstance(self.initializer, initializers.Initializer):
            return self.initializer
        return initializers.deserialize(
            self.initializer, custom_objects={"ConvolutionAware": ConvolutionAware, "ICNR": ICNR})

    def __call__(self, shape: tuple[int, ...], dtype: str | None = "float32") -> Any:
        inner = self._inner()
        if self.scale == 1:
            return inner(shape, dtype=dtype)
        repeats = self.scale ** 2
        sub_kernel = inner((*shape[:-1], shape[-1] // repeats), dtype=dtype)
        return ops.tile(sub_kernel, (1,) * (len(shape) - 1) + (repeats,))

    def get_config(self) -> dict[str, Any]:
        initializer = self.initializer
        if isinstance(initializer, initializers.Initializer):
            initializer = initializers.serialize(initializer)
        return {"scale": self.scale, "initializer": initializer}


INITIALIZERS: tuple[type[initializers.Initializer], ...] = (ConvolutionAware, ICNR)

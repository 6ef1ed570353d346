"""Keras-serializable stand-ins for Faceswap's custom objects, for any Keras backend.

Faceswap registers its classes in Keras' global custom objects under their bare class names
(configs carry ``"registered_name": "PixelShuffler"``); :func:`register` does the same with
these. Importing this package imports Keras (TensorFlow backend unless ``KERAS_BACKEND``
says otherwise).
"""
from __future__ import annotations

from ..backend import ensure_backend

ensure_backend()
import keras  # after the backend is chosen

from .initializers import INITIALIZERS, ICNR, ConvolutionAware
from .layers import (LAYERS, GlobalMinPooling2D, GlobalStdDevPooling2D, KResizeImages,
                     L2Normalize, PixelShuffler, QuickGELU, ReflectionPadding2D, ScalarOp, Swish)
from .normalization import (NORMALIZATION, AdaInstanceNormalization, GroupNormalization,
                            InstanceNormalization, RMSNormalization)


def custom_objects() -> dict[str, type]:
    """Faceswap's class names mapped to the compat classes."""
    return {cls.__name__: cls for cls in (*LAYERS, *NORMALIZATION, *INITIALIZERS)}


def register(objects: dict[str, type] | None = None) -> None:
    """Put ``objects`` (default: the compat classes) in Keras' global custom objects.

    Keras gives global entries precedence over a ``custom_objects`` argument, so the classes
    registered last are the ones a load uses.
    """
    keras.saving.get_custom_objects().update(custom_objects() if objects is None else objects)


__all__ = ["AdaInstanceNormalization", "ConvolutionAware", "GlobalMinPooling2D",
           "GlobalStdDevPooling2D", "GroupNormalization", "ICNR", "InstanceNormalization",
           "KResizeImages", "L2Normalize", "PixelShuffler", "QuickGELU", "RMSNormalization",
           "ReflectionPadding2D", "ScalarOp", "Swish", "custom_objects", "register"]

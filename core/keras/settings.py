"""Faceswap's training precision settings (``plugins/train/model/_base/settings.py``) for fsprec.

The same contract as Faceswap's ``Settings``: constructing one sets Keras' global dtype policy;
:meth:`Settings.get_mixed_precision_layers` records which layers take a mixed policy;
:meth:`Settings.check_model_precision` switches a loaded model. The config rewrite is fsprec's
one switch, :func:`fsprec.core.precision.switch_precision`, so a model switched here matches a
file converted by :mod:`fsprec.core.convert`. This module imports Keras.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from .backend import ensure_backend
from ..errors import FsprecError
from ..layers import MIXED_POLICIES, mixed_in_config
from ..precision import switch_precision
from ..state import State

ensure_backend()
import keras  # noqa: E402 (after the backend is chosen)

from . import compat  # noqa: E402 (imports Keras)

logger = logging.getLogger(__name__)


def _policy_for(mixed_precision: bool | str) -> str:
    """``True`` is ``mixed_float16``; a string names a mixed policy (or ``float32``)."""
    if isinstance(mixed_precision, str):
        if mixed_precision not in ("float32", *MIXED_POLICIES):
            raise FsprecError(f"Unknown precision {mixed_precision!r}; choose float32, "
                              f"{' or '.join(MIXED_POLICIES)}.")
        return mixed_precision
    return "mixed_float16" if mixed_precision else "float32"


class Settings:
    """Keras precision settings for training (or inference) of a Faceswap model.

    ``mixed_precision`` is a bool as in Faceswap (True means ``mixed_float16``) or, as an
    fsprec extension, a policy name such as ``"mixed_bfloat16"``. Prediction always runs in
    float32. ``arguments`` (Faceswap's command line namespace) completes Faceswap's signature;
    Faceswap does not use it here either.
    """

    def __init__(self, arguments: Any = None, mixed_precision: bool | str = False,
                 is_predict: bool = False) -> None:
        del arguments
        requested = _policy_for(mixed_precision)
        self._policy = "float32" if is_predict else requested
        if self.use_mixed_precision:
            logger.info("Mixed precision training enabled (%s).", self._policy)
        self._set_policy(self._policy)

    @property
    def use_mixed_precision(self) -> bool:
        """True when training runs in a mixed policy."""
        return self._policy in MIXED_POLICIES

    @property
    def policy(self) -> str:
        """The global dtype policy these settings use."""
        return self._policy

    @property
    def _mixed_policy(self) -> str:
        """The mixed policy a model is switched to or probed with."""
        return self._policy if self.use_mixed_precision else "mixed_float16"

    @staticmethod
    def _set_policy(policy: str) -> None:
        keras.config.set_dtype_policy(policy)
        logger.debug("Keras dtype policy set to %s.", policy)

    @staticmethod
    def loss_scale_optimizer(optimizer: keras.optimizers.Optimizer,
                             initial_scale: float = 2.0 ** 15,
                             dynamic_growth_steps: int = 2000
                             ) -> keras.optimizers.LossScaleOptimizer:
        """Wrap ``optimizer`` in Keras' dynamic loss scaling for float16 training."""
        return keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=initial_scale,
                                                   dynamic_growth_steps=dynamic_growth_steps)

    def get_mixed_precision_layers(self, build_func: Callable[[Any], keras.Model],
                                   inputs: Sequence[Any]) -> tuple[keras.Model, list[str]]:
        """Build the model once under a mixed policy (on the CPU) to learn which layers take
        it, then rebuild it in float32.

        Returns the float32 model and the names of its layers that can run mixed; layers the
        build pins to float32 (outputs, AdaInstanceNormalization, inputs) are not listed.
        """
        self._set_policy(self._mixed_policy)
        with keras.device("cpu:0"):
            probe = build_func(inputs)
            names = mixed_in_config(probe.get_config()["layers"])
        del probe
        keras.backend.clear_session()
        self._set_policy("float32")
        model = build_func(inputs)
        self._set_policy(self._policy)
        logger.debug("Layers that can run in mixed precision: %s", names)
        return model, names

    def check_model_precision(self, model: keras.Model, state: State,
                              eligible: Sequence[str] | None = None) -> keras.Model:
        """Return ``model`` rebuilt in these settings' precision, with its weights.

        The switchable layers come from ``state.mixed_precision_layers``; when the state has
        none, from ``eligible`` (e.g. :func:`fsprec.core.layers.derived_eligible`) if given.
        Otherwise, as in Faceswap, a switch to float32 takes the layers that are mixed in
        ``model`` and a switch to mixed precision keeps the model as it is, with a warning.
        A list found this way is stored in ``state``.
        """
        names = state.mixed_precision_layers
        if self.use_mixed_precision and not names and eligible is None:
            logger.warning("This model has no stored list of mixed-precision layers (it was "
                           "made before Faceswap recorded one), so it cannot switch to mixed "
                           "precision; it stays in full precision.")
            return model
        config = model.get_config()
        weights = model.get_weights()
        if not names:
            names = list(eligible) if eligible is not None else mixed_in_config(
                config["layers"])
            state.add_mixed_precision_layers(names)
        model_class = type(model)
        switched = switch_precision({"class_name": model_class.__name__, "config": config},
                                    names, self._policy)
        objects = {**compat.custom_objects(), **_layer_classes(model)}
        del model
        keras.backend.clear_session()
        new_model = model_class.from_config(switched["config"], custom_objects=objects)
        new_model.set_weights(weights)
        logger.info("Mixed precision %s.", "enabled" if self.use_mixed_precision else "disabled")
        return new_model


def _layer_classes(model: keras.Model) -> dict[str, type]:
    """The classes of the model's layers (sub-models included) by name, so that a rebuild
    uses the classes the model was built with."""
    classes: dict[str, type] = {}
    for layer in model.layers:
        classes[type(layer).__name__] = type(layer)
        if isinstance(layer, keras.Model):
            classes.update(_layer_classes(layer))
    return classes

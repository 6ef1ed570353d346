"""What a validation pass is asked to do: its options and their allowed values (no Keras).

Shared by the parent side (CLI, GUI, :mod:`.runner`) and the child process
(:mod:`.child.engine`), so both agree on one definition.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import FsprecError

if TYPE_CHECKING:
    from .result import Thresholds

DEVICES = ("auto", "cpu", "gpu")
BACKENDS = ("tensorflow", "torch", "jax")
BACKEND_CHOICES = ("auto", *BACKENDS)
AUTO_ORDER = ("torch", "tensorflow", "jax")  # torch first: Faceswap 3's backend
DEFAULT_BACKEND = "tensorflow"  # what fsprec's own in-process Keras uses when unset
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# fsprec's extras bring Keras with the backend (pyproject.toml).
INSTALL = {name: f'pip install "faceswap-precision[{name}]"' for name in BACKENDS}


@dataclass(frozen=True)
class Preset:
    """Batch, training steps, and the speed measurement's seconds and fewest timed calls."""

    batch: int
    steps: int
    speed_seconds: float
    speed_calls: int


# On a CPU float16 is emulated: one mixed-precision training step of a 450 MB model takes
# minutes there, so the quick pass has no training check unless steps are given, and never
# times training. On a GPU the full pass trains and times it.
QUICK = Preset(batch=2, steps=0, speed_seconds=0.5, speed_calls=1)
FULL = Preset(batch=8, steps=20, speed_seconds=1.0, speed_calls=3)


@dataclass(frozen=True)
class Options:
    """What a validation pass does (the ``fsprec validate`` options); ``batch`` and ``steps``
    None: the quick preset on a CPU, the full one on a GPU."""

    policy: str = "mixed_float16"
    batch: int | None = None
    steps: int | None = None
    images: str | None = None
    tolerance: float | None = None  # error relative to the output's variation
    autopin: bool = True
    speed: bool = True
    pins: list[str] | None = None  # kept float32; None: the model's own pins (if mixed)

    @property
    def thresholds(self) -> Thresholds:
        """The policy's thresholds, with ``tolerance`` when one was given."""
        from .result import THRESHOLDS  # with the verdict: not needed to parse the arguments
        limits = THRESHOLDS[self.policy]
        if self.tolerance is not None:
            limits = replace(limits, error_to_variation=self.tolerance)
        return limits

    def preset(self, device_kind: str) -> Preset:
        """The preset for ``device_kind``, with the batch and steps given here."""
        base = FULL if device_kind == "gpu" else QUICK
        return replace(base, batch=self.batch if self.batch is not None else base.batch,
                       steps=self.steps if self.steps is not None else base.steps)


def installed_backends() -> list[str]:
    """Keras backends importable here, in ``auto``'s order (found without importing them)."""
    return [name for name in AUTO_ORDER if _findable(name)]


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken install, or an import hook that refuses it
        return False


def resolve_backend(choice: str) -> str:
    """The backend ``choice`` names; ``auto``: torch, else TensorFlow, else JAX.

    Only checks this Python; for another one the child reports a missing backend itself.
    """
    if choice not in BACKEND_CHOICES:
        raise FsprecError(f"Unknown backend {choice!r}; choose auto, torch, tensorflow or jax.")
    found = installed_backends() if _findable("keras") else []
    if choice == "auto":
        if not found:
            raise FsprecError("Validation needs Keras with torch, TensorFlow or JAX, and none "
                              f"is installed in {sys.executable}; install one there, e.g. "
                              f"`{INSTALL['torch']}`.")
        return found[0]
    if choice not in found:
        raise FsprecError(f"The {choice} backend is not installed in {sys.executable}; "
                          f"install it there with `{INSTALL[choice]}` or choose another "
                          "backend.")
    return choice

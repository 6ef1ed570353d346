"""What a validation pass is asked to do: its options and their allowed values (no Keras).

Shared by the parent side (CLI, GUI, :mod:`.runner`) and the child process
(:mod:`.child.engine`), so both agree on one definition.
"""
from __future__ import annotations

from dataclasses import dataclass

DEVICES = ("auto", "cpu", "gpu")
BACKENDS = ("tensorflow", "torch", "jax")
DEFAULT_BACKEND = "tensorflow"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TOLERANCE = {"mixed_float16": 1e-2, "mixed_bfloat16": 5e-2, "float32": 1e-6}


@dataclass
class Options:
    """What a validation pass does (the ``fsprec validate`` options)."""

    policy: str = "mixed_float16"
    batch: int = 4
    steps: int = 20
    images: str | None = None
    tolerance: float | None = None
    autopin: bool = True
    speed: bool = True
    pins: list[str] | None = None  # kept float32; None: the model's own pins (if mixed)

    @property
    def rel_l2_tolerance(self) -> float:
        """The output-error tolerance: the one given, else the policy's default."""
        return self.tolerance if self.tolerance is not None else TOLERANCE[self.policy]

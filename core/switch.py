"""Which way the one-click switch goes for a model, and how to say it (a domain rule, no Qt)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .layers import MIXED_POLICIES
from .modelfile import ModelFolder

PRECISION_LABELS = {"float32": "float32", "mixed_float16": "mixed float16",
                    "mixed_bfloat16": "mixed bfloat16", "partial": "partly mixed"}
SWITCH_LABELS = {"mixed_float16": "Switch to mixed precision (float16)",
                 "mixed_bfloat16": "Switch to mixed precision (bfloat16)",
                 "float32": "Switch to full precision (float32)"}


@dataclass(frozen=True)
class SwitchChoice:
    """What the switch does now: the target policy ("" when there is nothing to switch), the
    layers kept in float32, the button's label and a sentence that explains it."""

    target: str
    pins: tuple[str, ...]
    label: str
    explanation: str

    @property
    def possible(self) -> bool:
        """True when the switch can run."""
        return bool(self.target)


def switch_choice(model: ModelFolder | None, pins: Iterable[str] = (),
                  mixed_policy: str = "mixed_float16") -> SwitchChoice:
    """The switch for ``model`` given the layers the user wants kept in float32.

    A mixed model whose pins the user changed gets those pins applied; otherwise a mixed or
    partial model goes back to float32 and a float32 model goes to ``mixed_policy``.
    """
    pins = tuple(pins)
    if model is None:
        return SwitchChoice("", (), SWITCH_LABELS[mixed_policy], "Open a model first.")
    if not model.eligible:
        return SwitchChoice("", (), SWITCH_LABELS[mixed_policy],
                            "No layer of this model may run in mixed precision.")
    if model.precision in MIXED_POLICIES:
        if set(pins) != set(model.pinned):
            return SwitchChoice(model.precision, pins,
                                f"Apply float32 pins ({len(pins)} layers)",
                                "Keep the checked layers in float32 and run the others in "
                                f"{PRECISION_LABELS[model.precision]}.")
        return SwitchChoice("float32", (), SWITCH_LABELS["float32"],
                            "Every layer back to float32. Weights are not touched; a backup "
                            "is kept.")
    if model.precision == "partial":
        return SwitchChoice("float32", (), SWITCH_LABELS["float32"],
                            "Some layers are mixed and some are not: put every layer back to "
                            "float32.")
    kept = f"; {len(pins)} kept in float32" if pins else ""
    return SwitchChoice(mixed_policy, pins, SWITCH_LABELS[mixed_policy],
                        f"{len(model.eligible) - len(pins)} eligible layers run in "
                        f"{PRECISION_LABELS[mixed_policy]}{kept}. Weights are not touched; a "
                        "backup is kept.")

"""Find a small set of layers to keep in float32 so that a mixed model stays accurate.

Delta debugging in the spirit of ONNX's auto mixed-precision converter: start from a pin set
that passes (the risky layers, else every eligible layer), then keep removing chunks of it
while the model still passes, halving the chunks until no single layer can go.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class AutoPin:
    """The outcome of a search."""

    pins: list[str]
    passed: bool
    evaluations: int


def search(candidates: Sequence[str], passes: Callable[[list[str]], bool],
           first_guess: Sequence[str] = (), budget: int = 32) -> AutoPin:
    """The smallest pin set found within ``budget`` evaluations of ``passes(pins)``."""
    evaluations = 0

    def test(pins: list[str]) -> bool:
        nonlocal evaluations
        evaluations += 1
        return passes(pins)

    if test([]):
        return AutoPin([], True, evaluations)
    current = [name for name in candidates if name in set(first_guess)]
    if not current or not test(current):
        current = list(candidates)
        if not test(current):
            return AutoPin(current, False, evaluations)
    chunks = 2
    while len(current) > 0 and evaluations < budget:
        size = max(1, len(current) // chunks)
        parts = [current[i:i + size] for i in range(0, len(current), size)]
        for part in parts:
            if evaluations >= budget:
                break
            trial = [name for name in current if name not in part]
            if test(trial):
                current = trial
                chunks = max(chunks - 1, 2)
                break
        else:
            if size == 1:
                break
            chunks = min(chunks * 2, len(current))
    return AutoPin(current, True, evaluations)

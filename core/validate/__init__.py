"""Validation passes: is this model safe, and worth it, in mixed precision?

This is the parent side and imports no Keras: :func:`run_validation` starts the pass in a
child process (:mod:`fsprec.core.validate.child`) that streams JSON lines; the result is a
typed :class:`ValidationResult`. The names below load with their module on first use, so the
commands that do not validate (``fsprec convert``...) do not pay for them at start-up.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .environments import faceswap_pythons
    from .options import BACKEND_CHOICES, DEVICES, Options, installed_backends, resolve_backend
    from .report import text_report
    from .result import STAGES, ValidationResult, Verdict, decide
    from .runner import ValidationCrashed, run_validation

_HOMES = {"faceswap_pythons": "environments", "BACKEND_CHOICES": "options",
          "DEVICES": "options", "Options": "options", "installed_backends": "options",
          "resolve_backend": "options", "text_report": "report", "STAGES": "result",
          "ValidationResult": "result", "Verdict": "result", "decide": "result",
          "ValidationCrashed": "runner", "run_validation": "runner"}
__all__ = ["BACKEND_CHOICES", "DEVICES", "STAGES", "Options", "ValidationCrashed",
           "ValidationResult", "Verdict", "decide", "faceswap_pythons", "installed_backends",
           "resolve_backend", "run_validation", "text_report"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})

"""Validation passes: is this model safe, and worth it, in mixed precision?

This is the parent side and imports no Keras: :func:`run_validation` starts the pass in a
child process (:mod:`fsprec.core.validate.child`) that streams JSON lines; the result is a
typed :class:`ValidationResult`.
"""
from .environments import faceswap_pythons
from .options import BACKEND_CHOICES, DEVICES, Options, installed_backends, resolve_backend
from .report import text_report
from .result import STAGES, ValidationResult, Verdict, decide
from .runner import ValidationCrashed, run_validation

__all__ = ["BACKEND_CHOICES", "DEVICES", "STAGES", "Options", "ValidationCrashed",
           "ValidationResult", "Verdict", "decide", "faceswap_pythons", "installed_backends",
           "resolve_backend", "run_validation", "text_report"]

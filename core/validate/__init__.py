"""Validation passes: is this model safe, and worth it, in mixed precision?

This is the parent side and imports no Keras: :func:`run_validation` starts the pass in a
child process (:mod:`fsprec.core.validate.child`) that streams JSON lines.
"""
from .options import DEVICES, Options
from .report import text_report, verdict
from .runner import ValidationCrashed, run_validation

__all__ = ["DEVICES", "Options", "ValidationCrashed", "run_validation", "text_report", "verdict"]

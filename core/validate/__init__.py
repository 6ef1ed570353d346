"""Validation passes: is this model safe, and worth it, in mixed precision?

The parent side (:func:`run_validation`) imports no Keras; the pass runs in a child process
(:mod:`fsprec.core.validate.engine`) that streams JSON lines.
"""
from .engine import Options
from .report import text_report, verdict
from .runner import DEVICES, ValidationCrashed, run_validation

__all__ = ["DEVICES", "Options", "ValidationCrashed", "run_validation", "text_report", "verdict"]

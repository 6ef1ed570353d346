"""Progress and cancellation for long core jobs, with no Qt (the GUI wraps it in a worker)."""
from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import Cancelled

ProgressCallback = Callable[[str, int, int], None]


class Task:
    """What a long job reports to and is steered by: ``progress(stage, done, total)`` and a
    cancel flag that the job checks between steps."""

    def __init__(self, on_progress: ProgressCallback | None = None) -> None:
        self._on_progress = on_progress
        self._cancel = threading.Event()

    def progress(self, stage: str, done: int, total: int) -> None:
        """Report that ``done`` of ``total`` units of ``stage`` are finished."""
        if self._on_progress is not None:
            self._on_progress(stage, done, total)

    def cancel(self) -> None:
        """Ask the job to stop at its next check (thread-safe)."""
        self._cancel.set()

    @property
    def cancel_event(self) -> threading.Event:
        """The cancel flag itself, for core calls that wait on an event."""
        return self._cancel

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` when cancel was asked for."""
        if self._cancel.is_set():
            raise Cancelled("Cancelled; nothing was changed.")

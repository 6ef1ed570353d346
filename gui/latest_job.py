"""The one rule for every background job of the window: the latest job wins.

Each flow owns a :class:`LatestJob` per kind of job it runs. Starting a job supersedes the
previous one of that slot (it is cancelled); an outcome is handed to the flow only when it
belongs to the slot's latest job, that job was not shut down with the window, and, for a slot
bound to the open model, that model is still the open one. So a stale result never lands on
the wrong model, and no flow has to check for one itself.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from PySide6.QtCore import QObject, Slot

from .job_status import JobStatus
from .outcomes import JobFunction, Outcome
from .workers import Job, JobRunner

OpenModel = Callable[[], Path | None]


class LatestJob(QObject):
    """One flow's job slot.

    ``status``: the slot's jobs are foreground jobs, shown in (and gated by) the status
    strip: while any foreground job runs, :meth:`start` declines. ``open_model``: the slot's
    jobs are about the model open when they start; their outcome is dropped if another (or
    no) model is open when it arrives.
    """

    def __init__(self, runner: JobRunner, status: JobStatus | None = None,
                 open_model: OpenModel | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._status = status
        self._open_model = open_model
        self._job: Job | None = None
        self._model: Path | None = None
        self._handle: Callable[[Outcome], None] = lambda outcome: None

    def start(self, title: str, fn: JobFunction,
              handle: Callable[[Outcome], None]) -> Job | None:
        """Run ``fn(task)`` on a worker; ``handle(outcome)`` gets its outcome if it still counts.

        Returns the job (connect to its ``progress`` for more feedback), or None when a
        foreground job is already running.
        """
        job = Job(title, fn)
        if self._status is not None and not self._status.begin(job):
            return None
        self.cancel()
        self._job, self._handle = job, handle
        self._model = self._open_model() if self._open_model else None
        job.outcome.connect(self._arrived)
        return self._runner.start(job)

    @property
    def running(self) -> bool:
        """The slot's latest job has not delivered its outcome yet."""
        return self._job is not None

    def cancel(self) -> None:
        """Cancel the latest job; its outcome will not be handled."""
        if self._job is not None:
            self._job.cancel()
            self._job = None

    def _counts(self, job: Job) -> bool:
        """The job is the latest, was not shut down, and its model (if any) is still open."""
        return (job is self._job and self._runner.owns(job)
                and (self._open_model is None or self._open_model() == self._model))

    @Slot(object)
    def _arrived(self, outcome: Outcome) -> None:
        job = self.sender()
        if not isinstance(job, Job):
            return
        finishing = self._status.finishing(job, outcome) if self._status else nullcontext()
        with finishing:
            counts = self._counts(job)
            if job is self._job:
                self._job = None
            if counts:
                self._handle(outcome)

"""Run core jobs on worker threads (the Orange / superqt pattern).

A job is a plain function ``fn(task) -> result`` from core (or a thin wrapper around core
calls). :class:`Job` runs it on a :class:`QThread` and reports through signals that Qt
delivers on the GUI thread: ``progress(stage, done, total)``, then exactly one
``outcome(Outcome)`` (see :mod:`.outcomes`), then ``ended()``. Cancel is cooperative:
:meth:`Job.cancel` sets the core :class:`Task`'s flag and the job stops at its next check.
:class:`JobRunner` owns the threads and joins them, so no QThread is ever destroyed while
running. Flows do not use these directly: they go through :class:`.latest_job.LatestJob`.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from fsprec.core.task import Task

from .outcomes import JobFunction, run_to_outcome

PROGRESS_INTERVAL_S = 0.05


class Job(QObject):
    """One core job on its own thread, with typed signals."""

    progress = Signal(str, int, int)
    outcome = Signal(object)  # an Outcome
    ended = Signal()

    def __init__(self, title: str, fn: JobFunction) -> None:
        super().__init__()
        self.title = title
        self._fn = fn
        self.task = Task(on_progress=self._report)
        self._last_stage = ""
        self._last_emit = 0.0

    def _report(self, stage: str, done: int, total: int) -> None:
        """Forward core progress, at most every 50 ms except stage changes and completion."""
        now = time.monotonic()
        if (stage != self._last_stage or done >= total > 0
                or now - self._last_emit >= PROGRESS_INTERVAL_S):
            self._last_stage, self._last_emit = stage, now
            self.progress.emit(stage, done, total)

    def cancel(self) -> None:
        """Ask the job to stop at its next check (safe from any thread)."""
        self.task.cancel()

    @Slot()
    def run(self) -> None:
        """Run the job function and emit its outcome, then ``ended`` (on the worker thread)."""
        try:
            self.outcome.emit(run_to_outcome(self.title, self._fn, self.task))
        finally:
            app = QCoreApplication.instance()
            if app is not None:  # hand the job back so the GUI thread may delete it
                self.moveToThread(app.thread())
            self.ended.emit()


class JobRunner(QObject):
    """Starts jobs on their own threads, keeps them referenced, cancels and joins them."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._threads: dict[Job, QThread] = {}

    def start(self, job: Job) -> Job:
        """Run ``job`` on a new thread; connect its signals before calling this."""
        thread = QThread()
        thread.setObjectName(f"fsprec: {job.title}")
        job.moveToThread(thread)
        thread.started.connect(job.run)
        job.ended.connect(self._reap)
        self._threads[job] = thread
        thread.start()
        return job

    @Slot()
    def _reap(self) -> None:
        """Join the thread of a job that has ended (runs on the GUI thread)."""
        job = self.sender()
        thread = self._threads.pop(job, None)  # type: ignore[call-overload]
        if thread is not None:
            thread.quit()
            thread.wait()

    def owns(self, job: Job) -> bool:
        """True until ``job`` has ended or was shut down.

        A job's outcome is delivered before its ``ended`` (Qt keeps the order of queued
        signals), so an outcome whose job the runner no longer owns was shut down.
        """
        return job in self._threads

    def running(self) -> list[Job]:
        """Jobs whose thread has not been joined yet."""
        return list(self._threads)

    def shutdown(self) -> None:
        """Cancel every job and wait for its thread to finish; their outcomes are stale."""
        for job in self._threads:
            job.cancel()
        for job, thread in list(self._threads.items()):
            thread.quit()
            thread.wait()
            self._threads.pop(job, None)

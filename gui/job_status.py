"""The one foreground job (open, switch, scan, restore) and its strip in the status bar."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from .workers import Job, JobFunction, JobRunner


@dataclass
class _Current:
    job: Job
    on_finished: Callable[[Any], None]
    on_failed: Callable[[str], None]


class JobStatus(QWidget):
    """Stage, progress bar and Cancel for at most one job at a time.

    Each outcome goes to the callbacks given to :meth:`start`, on the GUI thread, after the
    strip is idle again (so a callback may start the next job); a cancelled job emits
    ``cancelled(title)``. ``ended(title)`` follows every outcome.
    """

    busyChanged = Signal(bool)
    cancelled = Signal(str)
    ended = Signal(str)

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self._current: _Current | None = None
        self.stage = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.stage, self.progress, self.cancel_button):
            layout.addWidget(widget)
        self.hide()

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return self._current is not None

    @property
    def title(self) -> str:
        """The running job's title ("" when idle)."""
        return self._current.job.title if self._current else ""

    def start(self, title: str, fn: JobFunction, on_finished: Callable[[Any], None],
              on_failed: Callable[[str], None]) -> Job | None:
        """Run ``fn(task)`` on a worker; None (nothing started) while another job runs."""
        if self._current is not None:
            return None
        job = Job(title, fn)
        job.progress.connect(self._progress)
        job.finished.connect(self._finished)
        job.failed.connect(self._failed)
        job.cancelled.connect(self._cancelled)
        self._current = _Current(job, on_finished, on_failed)
        self.stage.setText(title + "…")
        self.progress.setRange(0, 0)
        self.cancel_button.setEnabled(True)
        self.show()
        self.busyChanged.emit(True)
        return self.runner.start(job)

    def cancel(self) -> None:
        """Ask the running job to stop at its next check."""
        if self._current is not None:
            self._current.job.cancel()
            self.cancel_button.setEnabled(False)
            self.stage.setText("Cancelling…")

    def forget(self) -> None:
        """Drop the running job without waiting for its outcome (after a shutdown)."""
        self._current = None

    def _take(self) -> _Current | None:
        """The job whose outcome arrives, now idle; None for a stale signal."""
        current = self._current
        if current is None or self.sender() is not current.job:
            return None
        self._current = None
        self.hide()
        self.busyChanged.emit(False)
        return current

    @Slot(str, int, int)
    def _progress(self, stage: str, done: int, total: int) -> None:
        if self._current is None or self.sender() is not self._current.job \
                or not self.cancel_button.isEnabled():
            return
        self.stage.setText(stage + "…")
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(done, total) / total))
        else:
            self.progress.setRange(0, 0)

    @Slot(object)
    def _finished(self, result: object) -> None:
        if current := self._take():
            current.on_finished(result)
            self.ended.emit(current.job.title)

    @Slot(str)
    def _failed(self, message: str) -> None:
        if current := self._take():
            current.on_failed(message)
            self.ended.emit(current.job.title)

    @Slot(str)
    def _cancelled(self, _message: str) -> None:
        if current := self._take():
            self.cancelled.emit(current.job.title)
            self.ended.emit(current.job.title)

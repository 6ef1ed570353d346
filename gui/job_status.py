"""The one foreground job (open, switch, validate, scan, restore): its strip in the status bar."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from .outcomes import Cancelled, Outcome
from .workers import Job


class JobStatus(QWidget):
    """Stage, progress bar and Cancel for at most one foreground job at a time.

    :class:`~.latest_job.LatestJob` asks :meth:`begin` before a foreground job starts and
    wraps the delivery of its outcome in :meth:`finishing`, so the strip is idle while the
    outcome is handled (a handler may start the next job). ``declined(sentence)`` says why a
    job was not started, ``cancelled(title)`` that one stopped on request, and ``ended(title)``
    follows every outcome, after it was handled.
    """

    busyChanged = Signal(bool)
    declined = Signal(str)
    cancelled = Signal(str)
    ended = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._job: Job | None = None
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
        """True while a foreground job runs."""
        return self._job is not None

    @property
    def title(self) -> str:
        """The running job's title ("" when idle)."""
        return self._job.title if self._job else ""

    def begin(self, job: Job) -> bool:
        """Show ``job`` as the foreground job; False (and ``declined``) while another runs."""
        if self._job is not None:
            self.declined.emit(f"Busy with {self._job.title.lower()}; try again when it ends.")
            return False
        self._job = job
        job.progress.connect(self._progress)
        self.stage.setText(job.title + "…")
        self.progress.setRange(0, 0)
        self.cancel_button.setEnabled(True)
        self.show()
        self.busyChanged.emit(True)
        return True

    @contextmanager
    def finishing(self, job: Job, outcome: Outcome) -> Iterator[None]:
        """Go idle, run the body (the outcome's handler), then emit ``ended``.

        Does nothing around the body for a job the strip is not showing.
        """
        if job is not self._job:
            yield
            return
        self._job = None
        self.hide()
        self.busyChanged.emit(False)
        if isinstance(outcome, Cancelled):
            self.cancelled.emit(job.title)
        try:
            yield
        finally:
            self.ended.emit(job.title)

    def cancel(self) -> None:
        """Ask the running job to stop at its next check."""
        if self._job is not None:
            self._job.cancel()
            self.cancel_button.setEnabled(False)
            self.stage.setText("Cancelling…")

    @Slot(str, int, int)
    def _progress(self, stage: str, done: int, total: int) -> None:
        if self.sender() is not self._job or not self.cancel_button.isEnabled():
            return
        self.stage.setText(stage + "…")
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(done, total) / total))
        else:
            self.progress.setRange(0, 0)

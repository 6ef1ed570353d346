"""The health flow: runs the Health tab's jobs (check, roll back) and the model browser's
health badges, on the window's :class:`~fsprec.gui.workers.JobRunner`.

The flow owns no widgets but the view it is given. The weights are checked first and the
report shown; the training logs (which can be large) are read after, in a job of their own.
A switch the advice asks for is handed on through ``switchRequested`` to the window's switch
flow; after a roll back the flow checks the model again and says so through ``rolledBack``
(the window reopens the model).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QMessageBox

from fsprec.core import health, rollback
from fsprec.core.errors import Cancelled, FsprecError
from fsprec.core.task import Task
from fsprec.core.tblog import LossHistory, read_history

from .health_view import HealthView
from .workers import Job, JobRunner

Confirm = Callable[[str, list[str]], bool]


def ask(parent: Any) -> Confirm:
    """A confirmation in the switch's style: the plan's sentences, Yes / No."""
    def confirm(title: str, lines: list[str]) -> bool:
        answer = QMessageBox.question(parent, title, "\n\n".join(lines),
                                      QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes
    return confirm


class HealthFlow(QObject):
    """Checks the open model's versions, rolls back on request, passes switches on."""

    switchRequested = Signal(str, list)  # target precision, pins: for the switch flow
    rolledBack = Signal(str)  # what the roll back did, in one sentence
    failed = Signal(str)
    verdictChanged = Signal(str, str)  # model folder, the live model's verdict (badge)

    def __init__(self, view: HealthView, runner: JobRunner, confirm: Confirm | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.runner = runner
        self.confirm = confirm or ask(view)
        self.folder: Path | None = None
        self.job: Job | None = None
        view.checkRequested.connect(self.check)
        view.cancelRequested.connect(self.cancel)
        view.rollbackRequested.connect(self.roll_back)
        view.switchRequested.connect(self.switchRequested)

    @property
    def busy(self) -> bool:
        """True while a job of this flow runs."""
        return self.job is not None

    def set_folder(self, folder: Path | None) -> None:
        """Show the health of ``folder`` (None: no model); starts a check. A job still running
        for the previous model is cancelled and whatever it reports is ignored."""
        self.cancel()
        self.job = None
        self.folder = folder
        self.view.clear()
        if folder is not None:
            self.check(False)

    def check(self, all_versions: bool = False) -> None:
        """Check the versions (every one with ``all_versions``)."""
        if self.folder is None or self.busy:
            return
        folder = self.folder
        self.view.show_running()
        self._start("Checking model health",
                    lambda task: health.check(folder, task, all_versions=all_versions,
                                              with_loss=False), self._checked)

    def cancel(self) -> None:
        """Stop the running job at its next check."""
        if self.job is not None:
            self.job.cancel()

    def roll_back(self, version_id: str) -> None:
        """Plan a roll back to ``version_id``, confirm it, run it."""
        if self.folder is None or self.busy:
            return
        folder = self.folder
        self.view.show_running("Preparing the roll back…")
        self._start("Planning the roll back",
                    lambda task: rollback.plan(folder, version_id, task), self._planned)

    # Job outcomes (each ignored unless it comes from the current job) ----------------------
    def _start(self, title: str, fn: Callable[[Task], Any], done: Callable[[Any], None]) -> None:
        job = Job(title, fn)
        job.progress.connect(self._progress)
        job.finished.connect(done)
        job.failed.connect(self._failed)
        job.cancelled.connect(self._cancelled)
        job.ended.connect(self._ended)
        self.job = job
        self.runner.start(job)

    def _current(self) -> bool:
        """True when the signal being handled comes from the current job."""
        return self.job is not None and self.sender() is self.job

    @Slot(str, int, int)
    def _progress(self, stage: str, done: int, total: int) -> None:
        if self._current():
            self.view.show_progress(stage, done, total)

    @Slot()
    def _ended(self) -> None:
        if self._current():
            self.job = None

    @Slot(object)
    def _checked(self, report: health.HealthReport) -> None:
        if not self._current():
            return
        self.job = None  # its work is done; the next job starts before its ended arrives
        self.view.show_report(report)
        self.verdictChanged.emit(str(report.model_dir), report.live.verdict)
        self._start("Reading training logs",
                    lambda task: read_history(report.model_dir, report.plugin, task),
                    self._loss_read)

    @Slot(object)
    def _loss_read(self, history: LossHistory) -> None:
        if self._current():
            self.job = None
            self.view.show_loss(history)

    @Slot(str)
    def _failed(self, message: str) -> None:
        if self._current():
            self.job = None
            self.view.show_stopped(message)
            self.failed.emit(message)

    @Slot(str)
    def _cancelled(self, message: str) -> None:
        if self._current():
            self.job = None
            self.view.show_stopped(message)

    @Slot(object)
    def _planned(self, plan: rollback.RollbackPlan) -> None:
        if not self._current():
            return
        self.job = None
        if not self.confirm("Roll back", plan.summary()):
            self.view.show_stopped("Roll back cancelled; nothing was changed.")
            return
        self.view.show_running("Rolling back…")
        self._start("Rolling back", lambda task: rollback.run(plan, task), self._rolled_back)

    @Slot(object)
    def _rolled_back(self, result: rollback.RollbackResult) -> None:
        if not self._current():
            return
        self.job = None
        self.rolledBack.emit(result.message())
        self.check(False)


class HealthBadges(QObject):
    """The model browser's health badges: cached verdicts at once, the rest in the background
    (one job at a time; each model's live weights are read once, then cached)."""

    badge = Signal(str, str)  # model folder, verdict (clean, damaged, at_risk, unreadable)

    def __init__(self, runner: JobRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.job: Job | None = None

    def request(self, folders: list[Path]) -> None:
        """Badge ``folders``: cached ones now, the others when their check ends."""
        self.cancel()
        self.job = None
        todo = []
        for folder in folders:
            verdict = health.cached_verdict(folder)
            if verdict is None:
                todo.append(folder)
            else:
                self.badge.emit(str(folder), verdict)
        if not todo:
            return
        job = Job("Checking model health", lambda task: _live_verdicts(todo, task))
        job.finished.connect(self._checked)
        job.ended.connect(self._ended)
        self.job = job
        self.runner.start(job)

    def cancel(self) -> None:
        """Stop checking (the badges found so far stay)."""
        if self.job is not None:
            self.job.cancel()

    @Slot()
    def _ended(self) -> None:
        if self.sender() is self.job:
            self.job = None

    @Slot(object)
    def _checked(self, verdicts: dict[str, str]) -> None:
        if self.sender() is self.job:
            self.job = None
        for folder, verdict in verdicts.items():
            self.badge.emit(folder, verdict)


def _live_verdicts(folders: list[Path], task: Task) -> dict[str, str]:
    verdicts = {}
    for index, folder in enumerate(folders):
        task.check()
        task.progress("Checking model health", index, len(folders))
        try:
            verdicts[str(folder)] = health.check_live(folder, task)
        except Cancelled:
            raise
        except FsprecError:
            verdicts[str(folder)] = health.UNREADABLE
    task.progress("Checking model health", len(folders), len(folders))
    return verdicts

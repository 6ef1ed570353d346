"""Model health: the Health tab (check the saved versions, roll back) and the browser's badges.

The check is core's :func:`~fsprec.core.health.check`: newest version first, stopping at the
first clean one unless the user asks for every version. It runs in a background slot (the
tab has its own progress and Cancel), so opening another model simply supersedes it; the
training logs, which can be large, are read after the report is shown. A roll back is a
foreground job, confirmed like a switch, and ends with ``changed`` (the window reopens the
model, which checks it again). The advice's switches go to the window through
``switchRequested``. The tab's view is made on first use (pyqtgraph loads only then).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QStyle

from fsprec.core import health, rollback
from fsprec.core.errors import Cancelled as CancelledError
from fsprec.core.errors import FsprecError
from fsprec.core.modelfile import ModelFolder
from fsprec.core.task import Task
from fsprec.core.tblog import read_history

from ..browser import ModelBrowser
from ..dialogs import RollbackDialog
from ..outcomes import Cancelled, Done, Outcome, Refused
from .base import TRAINING_TIP, Flow, FlowContext, WindowState

if TYPE_CHECKING:
    from ..health_view import HealthView

Confirm = Callable[[rollback.RollbackPlan], bool]


class HealthFlow(Flow):
    """The Check Model Health action and the Health tab, which follows the open model."""

    switchRequested = Signal(str, list)  # target precision, pins: the advice asks for a switch
    changed = Signal()  # a roll back rewrote the model folder
    verdictChanged = Signal(object, str)  # model folder (Path), the live model's verdict

    def __init__(self, ctx: FlowContext) -> None:
        super().__init__(ctx)
        self.checking = ctx.job(foreground=False)
        self.rolling = ctx.job()
        self.confirm: Confirm = self._ask
        self._view: HealthView | None = None
        self._about: Path | None = None  # the model the tab's report (or check) is about
        self._rolling = False  # a roll back is being planned or run
        self._showing = False
        self._blocked = ""  # why the view's roll back is disabled now
        self.action = ctx.action(
            "Check Model &Health", self.show, "Ctrl+Shift+H",
            QStyle.StandardPixmap.SP_DialogApplyButton,
            "Check the live model and its backups and snapshots for NaN, Inf and float16 "
            "risks, newest first; roll back to a healthy version.")
        ctx.tabs.currentChanged.connect(self._tab_changed)

    def refresh(self, state: WindowState) -> None:
        self.action.setEnabled(state.folder is not None)
        self._blocked = TRAINING_TIP if state.training else ""
        if self._view is not None:
            self._view.set_blocked(self._blocked)

    def view(self) -> HealthView:
        """The Health tab's view, made on first use."""
        if self._view is None:
            from ..health_view import HealthView
            view = HealthView()
            view.checkRequested.connect(self.check)
            view.cancelRequested.connect(self.cancel)
            view.rollbackRequested.connect(self.roll_back)
            view.switchRequested.connect(self.switchRequested)
            view.set_blocked(self._blocked)
            self._view = view
        return self._view

    def show(self) -> None:
        """Show the Health tab and check the open model again."""
        view = self.view()
        self._showing = True  # the check below is the one this asks for
        self.ctx.show_tab(view, "Health")
        self._showing = False
        self.check(False)

    def model_shown(self, folder: ModelFolder) -> None:
        """Check the model now shown (also after a reload: its files may have changed), if
        the Health tab is open."""
        if self._view is not None and self.ctx.tabs.indexOf(self._view) >= 0:
            self.check(False)

    def _tab_changed(self) -> None:
        if self._view is not None and not self._showing \
                and self.ctx.tabs.currentWidget() is self._view \
                and self._about != self.ctx.model_path():
            self.check(False)

    def check(self, all_versions: bool = False) -> None:
        """Check the open model's versions, newest first (every one with ``all_versions``)."""
        folder = self.ctx.model_path()
        if folder is None:
            return
        view = self.view()
        if self._about != folder:
            view.clear()
        self._about = folder
        job = self.checking.start("Checking model health", partial(
            health.check, folder, all_versions=all_versions, with_loss=False), self._checked)
        if job is not None:
            job.progress.connect(view.show_progress)
            view.show_running()

    def cancel(self) -> None:
        """Stop the check (the report shown so far stays), or ask a roll back to stop (it
        says itself how it ended)."""
        if self._rolling:
            self.ctx.status.cancel()
            return
        self.checking.cancel()
        self.view().show_stopped("Check cancelled.")

    def roll_back(self, version_id: str) -> None:
        """Plan a roll back to ``version_id`` on a worker, then confirm and run it."""
        folder = self.ctx.model_path()
        if folder is None:
            return
        self.checking.cancel()
        self.view().show_running("Preparing the roll back…")
        self._rolling = self.rolling.start("Planning the roll back", partial(
            rollback.plan, folder, version_id), self._planned) is not None
        if not self._rolling:
            self.view().show_stopped("Another job is running; try again when it ends.")

    def _ask(self, plan: rollback.RollbackPlan) -> bool:
        return RollbackDialog(plan, self.ctx.window).exec() == QDialog.DialogCode.Accepted

    def _checked(self, outcome: Outcome) -> None:
        view = self.view()
        match outcome:
            case Done(value=report):
                view.show_report(report)
                self.verdictChanged.emit(report.model_dir, report.live.verdict)
                self.ctx.log(f"Health of {report.model_dir.name}: {report.live.summary}")
                self.checking.start("Reading training logs", partial(
                    read_history, report.model_dir, report.plugin), self._logs_read)
            case Cancelled(message=message):
                view.show_stopped(message)
            case Refused(message=message):
                view.show_stopped(message)
                self.ctx.log(f"Health check failed: {message}")
            case _:
                view.show_stopped("The health check failed.")
                self.ctx.report(outcome)

    def _logs_read(self, outcome: Outcome) -> None:
        view = self.view()
        match outcome:
            case Done(value=history):
                view.show_loss(history)
            case Refused(message=message) | Cancelled(message=message):
                view.show_stopped(message)
                self.ctx.log(f"Training logs not read: {message}")
            case _:
                view.show_stopped("Reading the training logs failed.")
                self.ctx.report(outcome)

    def _planned(self, outcome: Outcome) -> None:
        view = self.view()
        self._rolling = False
        if not isinstance(outcome, Done):
            view.show_stopped("Roll back not started; nothing was changed.")
            self.ctx.report(outcome, "Cannot roll back", "Cannot roll back: ")
            return
        plan: rollback.RollbackPlan = outcome.value
        if not self.confirm(plan):
            view.show_stopped("Roll back cancelled; nothing was changed.")
            self.ctx.log("Roll back cancelled; nothing was changed.")
            return
        view.show_running("Rolling back…")
        self._rolling = self.rolling.start("Rolling back", partial(rollback.run, plan),
                                           self._rolled_back) is not None

    def _rolled_back(self, outcome: Outcome) -> None:
        self._rolling = False
        match outcome:
            case Done(value=result):
                self.ctx.log(result.message())
                self._about = None  # the live files changed: check them again
                self.changed.emit()
            case Cancelled(message=message):
                self.view().show_stopped(message)
            case _:
                self.view().show_stopped("The roll back did not finish.")
                self.ctx.report(outcome, "The roll back failed", "Roll back failed: ")


class HealthBadges(Flow):
    """The model browser's health dots, all found off the GUI thread: the cached verdicts
    first (no weights are read), then one background job checks the others (each model's
    live weights are read once, then cached by core)."""

    def __init__(self, ctx: FlowContext, browser: ModelBrowser) -> None:
        super().__init__(ctx)
        self.browser = browser
        self.cached = ctx.job(foreground=False, model_bound=False)
        self.checking = ctx.job(foreground=False, model_bound=False)
        browser.model.modelReset.connect(self.request_listed)

    def request_listed(self) -> None:
        """Badge every readable model the browser lists."""
        self.request([entry.path for entry in self.browser.model.entries if entry.plugin])

    def request(self, folders: list[Path]) -> None:
        """Badge ``folders``: the cached verdicts, then the others as their check ends."""
        self.checking.cancel()
        self.cached.cancel()
        if folders:
            self.cached.start("Reading health badges", partial(cached_verdicts, folders),
                              self._cached)

    def show(self, folder: Path, verdict: str) -> None:
        """Badge ``folder`` with ``verdict`` (a check of the open model updates it too)."""
        self.browser.model.set_health(folder, verdict)

    def _cached(self, outcome: Outcome) -> None:
        if not isinstance(outcome, Done):
            self._checked(outcome)
            return
        found: dict[Path, str | None] = outcome.value
        for folder, verdict in found.items():
            if verdict is not None:
                self.show(folder, verdict)
        todo = [folder for folder, verdict in found.items() if verdict is None]
        if todo:
            self.checking.start("Checking model health", partial(live_verdicts, todo),
                                self._checked)

    def _checked(self, outcome: Outcome) -> None:
        if isinstance(outcome, Done):
            for folder, verdict in outcome.value.items():
                self.show(folder, verdict)
        elif not isinstance(outcome, Cancelled):
            self.ctx.report(outcome)


def cached_verdicts(folders: list[Path], task: Task) -> dict[Path, str | None]:
    """Each folder's live verdict from core's health cache (None: not cached, or changed)."""
    verdicts = {}
    for folder in folders:
        task.check()
        verdicts[folder] = health.cached_verdict(folder)
    return verdicts


def live_verdicts(folders: list[Path], task: Task) -> dict[Path, str]:
    """Each folder's live verdict; a model that cannot be read is ``unreadable``."""
    verdicts = {}
    for index, folder in enumerate(folders):
        task.progress("Checking model health", index, len(folders))
        try:
            verdicts[folder] = health.check_live(folder, task)
        except CancelledError:
            raise
        except FsprecError:
            verdicts[folder] = health.UNREADABLE
    task.progress("Checking model health", len(folders), len(folders))
    return verdicts

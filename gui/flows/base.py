"""What every flow shares: the window's context, the state its actions follow, the outcome rule."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QStyle, QTabWidget, QWidget

from fsprec.core.modelfile import ModelFolder

from ..dialogs import show_failure, show_refusal
from ..jobs import InUse
from ..job_status import JobStatus
from ..latest_job import LatestJob
from ..outcomes import Failed, Outcome, Refused
from ..prefs import AppSettings
from ..workers import JobRunner


@dataclass(frozen=True)
class WindowState:
    """What the flows' actions depend on. A new window-wide condition (a folder in use by
    Faceswap, say) is a new field here, read by the flows it concerns."""

    folder: ModelFolder | None
    busy: bool
    in_use: InUse | None = None  # Faceswap trains the open model, or another fsprec writes it

    @property
    def idle(self) -> bool:
        """No foreground job is running."""
        return not self.busy

    @property
    def training(self) -> bool:
        """Faceswap is training the open model: nothing may rewrite it."""
        return self.in_use is not None and self.in_use.training


@dataclass
class FlowContext:
    """The window as the flows see it."""

    window: QMainWindow
    settings: AppSettings
    runner: JobRunner
    status: JobStatus
    log: Callable[[str], None]
    model: Callable[[], ModelFolder | None]
    refresh: Callable[[], None]  # re-read the WindowState into every flow's actions
    tabs: QTabWidget  # the views of the open model; the first is the Layers tab

    def model_path(self) -> Path | None:
        """The open model's folder."""
        folder = self.model()
        return folder.path if folder else None

    def job(self, *, foreground: bool = True, model_bound: bool = True) -> LatestJob:
        """A job slot (latest job wins): foreground jobs show in the status strip and run one
        at a time; a model-bound slot drops outcomes once another model is open."""
        return LatestJob(self.runner, self.status if foreground else None,
                         self.model_path if model_bound else None, self.window)

    def action(self, text: str, slot: Callable[[], None], shortcut: str | None = None,
               icon: QStyle.StandardPixmap | None = None, tip: str = "") -> QAction:
        """A window action that calls ``slot``."""
        action = QAction(text, self.window)
        action.triggered.connect(slot)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            action.setIcon(self.window.style().standardIcon(icon))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        return action

    def show_tab(self, view: QWidget, title: str) -> None:
        """Show a flow's own view as a tab beside the Layers tab (added on first use)."""
        if self.tabs.indexOf(view) < 0:
            self.tabs.addTab(view, title)
        self.tabs.setCurrentWidget(view)

    def close_tab(self, view: QWidget) -> None:
        """Take a flow's view out of the tabs (it is kept for the next use)."""
        if self.tabs.indexOf(view) >= 0:
            self.tabs.removeTab(self.tabs.indexOf(view))

    def show_layers(self) -> None:
        """Bring the Layers tab to the front."""
        self.tabs.setCurrentIndex(0)

    def report(self, outcome: Outcome, title: str = "fsprec", prefix: str = "") -> None:
        """Tell the user that a job ended badly: a refusal's sentence in a dialog titled
        ``title`` (logged after ``prefix``), or an unexpected failure with its details.
        Done and Cancelled need no words here (the strip logs a cancel)."""
        if isinstance(outcome, Refused):
            self.log(prefix + outcome.message)
            show_refusal(self.window, title, outcome.message)
        elif isinstance(outcome, Failed):
            self.log(outcome.message)
            show_failure(self.window, outcome)


TRAINING_TIP = "Faceswap is training this model; stop training first"


class Flow(QObject):
    """A controller for one thing a user does: its actions, its job slots, its handlers."""

    def __init__(self, ctx: FlowContext) -> None:
        super().__init__(ctx.window)
        self.ctx = ctx

    def refresh(self, state: WindowState) -> None:
        """Enable this flow's actions for ``state`` (a flow without actions keeps this)."""

"""The main window, a shell: it lays out the panels, menus and toolbar and wires the flows.

What happens when the user does something lives in one flow per thing (``gui/flows/``): each
owns its actions, its job slots (:class:`~.latest_job.LatestJob`: the latest job wins) and
the handling of its jobs' typed outcomes. The window only passes them the shared
:class:`~.flows.base.FlowContext` and refreshes their actions from one :class:`WindowState`.
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QStandardPaths, Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (QDialog, QDockWidget, QMainWindow, QSplitter, QStackedWidget,
                               QTabWidget)

from fsprec.core.modelfile import ModelFolder

from .browser import ModelBrowser
from .details import DetailsPanel
from .dialogs import SettingsDialog, show_about
from .flows.base import Flow, FlowContext, WindowState
from .flows.browse import BrowseFlow
from .flows.health import HealthBadges, HealthFlow
from .flows.in_use import InUseFlow
from .flows.model import ModelFlow
from .flows.recovery import RecoveryFlow
from .flows.switch import NOTHING_CHANGED, SwitchFlow
from .flows.validate import ValidateFlow
from .job_status import JobStatus
from .layer_panel import LayerPanel
from .prefs import AppSettings
from .theme import app_icon
from .widgets import LogView, WelcomePage
from .workers import JobRunner


class MainWindow(QMainWindow):
    """Browse model folders, inspect layers, switch precision with one click."""

    modelShown = Signal(object)  # ModelFolder, once its layer tree is on screen
    paramsShown = Signal()  # parameter counts filled in

    def __init__(self, settings: AppSettings | None = None, data_dir: Path | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        data_dir = data_dir or Path(QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.AppDataLocation))
        self.runner = JobRunner(self)
        self.job_status = JobStatus()
        self.setWindowTitle("fsprec")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self._build_panels()
        self.ctx = ctx = FlowContext(self, self.settings, self.runner, self.job_status,
                                     self.log, lambda: self.folder, self.refresh, self.views)
        self.models = ModelFlow(ctx, self.panel, self.details, data_dir)
        self.browsing = BrowseFlow(ctx, self.browser, self.models.open_path)
        self.switching = SwitchFlow(ctx, self.panel)
        self.validation = ValidateFlow(ctx, self.panel)
        self.recovery = RecoveryFlow(ctx, self.panel)
        self.health = HealthFlow(ctx)
        self.badges = HealthBadges(ctx, self.browser)
        self.in_use = InUseFlow(ctx, self.panel)
        self.flows: list[Flow] = [self.models, self.browsing, self.switching, self.validation,
                                  self.recovery, self.health, self.badges, self.in_use]
        # Entry points under the window's own names (the app's command line, the tests).
        self.open_path, self.open_demo = self.models.open_path, self.models.open_demo
        self.validate, self.validation_view = self.validation.validate, self.validation.view
        self.switch_choice = self.switching.choice
        self.open_action, self.reload_action = self.models.open_action, self.models.reload_action
        self.validate_action = self.validation.action
        self.health_action, self.health_view = self.health.action, self.health.view
        self._wire()
        self._build_menus()
        self._restore_window()
        self.refresh()
        root = self.settings.models_root
        if root and Path(root).is_dir():
            self.browsing.set_root(Path(root))
        elif not root:  # a first start: say what to do, and look for Faceswap's models
            self.welcome.set_first_start(True)
            self.browsing.look_for_setup()

    @property
    def folder(self) -> ModelFolder | None:
        """The open model."""
        return self.models.folder

    def _build_panels(self) -> None:
        self.browser = ModelBrowser()
        self.panel = LayerPanel()
        self.welcome = WelcomePage()
        self.center = QStackedWidget()
        self.center.addWidget(self.welcome)
        self.center.addWidget(self.panel)
        # Views of the open model are tabs here; the validation view joins the Layers tab.
        self.views = QTabWidget()
        self.views.setTabBarAutoHide(True)
        self.views.setDocumentMode(True)
        self.views.addTab(self.center, "Layers")
        self.details = DetailsPanel()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        for index, (widget, stretch) in enumerate(
                ((self.browser, 0), (self.views, 1), (self.details, 0))):
            splitter.addWidget(widget)
            splitter.setStretchFactor(index, stretch)
        splitter.setSizes([250, 810, 260])
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        self.setCentralWidget(splitter)
        self.log_view = LogView()
        dock = QDockWidget("Log", self)
        dock.setObjectName("log")
        dock.setWidget(self.log_view)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.log_dock = dock
        self.statusBar().addPermanentWidget(self.job_status)

    def _wire(self) -> None:
        """Connect the flows to each other and to the window."""
        models = self.models
        self.welcome.openRequested.connect(models.choose)
        self.welcome.demoRequested.connect(models.open_demo)
        self.welcome.useRequested.connect(self.use_models_folder)
        self.browsing.setupFound.connect(self.welcome.offer)
        models.foundModels.connect(self.browsing.show_found)
        for listener in (self.browsing.model_shown, self.validation.model_shown,
                         self.recovery.model_shown, self.health.model_shown,
                         self.in_use.model_shown, self._model_shown,
                         self.modelShown):
            models.shown.connect(listener)
        models.paramsShown.connect(self.paramsShown)
        self.health.verdictChanged.connect(self.badges.show)
        self.health.switchRequested.connect(self.switch_as_advised)
        for flow in (self.switching, self.recovery, self.health):  # the model on disk changed
            flow.changed.connect(models.reload)
            flow.changed.connect(self.browsing.rescan)
        self.job_status.busyChanged.connect(self.refresh)
        self.job_status.declined.connect(self.log)
        self.job_status.cancelled.connect(
            lambda title: self.log(f"{title}: cancelled. {NOTHING_CHANGED}"))

    def _build_menus(self) -> None:
        models, recovery, make = self.models, self.recovery, self.ctx.action
        self.settings_action = make("&Settings…", self.edit_settings, "Ctrl+,",
                                    tip="Faceswap folder, policy, validation options.")
        menu = self.menuBar().addMenu("&File")
        menu.addAction(models.open_action)
        menu.addMenu(self.browsing.recent_menu)
        menu.addAction(self.browsing.root_action)
        menu.addSeparator()
        menu.addAction(self.settings_action)
        menu.addSeparator()
        menu.addAction(make("&Quit", self.close, "Ctrl+Q"))
        menu = self.menuBar().addMenu("&Model")
        for action in (self.switching.action, self.switching.consistent_action,
                       self.validation.action, recovery.nan_action,
                       recovery.restore_action, models.reveal_action, models.reload_action):
            menu.addAction(action)
        menu = self.menuBar().addMenu("&Health")
        menu.addAction(self.health.action)
        menu = self.menuBar().addMenu("&View")
        menu.addAction(self.log_dock.toggleViewAction())
        menu = self.menuBar().addMenu("&Help")
        menu.addAction(models.demo_action)
        menu.addAction(make("&About fsprec", self.about))
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (models.open_action, self.validation.action, self.health.action,
                       recovery.nan_action, recovery.restore_action, models.reveal_action):
            toolbar.addAction(action)

    def _restore_window(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1320, 820)
        if state is not None:
            self.restoreState(state)

    def log(self, message: str) -> None:
        """Add a line to the log and show it in the status bar."""
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')}  {message}")
        self.statusBar().showMessage(message, 8000)

    def refresh(self) -> None:
        """Enable every flow's actions for the window's state now."""
        state = WindowState(self.folder, self.job_status.busy, self.in_use.current)
        for flow in self.flows:
            flow.refresh(state)

    def _model_shown(self, folder: ModelFolder) -> None:
        self.center.setCurrentWidget(self.panel)
        self.setWindowTitle(f"{folder.plugin} — {folder.path.name} — fsprec")
        self.refresh()

    def use_models_folder(self, folder: Path) -> None:
        """Take the models folder a first start found (the user said so)."""
        self.welcome.offer(None)
        self.welcome.set_first_start(False)
        self.browsing.set_root(folder)
        self.log(f"Models folder: {folder}.")

    def switch_as_advised(self, target: str, pins: list[str]) -> None:
        """The Health tab's advice: tick ``pins`` (the model's own for a switch to float32),
        show the Layers tab with its switch button, and start the switch if it goes to
        ``target`` (it asks for confirmation, as ever)."""
        if self.folder is None:
            return
        self.panel.model.set_pins(pins or self.folder.pinned)
        self.ctx.show_layers()
        choice = self.switching.choice()
        if choice.target != target:
            self.log(f"The switch now goes to {choice.target or 'nowhere'}, not {target}: "
                     "check the Keep float32 boxes and the switch button.")
            return
        self.switching.switch()

    def edit_settings(self) -> None:
        """Show the settings dialog."""
        if SettingsDialog(self.settings, self).exec() == QDialog.DialogCode.Accepted:
            self.refresh()

    def about(self) -> None:
        """Show the About box."""
        show_about(self, self.settings, self.validation.last_runtime)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # Qt name
        if self._dropped_folder(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # Qt name
        folder = self._dropped_folder(event)
        if folder is not None:
            event.acceptProposedAction()
            self.open_path(folder)

    @staticmethod
    def _dropped_folder(event: QDragEnterEvent | QDropEvent) -> Path | None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if len(urls) == 1 and urls[0].isLocalFile():
            path = Path(urls[0].toLocalFile())
            return path if path.is_dir() else None
        return None

    def closeEvent(self, event: QCloseEvent) -> None:  # Qt name
        """Remember the window, cancel running jobs and wait for their threads (whatever they
        still deliver is dropped: the runner no longer owns them)."""
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.in_use.stop()
        self.runner.shutdown()
        super().closeEvent(event)

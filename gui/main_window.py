"""The main window: model browser, layer tree, details, log; it starts core jobs on workers."""
from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QStandardPaths, Qt, QUrl, Signal, Slot
from PySide6.QtGui import (QAction, QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent,
                           QFont, QKeySequence)
from PySide6.QtWidgets import (QDialog, QDockWidget, QFileDialog, QHBoxLayout, QLabel,
                               QMainWindow, QMessageBox, QPushButton, QSplitter,
                               QStackedWidget, QStyle, QTabWidget, QVBoxLayout, QWidget)

from fsprec.core import convert, nanscan, restore, scan
from fsprec.core.layers import MIXED_POLICIES, Layer
from fsprec.core.modelfile import ModelFolder
from fsprec.core.nanscan import NanReport
from fsprec.core.switch import SwitchChoice, switch_choice
from fsprec.core.validate import Options

from . import jobs
from .browser import ModelBrowser
from .details import DetailsPanel
from .dialogs import ConversionDialog, SettingsDialog, show_about, show_nan_report
from .job_status import JobStatus
from .layer_panel import LayerPanel
from .prefs import AppSettings
from .theme import PRECISION_LABELS, app_icon
from .widgets import LogView
from .workers import Job, JobFunction, JobRunner

if TYPE_CHECKING:
    from .validation_view import ValidationView

NOTHING_CHANGED = "Nothing was changed."
_DEVICE_WORDS = {"auto": "the GPU if there is one", "cpu": "the CPU", "gpu": "the GPU"}

class MainWindow(QMainWindow):
    """Browse model folders, inspect layers, switch precision with one click."""

    modelShown = Signal(object)  # ModelFolder, once its layer tree is on screen
    paramsShown = Signal()  # parameter counts filled in

    def __init__(self, settings: AppSettings | None = None, data_dir: Path | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.data_dir = data_dir or Path(QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.AppDataLocation))
        self.runner = JobRunner(self)
        self.folder: ModelFolder | None = None
        self._params_job: Job | None = None
        self._scan_job: Job | None = None
        self._params: dict[str, int] = {}
        self._can_restore = False
        self._opening: Path | None = None
        self._scan_root: Path | None = None
        self._validation: ValidationView | None = None

        self.setWindowTitle("fsprec")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self._build_widgets()
        self._build_actions()
        self._build_menus()
        self._build_status_bar()
        self._restore_window()
        self._update_actions()
        root = self.settings.models_root
        if root and Path(root).is_dir():
            self.set_models_root(Path(root))

    # Layout ----------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.browser = ModelBrowser()
        self.browser.chooseRootRequested.connect(self.choose_models_root)
        self.browser.rescanRequested.connect(self.rescan)
        self.browser.modelActivated.connect(self.open_path)

        self.panel = LayerPanel()
        self.panel.switchRequested.connect(self.switch_precision)
        self.panel.layerSelected.connect(self._layer_selected)
        self.panel.model.pinsChanged.connect(self._update_switch)
        self.center = QStackedWidget()
        self.center.addWidget(self._welcome_page())
        self.center.addWidget(self.panel)
        # Views of the open model are tabs here; the validation view joins the Layers tab.
        self.views = QTabWidget()
        self.views.setTabBarAutoHide(True)
        self.views.setDocumentMode(True)
        self.views.addTab(self.center, "Layers")

        self.details = DetailsPanel()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.browser)
        splitter.addWidget(self.views)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setStretchFactor(2, 0)
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

    def _welcome_page(self) -> QWidget:
        title = QLabel("Open a Faceswap model folder")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setWeight(QFont.Weight.DemiBold)
        title.setFont(font)
        text = QLabel("fsprec shows every layer of a Faceswap model with its dtype policy, "
                      "marks the layers that may run in mixed precision, and switches the "
                      "saved model between float32 and mixed precision in one click. Weights "
                      "are never changed, and a backup is kept.\n\nPick a model in the list on "
                      "the left, open a folder, or drop one onto this window.")
        text.setWordWrap(True)
        open_button = QPushButton("Open model folder…")
        open_button.clicked.connect(self.choose_model)
        demo_button = QPushButton("Open the demo model")
        demo_button.clicked.connect(self.open_demo)
        buttons = QHBoxLayout()
        buttons.addWidget(open_button)
        buttons.addWidget(demo_button)
        buttons.addStretch(1)
        column = QWidget()
        column.setMaximumWidth(560)
        content = QVBoxLayout(column)
        content.addWidget(title)
        content.addWidget(text)
        content.addLayout(buttons)
        page = QWidget()
        rows = QVBoxLayout(page)
        rows.addStretch(1)
        middle = QHBoxLayout()
        middle.addStretch(1)
        middle.addWidget(column, 4)
        middle.addStretch(1)
        rows.addLayout(middle)
        rows.addStretch(2)
        return page

    def _action(self, text: str, slot: Callable[[], None], shortcut: str | None = None,
                icon: QStyle.StandardPixmap | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        action.triggered.connect(slot)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        return action

    def _build_actions(self) -> None:
        pixmap = QStyle.StandardPixmap
        self.open_action = self._action("&Open Model Folder…", self.choose_model, "Ctrl+O",
                                         pixmap.SP_DirOpenIcon, "Open a Faceswap model folder.")
        self.root_action = self._action("Choose &Models Folder…", self.choose_models_root,
                                        tip="Choose the folder the model browser lists.")
        self.quit_action = self._action("&Quit", self.close, "Ctrl+Q")
        self.switch_action = self._action("&Switch Precision…", self.switch_precision, "Ctrl+T")
        self.validate_action = self._action(
            "&Validate Mixed Precision", self.validate, "Ctrl+Shift+V", pixmap.SP_MediaPlay,
            "Run the model in float32 and in mixed precision and compare (Settings: batch, "
            "steps, device, backend).")
        self.nan_action = self._action("Scan Weights for &NaN/Inf", self.scan_nan,
                                       icon=pixmap.SP_FileDialogContentsView,
                                       tip="Check every weight of the model for NaN and Inf.")
        self.restore_action = self._action("&Restore from Backup…", self.restore_backup,
                                           icon=pixmap.SP_BrowserReload,
                                           tip="Put back the model saved in its .bk backup.")
        self.reveal_action = self._action("Show in &File Manager", self.reveal_folder,
                                          icon=pixmap.SP_DirIcon,
                                          tip="Open the model folder in the file manager.")
        self.reload_action = self._action("Re&load Model", self.reload, "F5")
        self.settings_action = self._action("&Settings…", self.edit_settings, "Ctrl+,",
                                            tip="Faceswap folder, policy, validation options.")
        self.demo_action = self._action("Open &Demo Model", self.open_demo,
                                        tip="A small Faceswap model to try fsprec on.")
        self.about_action = self._action("&About fsprec", self.about)

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        menu.addAction(self.open_action)
        self.recent_menu = menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        menu.addAction(self.root_action)
        menu.addSeparator()
        menu.addAction(self.settings_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        menu = self.menuBar().addMenu("&Model")
        for action in (self.switch_action, self.validate_action, self.nan_action,
                       self.restore_action, self.reveal_action, self.reload_action):
            menu.addAction(action)
        menu = self.menuBar().addMenu("&View")
        menu.addAction(self.log_dock.toggleViewAction())
        menu = self.menuBar().addMenu("&Help")
        menu.addAction(self.demo_action)
        menu.addAction(self.about_action)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.open_action, self.validate_action, self.nan_action,
                       self.restore_action, self.reveal_action):
            toolbar.addAction(action)

    def _build_status_bar(self) -> None:
        self.job_status = JobStatus(self.runner)
        self.job_status.busyChanged.connect(self._busy_changed)
        self.job_status.cancelled.connect(self._job_cancelled)
        self.statusBar().addPermanentWidget(self.job_status)

    def _restore_window(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1320, 820)
        if state is not None:
            self.restoreState(state)

    # Log -------------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        """Add a line to the log and show it in the status bar."""
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')}  {message}")
        self.statusBar().showMessage(message, 8000)

    # Jobs ------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a foreground job (open, switch, validate, scan, restore) runs."""
        return self.job_status.busy

    def _start(self, title: str, fn: JobFunction, on_finished: Callable[[Any], None],
               on_failed: Callable[[str], None] | None = None) -> bool:
        """Run ``fn(task)`` as the foreground job, with progress in the status bar."""
        if self.job_status.start(title, fn, on_finished, on_failed or self._show_failure):
            return True
        self.log(f"Busy with {self.job_status.title.lower()}; try again when it ends.")
        return False

    def _busy_changed(self, busy: bool) -> None:
        if not busy:
            self._opening = None
        self._update_actions()

    def _job_cancelled(self, title: str) -> None:
        self.log(f"{title}: cancelled. {NOTHING_CHANGED}")

    def _show_failure(self, message: str) -> None:
        self.log(message)
        QMessageBox.critical(self, "fsprec", message)

    # Opening models --------------------------------------------------------------------------
    def choose_model(self) -> None:
        """Ask for a model folder and open it."""
        start = str(self.folder.path.parent if self.folder else self.settings.models_root)
        folder = QFileDialog.getExistingDirectory(self, "Open a Faceswap model folder", start)
        if folder:
            self.open_path(Path(folder))

    def open_path(self, path: Path) -> None:
        """Open a model folder; a folder that only holds model folders goes to the browser.

        Asking again for the model that is open or being opened does nothing (Reload does).
        """
        path = Path(path).expanduser().resolve()
        if path == self._opening or (self.folder is not None and self.folder.path == path):
            return
        if self._start(f"Opening {path.name}", partial(jobs.open_or_browse, path),
                       self._opened, self._open_failed):
            self._opening = path

    def reload(self) -> None:
        """Read the open model again from disk."""
        if self.folder is not None:
            self._start(f"Opening {self.folder.path.name}",
                        partial(jobs.open_folder, self.folder.path), self._opened,
                        self._open_failed)

    def open_demo(self) -> None:
        """Open the demo model, writing it into the app's data folder on first use."""
        self._start("Opening the demo model", partial(jobs.open_demo, self.data_dir),
                    self._opened, self._open_failed)

    def _open_failed(self, message: str) -> None:
        self.log(f"Cannot open: {message}")
        QMessageBox.critical(self, "Cannot open the model", message)

    def _opened(self, result: jobs.Opened | jobs.Browse) -> None:
        if isinstance(result, jobs.Browse):
            self.set_models_root(result.root, entries=result.entries)
            self.log(f"{result.root} holds {len(result.entries)} model folder(s); "
                     "they are listed on the left.")
            return
        folder = result.folder
        if self.folder is not None and self.folder.path != folder.path:
            self._close_validation()  # its result is about the other model
        self.folder = folder
        self._params = {}
        self.panel.show_model(folder.plugin, str(folder.path), folder.precision, result.tree,
                              result.pins)
        self.center.setCurrentWidget(self.panel)
        self.details.show_model(folder)
        self.details.show_layer(None, None)
        self.setWindowTitle(f"{folder.plugin} — {folder.path.name} — fsprec")
        self.settings.add_recent(folder.path)
        self.browser.set_current(folder.path)
        self._can_restore = restore.can_restore(folder.path)
        self._update_actions()
        eligible = len(folder.eligible)
        self.log(f"Opened {folder.model_file}: {PRECISION_LABELS.get(folder.precision)}, "
                 f"{eligible} eligible layer(s).")
        if folder.state_problem:
            self.log(f"Warning: {folder.state_problem}")
        self._count_params(folder)
        self.modelShown.emit(folder)

    def _count_params(self, folder: ModelFolder) -> None:
        if self._params_job is not None:
            self._params_job.cancel()
        job = Job("Counting parameters", partial(jobs.layer_params, folder))
        job.finished.connect(self._params_counted)
        job.failed.connect(self._params_failed)
        self._params_job = job
        self.runner.start(job)

    @Slot(object)
    def _params_counted(self, params: dict[str, int]) -> None:
        if self.sender() is not self._params_job:
            return
        self._params_job = None
        self._params = params
        self.panel.set_params(params)
        self._layer_selected(self.panel.selected_layer())
        self.paramsShown.emit()

    @Slot(str)
    def _params_failed(self, message: str) -> None:
        if self.sender() is self._params_job:
            self._params_job = None
            self.log(f"Parameter counts unavailable: {message}")

    def _layer_selected(self, layer: Layer | None) -> None:
        params = self._params.get(layer.path, 0) if layer and self._params else None
        self.details.show_layer(layer, params)

    # Model browser ---------------------------------------------------------------------------
    def choose_models_root(self) -> None:
        """Ask for the folder whose model folders the browser lists."""
        folder = QFileDialog.getExistingDirectory(self, "Folder with your Faceswap models",
                                                  self.settings.models_root)
        if folder:
            self.set_models_root(Path(folder))

    def set_models_root(self, root: Path, entries: list[scan.ScanEntry] | None = None) -> None:
        """List the model folders under ``root`` (scanned on a worker unless given)."""
        self.settings.models_root = str(root)
        self.browser.set_root(root)
        if entries is not None:
            self.browser.set_entries(root, entries)
            self.browser.set_current(self.folder.path if self.folder else None)
            return
        if self._scan_job is not None:
            self._scan_job.cancel()
        job = Job("Scanning for models", partial(scan.scan, root))
        job.finished.connect(self._scanned)
        job.failed.connect(self._scan_failed)
        self._scan_job = job
        self._scan_root = root
        self.runner.start(job)

    def rescan(self) -> None:
        """Scan the models folder again."""
        if self.settings.models_root:
            self.set_models_root(Path(self.settings.models_root))

    @Slot(object)
    def _scanned(self, entries: list[scan.ScanEntry]) -> None:
        if self.sender() is not self._scan_job or self._scan_root is None:
            return
        self._scan_job = None
        self.browser.set_entries(self._scan_root, entries)
        self.browser.set_current(self.folder.path if self.folder else None)
        self.log(f"Found {len(entries)} model folder(s) under {self._scan_root}.")

    @Slot(str)
    def _scan_failed(self, message: str) -> None:
        if self.sender() is self._scan_job and self._scan_root is not None:
            self._scan_job = None
            self.browser.set_entries(self._scan_root, [])
            self.log(f"Scan failed: {message}")

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = [Path(p) for p in self.settings.recent_models if Path(p).is_dir()]
        for path in recent:
            action = self.recent_menu.addAction(str(path))
            action.setData(str(path))
            action.triggered.connect(self._open_recent)
        if not recent:
            self.recent_menu.addAction("No recent models").setEnabled(False)
            return
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear Recent").triggered.connect(
            self.settings.clear_recent)

    @Slot()
    def _open_recent(self) -> None:
        action = self.sender()
        if isinstance(action, QAction):
            self.open_path(Path(action.data()))

    # Switching precision ---------------------------------------------------------------------
    def switch_choice(self) -> SwitchChoice:
        """What the switch button does now (the rule is core's :func:`switch_choice`)."""
        return switch_choice(self.folder, self.panel.model.pins() if self.folder else (),
                             self.settings.mixed_policy)

    def _update_switch(self) -> None:
        choice = self.switch_choice()
        enabled = choice.possible and not self.busy
        self.panel.set_switch(choice.label, choice.explanation, enabled)
        self.switch_action.setEnabled(enabled)

    def switch_precision(self) -> None:
        """Plan the switch on a worker, then confirm it (see :meth:`_confirm_switch`)."""
        if self.folder is None or self.busy:
            return
        choice = self.switch_choice()
        target, pins = choice.target, list(choice.pins)
        self._start("Checking the switch",
                    partial(jobs.plan_switch, self.folder.path, target, pins,
                            self.settings.faceswap_folder),
                    self._confirm_switch)

    def _confirm_switch(self, proposal: jobs.Proposal) -> None:
        plan = proposal.plan
        if plan.nothing_to_do:
            self.log(" ".join(plan.summary()))
            QMessageBox.information(self, "Nothing to change", "\n".join(plan.summary()))
            return
        dialog = ConversionDialog(plan, proposal.notes, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            self.log("Switch cancelled; nothing was changed.")
            return
        self._start("Switching precision", partial(convert.run, dialog.accepted_plan()),
                    self._switched, self._switch_failed)

    def _switched(self, result: convert.Result) -> None:
        for message in result.messages:
            self.log(message)
        if result.backups:
            self.log("Backups: " + ", ".join(p.name for p in result.backups))
        self._reopen_after_change()

    def _switch_failed(self, message: str) -> None:
        text = message if NOTHING_CHANGED.lower() in message.lower() \
            else f"{message}\n\n{NOTHING_CHANGED}"
        self.log(f"Switch failed: {message}")
        QMessageBox.critical(self, "The switch failed", text)

    def _reopen_after_change(self) -> None:
        if self.folder is not None:
            self._start(f"Opening {self.folder.path.name}",
                        partial(jobs.open_folder, self.folder.path), self._opened,
                        self._open_failed)
        self.rescan()

    # Validation ------------------------------------------------------------------------------
    def validation_view(self) -> ValidationView:
        """The Validation tab's view, made on first use (pyqtgraph loads only then)."""
        if self._validation is None:
            from .validation_view import ValidationView
            view = ValidationView(self.validate_action)
            view.layerClicked.connect(self.show_layer)
            view.applyPinsRequested.connect(self.apply_pins)
            view.cancelRequested.connect(self.job_status.cancel)
            self._validation = view
        return self._validation

    def validate(self) -> None:
        """Validate the open model in a child process (float32 against its mixed policy, with
        the ticked pins kept float32); progress in the status bar and the Validation tab."""
        folder = self.folder
        if folder is None or self.busy:
            return
        settings = self.settings
        policy = folder.precision if folder.precision in MIXED_POLICIES \
            else settings.mixed_policy
        options = Options(policy, settings.validation_batch, settings.validation_steps,
                          pins=self.panel.model.pins())
        job = self.job_status.start(
            "Validating", partial(jobs.validate, folder.path, options, settings.device,
                                  settings.keras_backend),
            self._validated, self._validation_failed)
        if job is None:
            self.log(f"Busy with {self.job_status.title.lower()}; try again when it ends.")
            return
        view = self.validation_view()
        job.progress.connect(view.show_progress)
        job.cancelled.connect(view.show_stopped)
        description = (f"{folder.plugin}: float32 against {PRECISION_LABELS[policy]} on "
                       f"{_DEVICE_WORDS[settings.device]}, {settings.keras_backend} backend, "
                       f"batch {options.batch}, {options.steps} training steps.")
        view.show_running(description)
        self._show_validation_tab()
        self.log(f"Validating {description}")

    def _show_validation_tab(self) -> None:
        view = self.validation_view()
        if self.views.indexOf(view) < 0:
            self.views.addTab(view, "Validation")
        self.views.setCurrentWidget(view)

    def _close_validation(self) -> None:
        if self._validation is not None:
            self._validation.clear()
            self.views.removeTab(self.views.indexOf(self._validation))

    def _validated(self, result: dict[str, Any]) -> None:
        self.validation_view().show_result(result)
        self._show_validation_tab()
        self.log(f"Validation of {Path(result['model']['folder']).name}: "
                 f"{result['verdict']['text']}")

    def _validation_failed(self, message: str) -> None:
        self.validation_view().show_stopped("Validation failed.")
        self.log(f"Validation failed: {message}")
        QMessageBox.critical(self, "Validation failed", message)

    def show_layer(self, path: str) -> None:
        """Show the Layers tab with the layer at ``path`` selected."""
        self.views.setCurrentWidget(self.center)
        if not self.panel.select_path(path):
            self.log(f"{path} is not a layer of the open model.")

    def apply_pins(self, pins: list[str]) -> None:
        """Tick Keep float32 for exactly ``pins`` and show them in the Layers tab."""
        self.panel.model.set_pins(pins)
        self.views.setCurrentWidget(self.center)
        self.log(f"Keeping {', '.join(pins)} in float32, as validation suggests; "
                 "the switch button converts with them.")

    # Other model actions ---------------------------------------------------------------------
    def scan_nan(self) -> None:
        """Scan every weight for NaN and Inf on a worker."""
        if self.folder is not None:
            self._start("Scanning weights", partial(nanscan.scan_weights, self.folder.path),
                        self._nan_scanned)

    def _nan_scanned(self, report: NanReport) -> None:
        self.panel.model.set_damaged({f.layer: f"{f.nan:,} NaN and {f.inf:,} Inf values"
                                      for f in report.bad_layers})
        self.log(show_nan_report(self, report))

    def restore_backup(self) -> None:
        """Restore the model from its .bk backup after confirmation."""
        if self.folder is None or not self._can_restore:
            return
        answer = QMessageBox.question(
            self, "Restore from backup",
            f"Restore {self.folder.model_file.name} from its backup?\n\nThe current model "
            f"files are moved into an archive folder inside {self.folder.path.name}; "
            "nothing is deleted.")
        if answer == QMessageBox.StandardButton.Yes:
            self._start("Restoring from backup", partial(restore.restore, self.folder.path),
                        self._restored)

    def _restored(self, result: restore.RestoreResult) -> None:
        names = ", ".join(p.name for p in result.restored)
        self.log(f"Restored {names}; the previous files are in {result.archive_dir}.")
        self._reopen_after_change()

    def reveal_folder(self) -> None:
        """Open the model folder in the system file manager."""
        if self.folder is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.folder.path)))

    # Settings and help -----------------------------------------------------------------------
    def edit_settings(self) -> None:
        """Show the settings dialog."""
        if SettingsDialog(self.settings, self).exec() == QDialog.DialogCode.Accepted:
            self._update_switch()

    def about(self) -> None:
        """Show the About box."""
        show_about(self, self.settings)

    def _update_actions(self) -> None:
        has_model = self.folder is not None
        idle = not self.busy
        for action in (self.open_action, self.demo_action, self.root_action):
            action.setEnabled(idle)
        self.nan_action.setEnabled(has_model and idle)
        self.validate_action.setEnabled(idle and bool(self.folder and self.folder.eligible))
        self.reload_action.setEnabled(has_model and idle)
        self.reveal_action.setEnabled(has_model)
        self.restore_action.setEnabled(has_model and idle and self._can_restore)
        self._update_switch()

    # Window events ---------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt name)
        if self._dropped_folder(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt name)
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

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        """Remember the window, cancel running jobs and wait for their threads."""
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.runner.shutdown()
        # Results still queued from the cancelled jobs are stale now: drop them.
        self.job_status.forget()
        self._params_job = self._scan_job = None
        super().closeEvent(event)

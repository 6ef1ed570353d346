"""Finding models: the models folder the browser lists, its scan, and the recent models."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QMenu

from fsprec.core import scan
from fsprec.core.modelfile import ModelFolder

from .. import jobs
from ..browser import ModelBrowser
from ..outcomes import Done, Outcome, Refused
from .base import Flow, FlowContext, WindowState


class BrowseFlow(Flow):
    """Keeps the model browser's list of the models folder, scanned on a worker; on a first
    start, looks for Faceswap and its models folder to offer."""

    setupFound = Signal(object)  # Path: a models folder found on a first start, to offer

    def __init__(self, ctx: FlowContext, browser: ModelBrowser,
                 open_path: Callable[[Path], None]) -> None:
        super().__init__(ctx)
        self.browser, self.open_path = browser, open_path
        self.scanning = ctx.job(foreground=False, model_bound=False)
        self.looking = ctx.job(foreground=False, model_bound=False)
        self.root_action = ctx.action("Choose &Models Folder…", self.choose_root,
                                      tip="Choose the folder the model browser lists.")
        self.recent_menu = QMenu("Open &Recent", ctx.window)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        browser.chooseRootRequested.connect(self.choose_root)
        browser.rescanRequested.connect(self.rescan)
        browser.modelActivated.connect(open_path)

    def refresh(self, state: WindowState) -> None:
        self.root_action.setEnabled(state.idle)

    def choose_root(self) -> None:
        """Ask for the folder whose model folders the browser lists."""
        folder = QFileDialog.getExistingDirectory(
            self.ctx.window, "Folder with your Faceswap models", self.ctx.settings.models_root)
        if folder:
            self.set_root(Path(folder))

    def set_root(self, root: Path) -> None:
        """List the model folders under ``root``, scanned on a worker."""
        self.ctx.settings.models_root = str(root)
        self.browser.set_root(root)
        self.scanning.start("Scanning for models", partial(scan.scan, root),
                            partial(self._scanned, root))

    def look_for_setup(self, home: Path | None = None) -> None:
        """First start: look for Faceswap under ``home`` (the user's) and its models folder,
        on a worker. A Faceswap folder found fills the empty Faceswap-folder setting; a models
        folder found is offered (:attr:`setupFound`), never chosen silently."""
        self.looking.start("Looking for Faceswap",
                           partial(jobs.find_setup, home or Path.home()), self._setup_found)

    def _setup_found(self, outcome: Outcome) -> None:
        if not isinstance(outcome, Done):
            return  # nothing found is no news on a first start
        setup: jobs.Setup = outcome.value
        if setup.faceswap is not None and not self.ctx.settings.faceswap_folder:
            self.ctx.settings.faceswap_folder = str(setup.faceswap)
            self.ctx.log(f"Found Faceswap in {setup.faceswap}; its train.ini is checked when "
                         "you switch a model (Settings to change it).")
        if setup.models is not None and not self.ctx.settings.models_root:
            self.setupFound.emit(setup.models)

    def rescan(self) -> None:
        """Scan the models folder again."""
        if self.ctx.settings.models_root:
            self.set_root(Path(self.ctx.settings.models_root))

    def show_found(self, found: jobs.Browse) -> None:
        """List the model folders a folder the user opened holds (already scanned)."""
        self.scanning.cancel()
        self.ctx.settings.models_root = str(found.root)
        self.browser.set_root(found.root)
        self._list(found.root, found.entries)
        self.ctx.log(f"{found.root} holds {len(found.entries)} model folder(s); "
                     "they are listed on the left.")

    def model_shown(self, folder: ModelFolder) -> None:
        """Mark the open model in the list."""
        self.browser.set_current(folder.path)

    def _list(self, root: Path, entries: list[scan.ScanEntry]) -> None:
        self.browser.set_entries(root, entries)
        self.browser.set_current(self.ctx.model_path())

    def _scanned(self, root: Path, outcome: Outcome) -> None:
        match outcome:
            case Done(value=entries):
                self._list(root, entries)
                self.ctx.log(f"Found {len(entries)} model folder(s) under {root}.")
            case Refused(message=message):
                self.browser.set_entries(root, [])
                self.ctx.log(f"Scan failed: {message}")
            case _:
                self.browser.set_entries(root, [])
                self.ctx.report(outcome)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = [Path(p) for p in self.ctx.settings.recent_models if Path(p).is_dir()]
        for path in recent:
            action = self.recent_menu.addAction(str(path))
            action.triggered.connect(lambda _checked=False, path=path: self.open_path(path))
        if not recent:
            self.recent_menu.addAction("No recent models").setEnabled(False)
            return
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear Recent").triggered.connect(
            self.ctx.settings.clear_recent)

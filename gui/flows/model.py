"""Which model is open: open, reload, the demo; its layer tree, details and parameter counts."""
from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QStyle

from fsprec.core.layers import Layer
from fsprec.core.modelfile import ModelFolder

from .. import jobs
from ..details import DetailsPanel
from ..layer_panel import LayerPanel
from ..outcomes import Done, Outcome, Refused
from ..theme import PRECISION_LABELS
from .base import Flow, FlowContext, WindowState


class ModelFlow(Flow):
    """Opens model folders (on a worker) and shows the open one."""

    shown = Signal(object)  # ModelFolder, once its layer tree is on screen
    paramsShown = Signal()  # parameter counts filled in
    foundModels = Signal(object)  # jobs.Browse: the folder opened holds model folders

    def __init__(self, ctx: FlowContext, panel: LayerPanel, details: DetailsPanel,
                 data_dir: Path) -> None:
        super().__init__(ctx)
        self.panel, self.details, self.data_dir = panel, details, data_dir
        self.folder: ModelFolder | None = None
        self._params: dict[str, int] = {}
        self._opening: Path | None = None
        self.opening = ctx.job(model_bound=False)
        self.counting = ctx.job(foreground=False)
        pixmap = QStyle.StandardPixmap
        self.open_action = ctx.action("&Open Model Folder…", self.choose, "Ctrl+O",
                                      pixmap.SP_DirOpenIcon, "Open a Faceswap model folder.")
        self.reload_action = ctx.action("Re&load Model", self.reload, "F5")
        self.demo_action = ctx.action("Open &Demo Model", self.open_demo,
                                      tip="A small Faceswap model to try fsprec on.")
        self.reveal_action = ctx.action("Show in &File Manager", self.reveal,
                                        icon=pixmap.SP_DirIcon,
                                        tip="Open the model folder in the file manager.")
        panel.layerSelected.connect(self._layer_selected)

    def refresh(self, state: WindowState) -> None:
        self.open_action.setEnabled(state.idle)
        self.demo_action.setEnabled(state.idle)
        self.reload_action.setEnabled(state.folder is not None and state.idle)
        self.reveal_action.setEnabled(state.folder is not None)

    def choose(self) -> None:
        """Ask for a model folder and open it."""
        start = str(self.folder.path.parent if self.folder else self.ctx.settings.models_root)
        folder = QFileDialog.getExistingDirectory(self.ctx.window, "Open a Faceswap model folder",
                                                  start)
        if folder:
            self.open_path(Path(folder))

    def open_path(self, path: Path) -> None:
        """Open a model folder; a folder that only holds model folders goes to the browser.

        Asking again for the model that is open or being opened does nothing (Reload does).
        """
        path = Path(path).expanduser().resolve()
        if path == self._opening or (self.folder is not None and self.folder.path == path):
            return
        if self.opening.start(f"Opening {path.name}", partial(jobs.open_or_browse, path),
                              self._opened):
            self._opening = path

    def reload(self) -> None:
        """Read the open model again from disk."""
        if self.folder is not None:
            self.opening.start(f"Opening {self.folder.path.name}",
                               partial(jobs.open_folder, self.folder.path), self._opened)

    def open_demo(self) -> None:
        """Open the demo model, writing it into the app's data folder on first use."""
        self.opening.start("Opening the demo model", partial(jobs.open_demo, self.data_dir),
                           self._opened)

    def reveal(self) -> None:
        """Open the model folder in the system file manager."""
        if self.folder is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.folder.path)))

    def _opened(self, outcome: Outcome) -> None:
        self._opening = None
        match outcome:
            case Done(value=jobs.Browse() as found):
                self.foundModels.emit(found)
            case Done(value=jobs.Opened() as opened):
                self._show(opened)
            case _:
                self.ctx.report(outcome, "Cannot open the model", "Cannot open: ")

    def _show(self, opened: jobs.Opened) -> None:
        folder = self.folder = opened.folder
        self._params = {}
        self.panel.show_model(folder.plugin, str(folder.path), folder.precision, opened.tree,
                              opened.pins, folder.partial)
        self.details.show_model(folder)
        self.details.show_layer(None, None)
        self.ctx.settings.add_recent(folder.path)
        self.ctx.log(f"Opened {folder.model_file}: {PRECISION_LABELS.get(folder.precision)}, "
                     f"{len(folder.eligible)} eligible layer(s).")
        if folder.state_problem:
            self.ctx.log(f"Warning: {folder.state_problem}")
        if folder.partial:
            self.ctx.log(f"Partly mixed: {folder.partial.reason}. Model ▸ Make Consistent "
                         "fixes it.")
        self.counting.start("Counting parameters", partial(jobs.layer_params, folder),
                            self._counted)
        self.shown.emit(folder)

    def _counted(self, outcome: Outcome) -> None:
        match outcome:
            case Done(value=params):
                self._params = params
                self.panel.set_params(params)
                self._layer_selected(self.panel.selected_layer())
                self.paramsShown.emit()
            case Refused(message=message):
                self.ctx.log(f"Parameter counts unavailable: {message}")
            case _:
                self.ctx.report(outcome)

    def _layer_selected(self, layer: Layer | None) -> None:
        params = self._params.get(layer.path, 0) if layer and self._params else None
        self.details.show_layer(layer, params)

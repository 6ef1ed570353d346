"""Recovering a damaged model: scan its weights for NaN/Inf, put back its .bk backup."""
from __future__ import annotations

from functools import partial

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QMessageBox, QStyle

from fsprec.core import nanscan, restore
from fsprec.core.modelfile import ModelFolder

from ..dialogs import show_nan_report
from ..layer_panel import LayerPanel
from ..outcomes import Done, Outcome
from .base import TRAINING_TIP, Flow, FlowContext, WindowState


class RecoveryFlow(Flow):
    """The NaN/Inf scan (damaged layers are marked in the tree) and Restore from Backup."""

    changed = Signal()  # the model on disk was restored

    def __init__(self, ctx: FlowContext, panel: LayerPanel) -> None:
        super().__init__(ctx)
        self.panel = panel
        self.job = ctx.job()
        self._can_restore = False
        pixmap = QStyle.StandardPixmap
        self.nan_action = ctx.action("Scan Weights for &NaN/Inf", self.scan_nan,
                                     icon=pixmap.SP_FileDialogContentsView,
                                     tip="Check every weight of the model for NaN and Inf.")
        self.restore_action = ctx.action("&Restore from Backup…", self.restore_backup,
                                         icon=pixmap.SP_BrowserReload,
                                         tip="Put back the model saved in its .bk backup.")

    def refresh(self, state: WindowState) -> None:
        self.nan_action.setEnabled(state.folder is not None and state.idle)
        self.restore_action.setEnabled(state.folder is not None and state.idle
                                       and self._can_restore and not state.training)
        self.restore_action.setToolTip(TRAINING_TIP if state.training
                                       else self.restore_action.statusTip())

    def model_shown(self, folder: ModelFolder) -> None:
        """Look for a backup of the model now shown."""
        self._can_restore = restore.can_restore(folder.path)
        self.ctx.refresh()

    def scan_nan(self) -> None:
        """Scan every weight for NaN and Inf on a worker."""
        folder = self.ctx.model()
        if folder is not None:
            self.job.start("Scanning weights", partial(nanscan.scan_weights, folder.path),
                           self._scanned)

    def _scanned(self, outcome: Outcome) -> None:
        if not isinstance(outcome, Done):
            self.ctx.report(outcome)
            return
        report: nanscan.NanReport = outcome.value
        self.panel.model.set_damaged({f.layer: f"{f.nan:,} NaN and {f.inf:,} Inf values"
                                      for f in report.bad_layers})
        self.ctx.log(show_nan_report(self.ctx.window, report))

    def restore_backup(self) -> None:
        """Restore the model from its .bk backup after confirmation."""
        folder = self.ctx.model()
        if folder is None or not self._can_restore:
            return
        answer = QMessageBox.question(
            self.ctx.window, "Restore from backup",
            f"Restore {folder.model_file.name} from its backup?\n\nThe current model files "
            f"are moved into an archive folder inside {folder.path.name}; nothing is deleted.")
        if answer == QMessageBox.StandardButton.Yes:
            self.job.start("Restoring from backup", partial(restore.restore, folder.path),
                           self._restored)

    def _restored(self, outcome: Outcome) -> None:
        if not isinstance(outcome, Done):
            self.ctx.report(outcome)
            return
        result: restore.RestoreResult = outcome.value
        names = ", ".join(p.name for p in result.restored)
        self.ctx.log(f"Restored {names}; the previous files are in {result.archive_dir}.")
        self.changed.emit()

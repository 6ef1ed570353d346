"""Validation: run the model in float32 and mixed precision in a child process, show the result.

All of the validation flow's logic is here; the Validation tab itself is
:class:`~fsprec.gui.validation_view.ValidationView`, used through its constructor, signals and
``show_*`` / ``clear`` methods only.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QStyle

from fsprec.core.layers import MIXED_POLICIES
from fsprec.core.modelfile import ModelFolder
from fsprec.core.validate import Options

from .. import jobs
from ..layer_panel import LayerPanel
from ..outcomes import Cancelled, Done, Outcome
from ..theme import PRECISION_LABELS
from .base import Flow, FlowContext, WindowState

if TYPE_CHECKING:
    from ..validation_view import ValidationView

DEVICE_WORDS = {"auto": "the GPU if there is one", "cpu": "the CPU", "gpu": "the GPU"}


class ValidateFlow(Flow):
    """The Validate action and the Validation tab, which shows one model's validation."""

    def __init__(self, ctx: FlowContext, panel: LayerPanel) -> None:
        super().__init__(ctx)
        self.panel = panel
        self.job = ctx.job()
        self._view: ValidationView | None = None
        self._model: Path | None = None  # the model the tab is about
        self.action = ctx.action(
            "&Validate Mixed Precision", self.validate, "Ctrl+Shift+V",
            QStyle.StandardPixmap.SP_MediaPlay,
            "Run the model in float32 and in mixed precision and compare (Settings: batch, "
            "steps, device, backend).")

    def refresh(self, state: WindowState) -> None:
        self.action.setEnabled(state.idle and bool(state.folder and state.folder.eligible))

    def view(self) -> ValidationView:
        """The Validation tab's view, made on first use (pyqtgraph loads only then)."""
        if self._view is None:
            from ..validation_view import ValidationView
            view = ValidationView(self.action)
            view.layerClicked.connect(self.show_layer)
            view.applyPinsRequested.connect(self.apply_pins)
            view.cancelRequested.connect(self.ctx.status.cancel)
            self._view = view
        return self._view

    def validate(self) -> None:
        """Validate the open model in a child process (float32 against its mixed policy, with
        the ticked pins kept float32); progress in the status bar and the Validation tab."""
        folder = self.ctx.model()
        if folder is None or self.ctx.status.busy:
            return
        settings = self.ctx.settings
        policy = folder.precision if folder.precision in MIXED_POLICIES \
            else settings.mixed_policy
        options = Options(policy, settings.validation_batch, settings.validation_steps,
                          pins=self.panel.model.pins())
        job = self.job.start("Validating", partial(jobs.validate, folder.path, options,
                                                   settings.device, settings.keras_backend),
                             self._validated)
        if job is None:
            return
        self._model = folder.path
        view = self.view()
        job.progress.connect(view.show_progress)
        description = (f"{folder.plugin}: float32 against {PRECISION_LABELS[policy]} on "
                       f"{DEVICE_WORDS[settings.device]}, {settings.keras_backend} backend, "
                       f"batch {options.batch}, {options.steps} training steps.")
        view.show_running(description)
        self.ctx.show_tab(view, "Validation")
        self.ctx.log(f"Validating {description}")

    def model_shown(self, folder: ModelFolder) -> None:
        """Close the tab when it is about another model than the one now shown."""
        if self._view is not None and self._model not in (None, folder.path):
            self._model = None
            self._view.clear()
            self.ctx.close_tab(self._view)

    def show_layer(self, path: str) -> None:
        """Show the Layers tab with the layer at ``path`` selected."""
        self.ctx.show_layers()
        if not self.panel.select_path(path):
            self.ctx.log(f"{path} is not a layer of the open model.")

    def apply_pins(self, pins: list[str]) -> None:
        """Tick Keep float32 for exactly ``pins`` and show them in the Layers tab."""
        self.panel.model.set_pins(pins)
        self.ctx.show_layers()
        self.ctx.log(f"Keeping {', '.join(pins)} in float32, as validation suggests; "
                     "the switch button converts with them.")

    def _validated(self, outcome: Outcome) -> None:
        view = self.view()
        match outcome:
            case Done(value=result):
                view.show_result(result)
                self.ctx.show_tab(view, "Validation")
                self.ctx.log(f"Validation of {Path(result['model']['folder']).name}: "
                             f"{result['verdict']['text']}")
            case Cancelled(message=message):
                view.show_stopped(message)
            case _:
                view.show_stopped("Validation failed.")
                self.ctx.report(outcome, "Validation failed", "Validation failed: ")

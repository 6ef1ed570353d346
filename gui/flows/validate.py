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
from fsprec.core.errors import FsprecError
from fsprec.core.validate import Options, resolve_backend
from fsprec.core.validate.result import Runtime

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
        self.last_runtime: Runtime | None = None  # where the last validation ran (About box)
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
        python = settings.validation_python or None
        view = self.view()
        job = self.job.start("Validating", partial(
            jobs.validate, folder.path, options, settings.device, settings.keras_backend,
            python, view.on_stage, view.on_eta), self._validated)
        if job is None:
            return
        self._model = folder.path
        job.progress.connect(view.show_progress)
        description = (f"{folder.plugin}: float32 against {PRECISION_LABELS[policy]}, "
                       + plan_words(options, settings.device, settings.keras_backend, python))
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
                self.last_runtime = result.runtime
                view.show_result(result)
                self.ctx.show_tab(view, "Validation")
                self.ctx.log(f"Validation of {Path(result.model.folder).name}: "
                             f"{result.verdict.text}")
            case Cancelled(message=message):
                view.show_stopped(message)
            case _:
                view.show_stopped("Validation failed.")
                self.ctx.report(outcome, "Validation failed", "Validation failed: ")


def backend_words(choice: str, python: str | None) -> str:
    """The backend that will run: ``auto`` resolved when validation runs in this Python."""
    if python is not None:
        where = f"in {python}"
        return (f"the backend {where} picks (torch, else TensorFlow, else JAX)"
                if choice == "auto" else f"{choice} backend {where}")
    try:
        resolved = resolve_backend(choice)
    except FsprecError:
        return f"{choice} backend (not installed here)" if choice != "auto" \
            else "no Keras backend installed here"
    return f"{resolved} backend" + (" (automatic)" if choice == "auto" else "")


def size_words(options: Options, kind: str) -> str:
    """Batch and training steps on a device ``kind`` (cpu or gpu), naming the preset."""
    preset = options.preset(kind)
    custom = options.batch is not None or options.steps is not None
    name = "custom" if custom else ("full" if kind == "gpu" else "quick") + " preset"
    training = f"{preset.steps} training steps" if preset.steps else "no training check"
    return f"{name} (batch {preset.batch}, {training})"


def plan_words(options: Options, device: str, backend: str, python: str | None) -> str:
    """What a validation will really run: device, backend and preset, in one phrase."""
    if device == "auto":
        sizes = f"{size_words(options, 'gpu')} on a GPU, {size_words(options, 'cpu')} on a CPU"
    else:
        sizes = size_words(options, device)
    return f"on {DEVICE_WORDS[device]}, {backend_words(backend, python)}, {sizes}."

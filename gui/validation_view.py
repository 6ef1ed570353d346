"""The Validation tab: the verdict in words and colour, and the plots of a validation result.

How a validation flow drives it (all on the GUI thread):

- ``show_running(description)`` when the pass starts;
- ``show_progress(stage, done, total)`` and ``show_eta(seconds_or_None)`` while it runs
  (``run_validation``'s ``on_progress`` and ``on_eta``);
- ``show_stage(stage, partial)`` each time a stage's partial :class:`ValidationResult` arrives
  (``run_validation``'s ``on_stage``): its plots fill in at once;
- ``show_result(result)`` at the end, or ``show_stopped(message)`` on cancel or failure;
- ``clear()`` when another model opens.

``on_stage`` and ``on_eta`` are those two callbacks made safe to call from a worker thread
(they emit queued signals): pass them straight to ``run_validation(..., on_stage=view.on_stage,
on_eta=view.on_eta)``.

It asks the window for the rest through ``layerClicked(path)``, ``applyPinsRequested(pins)``
and ``cancelRequested()``.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QScrollArea, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from fsprec.core.validate.result import CPU_NO_TRAINING, STATUS_LABELS, ValidationResult, sig

from .plots import (BarPlot, CurvePlot, LayerRangePlot, UnderflowPlot, output_error_series,
                    paired_series, training_series)
from .theme import PRECISION_LABELS, colored_badge_style, policy_color, verdict_color
from .widgets import verdict_header
from .validation_data import (PENDING, layer_points, memory_bars, output_errors, run_summary,
                              speed_bars, training_curves)

HINT = ("Hover a point for its layer; click one to find it in the Layers tab. The wheel "
        "scrolls the page; Ctrl+wheel zooms a plot. Right-click a plot to zoom, reset the view "
        "or export it (PNG, SVG, CSV).")


def _group(title: str, *plots: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    row = QHBoxLayout(box)
    row.setContentsMargins(4, 4, 4, 4)
    for plot in plots:
        row.addWidget(plot)
    return box


class ValidationView(QWidget):
    """Shows a running validation's stage, then its result; asks the window for the rest."""

    layerClicked = Signal(str)  # a layer path, from the activation-range plot
    applyPinsRequested = Signal(list)  # the verdict's pins
    cancelRequested = Signal()
    stageMeasured = Signal(str, object)  # stage, partial ValidationResult (any thread)
    etaChanged = Signal(object)  # seconds left or None (any thread)

    def __init__(self, validate_action: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: ValidationResult | None = None  # the last complete result
        self.partial: ValidationResult | None = None  # the running pass's stages so far
        self.stage = ""
        self.eta: float | None = None
        self.running = False
        self.stageMeasured.connect(self.show_stage)
        self.etaChanged.connect(self.show_eta)
        self.badge, self.verdict, self.summary = verdict_header("Verdict")
        self.apply_pins = QPushButton()
        self.apply_pins.clicked.connect(self._apply_pins)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.validate_button = QToolButton()
        self.validate_button.setDefaultAction(validate_action)
        self.validate_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)

        self.layer_plot = LayerRangePlot()
        self.layer_plot.layerClicked.connect(self.layerClicked)
        self.underflow_plot = UnderflowPlot()
        self.underflow_plot.layerClicked.connect(self.layerClicked)
        self.psnr_plot = BarPlot("PSNR against float32", "dB")
        self.ratio_plot = BarPlot("Error relative to the output's variation", "%")
        self.speed_plot = BarPlot("Throughput", "images/s")
        self.memory_plot = BarPlot("Peak device memory", "MB")
        self.loss_plot = CurvePlot("Training loss", "loss")
        self.scale_plot = CurvePlot("Loss scale", "loss scale", log_y=True)

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.message)
        self.pages.addWidget(self._plots_page())

        heading = QHBoxLayout()
        heading.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignTop)
        heading.addWidget(self.verdict, 1)
        details = QHBoxLayout()
        details.addWidget(self.summary, 1)
        for button in (self.apply_pins, self.cancel_button, self.validate_button):
            details.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(heading)
        layout.addLayout(details)
        layout.addWidget(self.pages, 1)
        self.clear()

    def _plots_page(self) -> QScrollArea:
        column = QVBoxLayout()
        column.addWidget(_group("Output error against float32 (faces, as images in [0, 1])",
                                self.psnr_plot, self.ratio_plot), 2)
        column.addWidget(_group("Layers", self.layer_plot), 3)
        column.addWidget(_group("Underflow", self.underflow_plot), 2)
        column.addWidget(_group("Speed and memory", self.speed_plot, self.memory_plot), 2)
        column.addWidget(_group("Training check", self.loss_plot, self.scale_plot), 2)
        hint = QLabel(HINT)
        hint.setWordWrap(True)
        hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        column.addWidget(hint)
        body = QWidget()
        body.setLayout(column)
        scroll = QScrollArea()
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        return scroll

    # States ----------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget the result (another model was opened)."""
        self.result = self.partial = None
        self.running = False
        self._show_message("", "No validation yet.", "")

    def show_running(self, description: str) -> None:
        """A validation started; ``description`` says what it compares."""
        self.partial, self.stage, self.eta = None, "", None
        self.running = True
        self._show_message("Running", "Validating…", description,
                           "The model runs in a separate process: float32 against mixed "
                           "precision on faces and stress inputs (black, grey, white, low "
                           "contrast), layer by layer, then a short training run and a speed "
                           "test. Each result appears here as soon as it is measured.\n"
                           "Cancel stops it at once.", running=True)

    def show_progress(self, stage: str, done: int, total: int) -> None:
        """The running validation reached ``stage``."""
        self.stage = f"{stage} ({done} of {total})" if total > 0 else stage
        self._show_state()

    def on_stage(self, stage: str, partial: ValidationResult) -> None:
        """``run_validation``'s ``on_stage``, callable from any thread."""
        self.stageMeasured.emit(stage, partial)

    def on_eta(self, seconds: float | None) -> None:
        """``run_validation``'s ``on_eta``, callable from any thread."""
        self.etaChanged.emit(seconds)

    def show_eta(self, seconds: float | None) -> None:
        """The running validation's estimated time left (None: not known yet)."""
        self.eta = seconds
        self._show_state()

    def _show_state(self) -> None:
        if not self.running:
            return
        left = f" About {sig(max(self.eta, 1.0))} s left." if self.eta is not None else ""
        self.verdict.setText(f"Validating: {self.stage}…{left}")

    def show_stage(self, stage: str, partial: ValidationResult) -> None:
        """A stage of the running pass was measured: plot what ``partial`` holds so far (a
        stage that arrives after the run ended is ignored)."""
        if not self.running:
            return
        self.partial = partial
        self.summary.setText(f"Measured so far: {stage}. {run_summary(partial)}")
        self.pages.setCurrentIndex(1)
        self._plot(partial, partial.policy)

    def show_stopped(self, message: str) -> None:
        """The run ended without a result; the previous result (if any) comes back."""
        self.running = False
        if self.result is not None:
            self.show_result(self.result)
            self.summary.setText(f"{message} Showing the previous result: "
                                 f"{run_summary(self.result)}")
        else:
            self._show_message("", message, "")

    def _show_message(self, badge: str, verdict: str, summary: str, message: str = "",
                      running: bool = False) -> None:
        self.badge.setVisible(bool(badge))
        self.badge.setText(badge)
        self.badge.setStyleSheet(colored_badge_style(verdict_color(None)))
        self.verdict.setText(verdict)
        self.summary.setText(summary)
        self.apply_pins.hide()
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running)
        self.message.setText(message)
        self.pages.setCurrentWidget(self.message)

    def show_result(self, result: ValidationResult) -> None:
        """Show the verdict and plot a complete ``result``."""
        assert result.verdict is not None, "show_stage() shows partial results"
        self.result, self.partial, self.running = result, None, False
        verdict, policy = result.verdict, result.policy
        self.badge.setText(STATUS_LABELS[verdict.status])
        self.badge.setStyleSheet(colored_badge_style(verdict_color(verdict.status)))
        self.badge.show()
        self.verdict.setText(verdict.text[:1].upper() + verdict.text[1:])
        self.summary.setText(run_summary(result))
        pins = verdict.pins if verdict.status == "safe_with_pins" else []
        self.apply_pins.setVisible(bool(pins))
        self.apply_pins.setText(f"Apply suggested pins ({len(pins)})")
        self.apply_pins.setToolTip("Tick Keep float32 for " + ", ".join(pins)
                                   + " in the Layers tab; the Switch button then converts "
                                     "with them.")
        self.cancel_button.hide()
        self.pages.setCurrentIndex(1)
        self._plot(result, policy)

    def _plot(self, result: ValidationResult, policy: str) -> None:
        points = layer_points(result)
        message = PENDING if result.layers is None else "No layer produced values."
        self.layer_plot.set_points(points, message)
        self.underflow_plot.set_points(points, message)
        errors = output_errors(result)
        groups = [e.label for e in errors]
        psnr, ratio = output_error_series(errors, policy)
        limits = result.thresholds
        self.psnr_plot.set_bars(groups, [psnr], PENDING, line=limits.psnr_db,
                                title=f"PSNR against float32 (at least {sig(limits.psnr_db)} "
                                      "dB, dashed)")
        self.ratio_plot.set_bars(groups, [ratio], PENDING,
                                 line=100 * limits.error_to_variation,
                                 title="Error / output's variation (at most "
                                       f"{sig(100 * limits.error_to_variation)}%, dashed)")
        speed = speed_bars(result)
        speedup = result.speed.speedup if result.speed else None
        self.speed_plot.set_bars(speed.groups, paired_series(speed, policy), speed.note,
                                 title=f"Throughput: forward {sig(speedup)}× float32"
                                 if speedup else "Throughput")
        memory = memory_bars(result)
        self.memory_plot.set_bars(memory.groups, paired_series(memory, policy, " MB"),
                                  memory.note)
        self._plot_training(result, policy)

    def _plot_training(self, result: ValidationResult, policy: str) -> None:
        training = training_curves(result)
        if training is None:
            none = (PENDING if not result.complete
                    else "No training check on a CPU (float16 is emulated there)."
                    if CPU_NO_TRAINING in result.notes
                    else "No training check (Steps is 0 in Settings).")
            self.loss_plot.set_curves([], [], none)
            self.scale_plot.set_curves([], [], none)
            return
        label = PRECISION_LABELS.get(policy, policy)
        self.loss_plot.set_curves(training.steps, training_series(training, policy))
        if training.loss_scale is None:
            self.scale_plot.set_curves([], [], f"No loss scaling with {label}.",
                                       title="Loss scale")
            return
        skipped = training.skipped_steps
        self.scale_plot.set_curves(
            training.steps, [("loss scale", training.loss_scale, policy_color(policy))],
            title=f"Loss scale, {training.scaler} ({skipped} step"
                  f"{'s' if skipped != 1 else ''} skipped)")

    def _apply_pins(self) -> None:
        if self.result is not None and self.result.verdict is not None:
            self.applyPinsRequested.emit(list(self.result.verdict.pins))

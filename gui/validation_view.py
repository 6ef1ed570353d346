"""The Validation tab: the verdict in words and colour, and the plots of a validation result."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QFont, QPalette
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QScrollArea, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from .plots import (BarPlot, CurvePlot, LayerRangePlot, output_error_series, paired_series,
                    training_series)
from .theme import PRECISION_LABELS, colored_badge_style, policy_color, verdict_color
from .validation_data import (STATUS_LABELS, layer_points, memory_bars, output_errors,
                              run_summary, speed_bars, training_curves)

HINT = ("Hover a point for its layer; click one to find it in the Layers tab. "
        "Right-click a plot to export it (PNG, SVG, CSV).")


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

    def __init__(self, validate_action: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: dict[str, Any] | None = None
        self.badge = QLabel()
        self.badge.setAccessibleName("Verdict")
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.verdict.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setWeight(QFont.Weight.DemiBold)
        self.verdict.setFont(font)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.apply_pins = QPushButton()
        self.apply_pins.clicked.connect(self._apply_pins)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.validate_button = QToolButton()
        self.validate_button.setDefaultAction(validate_action)
        self.validate_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)

        self.layer_plot = LayerRangePlot()
        self.layer_plot.layerClicked.connect(self.layerClicked)
        self.rel_plot = BarPlot("Relative L2 error", "%")
        self.max_plot = BarPlot("Max |error|", "|error|")
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
        column.addWidget(_group("Layers", self.layer_plot), 3)
        column.addWidget(_group("Output error against float32", self.rel_plot,
                                self.max_plot), 2)
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
        self.result = None
        self._show_message("", "No validation yet.", "")

    def show_running(self, description: str) -> None:
        """A validation started; ``description`` says what it compares."""
        self._show_message("Running", "Validating…", description,
                           "The model runs in a separate process: float32 against mixed "
                           "precision, layer by layer, then a short training run and a speed "
                           "test.\nCancel stops it at once.", running=True)

    def show_progress(self, stage: str, done: int, total: int) -> None:
        """The running validation reached ``stage``."""
        counted = f" ({done} of {total})" if total > 0 else ""
        self.verdict.setText(f"Validating: {stage}{counted}…")

    def show_stopped(self, message: str) -> None:
        """The run ended without a result; the previous result (if any) comes back."""
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

    def show_result(self, result: dict[str, Any]) -> None:
        """Show the verdict and plot ``result`` (schema ``fsprec.validation/1``)."""
        self.result = result
        verdict, policy = result["verdict"], result["policy"]
        self.badge.setText(STATUS_LABELS[verdict["status"]])
        self.badge.setStyleSheet(colored_badge_style(verdict_color(verdict["status"])))
        self.badge.show()
        self.verdict.setText(verdict["text"][:1].upper() + verdict["text"][1:])
        self.summary.setText(run_summary(result))
        pins = verdict["pins"] if verdict["status"] == "safe_with_pins" else []
        self.apply_pins.setVisible(bool(pins))
        self.apply_pins.setText(f"Apply suggested pins ({len(pins)})")
        self.apply_pins.setToolTip("Tick Keep float32 for " + ", ".join(pins)
                                   + " in the Layers tab; the Switch button then converts "
                                     "with them.")
        self.cancel_button.hide()
        self.pages.setCurrentIndex(1)
        self._plot(result, policy)

    def _plot(self, result: dict[str, Any], policy: str) -> None:
        self.layer_plot.set_points(layer_points(result))
        errors = output_errors(result)
        groups = [e.label for e in errors]
        rel, worst = output_error_series(errors, policy)
        tolerance = result["tolerance"]["rel_l2"]
        self.rel_plot.set_bars(groups, [rel], line=100 * tolerance,
                               title=f"Relative L2 error (tolerance {tolerance:.0%}, dashed)")
        self.max_plot.set_bars(groups, [worst])
        speed = speed_bars(result)
        speedup = (result.get("speed") or {}).get("speedup")
        self.speed_plot.set_bars(speed.groups, paired_series(speed, policy, "{:.0f}"),
                                 speed.note, title=f"Throughput: forward {speedup:.2f}× float32"
                                 if speedup else "Throughput")
        memory = memory_bars(result)
        self.memory_plot.set_bars(memory.groups, paired_series(memory, policy, "{:.0f} MB"),
                                  memory.note)
        self._plot_training(result, policy)

    def _plot_training(self, result: dict[str, Any], policy: str) -> None:
        training = training_curves(result)
        if training is None:
            none = "No training check (Steps is 0 in Settings)."
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
            title=f"Loss scale ({skipped} step{'s' if skipped != 1 else ''} skipped)")

    def _apply_pins(self) -> None:
        if self.result is not None:
            self.applyPinsRequested.emit(list(self.result["verdict"]["pins"]))

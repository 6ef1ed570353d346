"""The Validation tab: real validations from the GUI worker, cancel, crashes, and the plots'
data read from hand-written result documents (no Keras)."""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from fsprec.core.validate import runner
from fsprec.gui import jobs
from fsprec.gui.plots import RISK_COLOR, power_of_ten
from fsprec.gui.theme import verdict_color
from fsprec.gui.validation_data import (layer_points, memory_bars, output_errors, run_summary,
                                        speed_bars, training_curves)

TIMEOUT_MS = 180_000
MEASURED = ["encoder/conv_8_0_conv2d", "encoder/boost", "encoder/shrink", "encoder/dense",
            "decoder_a/face_out_a_0"]


def layer_row(path: str, max_abs: float = 1.0, min_abs: float | None = 1e-3,
              risk: str | None = None, values: int = 100, **extra) -> dict:
    """One ``layers`` entry of a result document."""
    row = {"path": path, "class_name": "Conv2D", "eligible": True, "values": values,
           "max_abs": max_abs, "min_abs_nonzero": min_abs, "nonfinite": 0,
           "above_fp16_max": 0, "below_fp16_tiny": 0, "overflow": risk == "overflow",
           "underflow": risk == "underflow", "nonfinite_target": 0,
           "introduces_nonfinite": risk == "nonfinite", "config_risk": None, "risk": risk}
    row.update(extra)
    return row


def sample_result(folder: str = "/models/tinyae", status: str = "safe_with_pins",
                  kind: str = "cpu", training: bool = True, loss_scale: bool = True,
                  speed: bool = True, layers: list[dict] | None = None) -> dict:
    """A result document as ``fsprec validate --json`` writes it (schema fsprec.validation/1)."""
    pins = ["boost", "shrink"] if status == "safe_with_pins" else []
    memory = 812.5 if kind == "gpu" else None
    return {
        "schema": "fsprec.validation/1",
        "model": {"folder": folder, "plugin": "tinyae", "format": "keras3",
                  "precision": "float32"},
        "policy": "mixed_float16", "pins": [],
        "device": {"backend": "torch", "kind": kind,
                   "name": "NVIDIA H200" if kind == "gpu" else "CPU"},
        "inputs": {"source": "synthetic", "batch": 2, "shapes": [[2, 16, 16, 3]]},
        "tolerance": {"rel_l2": 0.01},
        "outputs": [
            {"index": 0, "shape": [2, 16, 16, 3], "max_abs_err": 0.002, "mean_abs_err": 1e-4,
             "rel_l2": 0.004, "psnr_db": 50.0, "nonfinite_fp32": 0, "nonfinite_target": 0},
            {"index": 1, "shape": [2, 16, 16, 3], "max_abs_err": 0.0, "mean_abs_err": 0.0,
             "rel_l2": 0.0, "psnr_db": None, "nonfinite_fp32": 0, "nonfinite_target": 1536}],
        "layers": layers if layers is not None else [
            layer_row("face_in_a", values=0, max_abs=0.0, min_abs=None),
            layer_row(MEASURED[0]),
            layer_row(MEASURED[1], max_abs=2.7e5, min_abs=88.7, risk="nonfinite",
                      above_fp16_max=17, nonfinite_target=2048),
            layer_row(MEASURED[2], min_abs=None),
            layer_row(MEASURED[3], min_abs=1e-9, risk="underflow", below_fp16_tiny=40),
            layer_row(MEASURED[4], max_abs=0.5, min_abs=0.49)],
        "training": None if not training else {
            "steps": 3,
            "float32": {"loss": [0.5, 0.4, 0.3], "loss_scale": None, "skipped_steps": 0,
                        "images_per_s": 600.0},
            "target": {"loss": [0.5, float("nan"), 0.3],
                       "loss_scale": [32768.0, 16384.0, 16384.0] if loss_scale else None,
                       "skipped_steps": 1, "images_per_s": 650.0}},
        "speed": None if not speed else {
            "forward_float32_ips": 1000.0, "forward_target_ips": 2500.0, "speedup": 2.5,
            "peak_memory_float32_mb": memory, "peak_memory_target_mb": memory and 500.0,
            "train_float32_ips": 600.0 if training else None,
            "train_target_ips": 650.0 if training else None},
        "autopin": {"pins": pins, "passed": True, "evaluations": 5} if pins else None,
        "verdict": {"status": status, "pins": pins,
                    "text": {"safe": "safe: outputs within 0.40% of float32.",
                             "safe_with_pins": "safe with pins: boost, shrink — without them, "
                                               "1536 non-finite output values.",
                             "not_safe": "not safe: 1536 non-finite output values."}[status]},
        "seconds": 12.3,
    }


# --- The plots' data, from result documents -------------------------------------------------

def test_layer_points_one_per_measured_layer_in_model_order():
    points = layer_points(sample_result())
    assert [p.path for p in points] == MEASURED  # face_in_a produced no values
    assert [p.index for p in points] == list(range(len(MEASURED)))
    boost = points[1]
    assert (boost.max_abs, boost.min_abs, boost.risk) == (2.7e5, 88.7, "nonfinite")
    assert "encoder/boost" in boost.tooltip and "Inf/NaN" in boost.tooltip
    assert "2,048 non-finite values" in boost.tooltip
    assert points[2].min_abs is None and "none (all zero)" in points[2].tooltip
    assert points[3].risk == "underflow" and "40 values below 6e-8" in points[3].tooltip
    assert points[0].risk is None and "Risk" not in points[0].tooltip


def test_output_errors_speed_memory_and_training():
    result = sample_result()
    errors = output_errors(result)
    assert [(e.label, e.rel_l2, e.max_abs_err, e.nonfinite) for e in errors] == [
        ("output 0", 0.004, 0.002, 0), ("output 1", 0.0, 0.0, 1536)]
    speed = speed_bars(result)
    assert speed.groups == ["forward", "training"]
    assert (speed.float32, speed.target) == ([1000.0, 600.0], [2500.0, 650.0])
    assert memory_bars(result).groups == [] and memory_bars(result).note == "n/a on CPU"
    gpu = memory_bars(sample_result(kind="gpu"))
    assert (gpu.groups, gpu.float32, gpu.target) == (["peak memory"], [812.5], [500.0])
    curves = training_curves(result)
    assert curves.steps == [1, 2, 3] and curves.loss_float32 == [0.5, 0.4, 0.3]
    assert math.isnan(curves.loss_target[1]) and curves.skipped_steps == 1
    assert curves.loss_scale == [32768.0, 16384.0, 16384.0]
    assert training_curves(sample_result(training=False)) is None
    assert training_curves(sample_result(loss_scale=False)).loss_scale is None
    assert speed_bars(sample_result(speed=False)).note == "Speed was not measured."
    no_training = speed_bars(sample_result(training=False))
    assert no_training.float32 == [1000.0, None]
    summary = run_summary(sample_result(kind="gpu"))
    assert "GPU NVIDIA H200" in summary and "torch backend" in summary
    assert "3 training steps" in summary and "batch 2" in summary


def test_power_of_ten_labels():
    assert [power_of_ten(e) for e in (-8, 0, 5)] == ["10⁻⁸", "1", "10⁵"]


# --- The view, from result documents --------------------------------------------------------

@pytest.fixture
def view(qtbot, gui_settings):
    from PySide6.QtGui import QAction

    from fsprec.gui.validation_view import ValidationView

    widget = ValidationView(QAction("Validate"))
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    return widget


def bar_heights(plot) -> list[float]:
    import pyqtgraph as pg
    return [h for item in plot.plotItem.items if isinstance(item, pg.BarGraphItem)
            for h in item.opts["height"]]


def texts(plot) -> list[str]:
    import pyqtgraph as pg
    return [item.toPlainText() for item in plot.plotItem.items if isinstance(item, pg.TextItem)]


@pytest.mark.parametrize("status, label", [("safe", "Safe"), ("safe_with_pins", "Safe with pins"),
                                           ("not_safe", "Not safe")])
def test_verdict_in_words_and_colour(view, status, label):
    view.show_result(sample_result(status=status))
    assert view.badge.text() == label
    assert verdict_color(status).name() in view.badge.styleSheet()
    assert view.verdict.text().startswith(label.split()[0])
    assert "CPU, torch backend" in view.summary.text()
    assert view.apply_pins.isVisible() == (status == "safe_with_pins")
    if status == "safe_with_pins":
        assert "boost, shrink" in view.apply_pins.toolTip()


def test_plots_show_the_result(view):
    view.show_result(sample_result())
    spots = view.layer_plot.scatter.points()
    maxima = [s for s in spots if s.symbol() == "o"]
    assert sorted(s.data() for s in maxima) == list(range(len(MEASURED)))
    red = {view.layer_plot.points[s.data()].path for s in spots
           if s.brush().color() == RISK_COLOR}
    assert red == {"encoder/boost", "encoder/dense"}
    assert "boost" in texts(view.layer_plot)  # risky layers are named beside their point
    # A non-finite output fills its bar in red and says so; the other shows its error in %.
    assert texts(view.rel_plot) == ["0.4%", "Inf/NaN"]
    assert bar_heights(view.speed_plot) == [1000.0, 600.0, 2500.0, 650.0]
    assert "2.50× float32" in view.speed_plot.plotItem.titleLabel.text
    assert texts(view.memory_plot) == ["n/a on CPU"]
    assert view.scale_plot.title == "Loss scale (1 step skipped)"
    # Right-clicking a plot offers pyqtgraph's export dialog (PNG, SVG, CSV).
    for plot in (view.layer_plot, view.rel_plot, view.loss_plot):
        assert plot.plotItem.vb.menuEnabled()
        assert "Export..." in [a.text() for a in plot.scene().contextMenu]


def test_gpu_memory_and_missing_parts(view):
    view.show_result(sample_result(kind="gpu"))
    assert bar_heights(view.memory_plot) == [812.5, 500.0]
    assert texts(view.memory_plot) == ["812 MB", "500 MB"]
    view.show_result(sample_result(training=False, speed=False))
    assert texts(view.loss_plot) == ["No training check (Steps is 0 in Settings)."]
    assert texts(view.speed_plot) == ["Speed was not measured."]
    view.show_result(sample_result(loss_scale=False))
    assert texts(view.scale_plot) == ["No loss scaling with mixed float16."]


def test_plots_follow_the_palette(view, qapp):
    view.show_result(sample_result())
    plots = (view.layer_plot, view.rel_plot, view.loss_plot)
    original = qapp.palette()
    dark = QPalette(original)
    for role, color in ((QPalette.ColorRole.Base, "#17181a"), (QPalette.ColorRole.Text, "#e8eaed"),
                        (QPalette.ColorRole.Window, "#202124")):
        dark.setColor(role, QColor(color))
    try:
        for palette in (dark, original):
            qapp.setPalette(palette)
            QApplication.processEvents()
            for plot in plots:
                assert plot.backgroundBrush().color() == palette.color(QPalette.ColorRole.Base)
                axis = plot.getAxis("left")
                assert axis.textPen().color() == palette.color(QPalette.ColorRole.Text)
                assert plot.plotItem.titleLabel.opts["color"] == \
                    palette.color(QPalette.ColorRole.Text).name()
    finally:
        qapp.setPalette(original)


# --- Real validations from the window --------------------------------------------------------

@pytest.fixture(scope="module")
def risky(tmp_path_factory) -> Path:
    from keras_models import build_model_folder
    return build_model_folder(tmp_path_factory.mktemp("risky") / "model", overflow=True)


@pytest.fixture
def validating_window(window, qtbot, gui_settings, risky):
    """The window on the risky model, validating quickly on the CPU with TensorFlow."""
    gui_settings.keras_backend = "tensorflow"
    gui_settings.device = "cpu"
    gui_settings.validation_batch = 2
    gui_settings.validation_steps = 2
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        window.open_path(risky)
    return window


def validation_children() -> list[int]:
    """Our own validation child processes still alive (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(status.split("PPid:")[1].split()[0])
        if ppid == os.getpid() and b"fsprec.core.validate" in cmdline \
                and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def point_position(qtbot, plot, index: int, value: float) -> QPoint:
    """Where the layer ``index`` has its point at ``value`` (log axis), once the plot has
    settled (its axes fit themselves to their labels when first painted)."""
    seen: list[QPoint] = []

    def settled() -> bool:
        view = plot.plotItem.vb.mapViewToScene(QPointF(index, math.log10(value)))
        seen.append(plot.mapFromScene(view))
        return len(seen) >= 5 and seen[-1] == seen[-2] == seen[-3]
    qtbot.waitUntil(settled, timeout=5_000)
    return seen[-1]


def test_validation_of_a_risky_model(validating_window, qtbot, message_boxes):
    window = validating_window
    assert window.views.count() == 1 and window.validate_action.isEnabled()
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.validate_action.trigger()
        view = window.validation_view()
        assert window.views.currentWidget() is view and view.cancel_button.isVisible()
        assert not window.validate_action.isEnabled()
        qtbot.waitUntil(lambda: "Output parity" in view.verdict.text()
                        or view.result is not None, timeout=TIMEOUT_MS)
    assert message_boxes == []
    result = view.result
    assert view.badge.text() == "Safe with pins"
    assert view.verdict.text().startswith("Safe with pins: boost, shrink")
    assert "tensorflow backend" in view.summary.text() and "CPU" in view.summary.text()
    assert window.validate_action.isEnabled() and not view.cancel_button.isVisible()
    assert "Validation of model: safe with pins" in window.log_view.toPlainText()

    # One point per measured layer; encoder/boost is the red one.
    measured = [row["path"] for row in result["layers"] if row["values"]]
    plot = view.layer_plot
    maxima = [s for s in plot.scatter.points() if s.symbol() == "o"]
    assert sorted(plot.points[s.data()].path for s in maxima) == sorted(measured)
    red = [plot.points[s.data()] for s in maxima if s.brush().color() == RISK_COLOR]
    assert [p.path for p in red] == ["encoder/boost"]

    # Hovering names it; clicking it shows the layer in the Layers tab.
    where = point_position(qtbot, plot, red[0].index, red[0].max_abs)
    qtbot.mouseMove(plot.viewport(), where)
    qtbot.waitUntil(lambda: "encoder/boost" in plot.plotItem.vb.toolTip(), timeout=5_000)
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=where)
    assert window.views.currentWidget() is window.center
    assert window.panel.selected_layer().path == "encoder/boost"
    assert "encoder/boost" in window.details.layer_box.values["Path"].full_text()

    # Apply suggested pins ticks exactly boost and shrink; the switch converts with them.
    window.panel.model.set_pinned("dense", True)
    window.views.setCurrentWidget(view)
    qtbot.mouseClick(view.apply_pins, Qt.MouseButton.LeftButton)
    assert window.panel.model.pins() == ["boost", "shrink"]
    assert window.views.currentWidget() is window.center
    assert "2 kept in float32" in window.panel.switch_button.toolTip()
    choice = window.switch_choice()
    assert (choice.target, choice.pins) == ("mixed_float16", ("boost", "shrink"))


@needs_proc
def test_cancel_ends_the_child_and_the_ui_goes_idle(validating_window, qtbot,
                                                    no_dangling_threads):
    window = validating_window
    window.validate()
    view = window.validation_view()
    qtbot.waitUntil(lambda: "Loading model" in view.verdict.text(), timeout=TIMEOUT_MS)
    assert validation_children()
    started = time.perf_counter()
    with qtbot.waitSignal(window.job_status.ended, timeout=10_000):
        qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
    assert time.perf_counter() - started < 2.5
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=5_000)
    assert not any(thread.isRunning() for thread in no_dangling_threads)
    assert validation_children() == []
    assert view.verdict.text() == "Validation cancelled." and view.result is None
    assert not view.cancel_button.isVisible() and not window.job_status.isVisible()
    assert window.validate_action.isEnabled() and window.open_action.isEnabled()
    assert "Validating: cancelled" in window.log_view.toPlainText()


@needs_proc
def test_closing_the_window_while_validating(validating_window, qtbot, no_dangling_threads):
    window = validating_window
    window.validate()
    view = window.validation_view()
    qtbot.waitUntil(lambda: "Loading model" in view.verdict.text(), timeout=TIMEOUT_MS)
    started = time.perf_counter()
    window.close()
    assert time.perf_counter() - started < 2.5
    assert window.runner.running() == []
    assert not any(thread.isRunning() for thread in no_dangling_threads)
    assert validation_children() == []


def test_a_crashing_child_shows_the_error_and_the_app_keeps_going(window, qtbot, gui_settings,
                                                                  monkeypatch, message_boxes):
    monkeypatch.setattr(runner, "command", lambda folder, options: [
        sys.executable, "-c", "import os, sys; print('boom', file=sys.stderr); "
                              "os.kill(os.getpid(), 9)"])
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        window.open_demo()
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.validate_action.trigger()
    assert [kind for kind, _, _ in message_boxes] == ["critical"]
    _, title, text = message_boxes[0]
    assert title == "Validation failed"
    assert "killed (SIGKILL)" in text and "boom" in text
    view = window.validation_view()
    assert view.verdict.text() == "Validation failed." and view.result is None
    assert window.validate_action.isEnabled()
    # The app keeps working: the next validation shows its result.
    validate_instantly(monkeypatch, window)
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.validate_action.trigger()
    assert view.badge.text() == "Safe with pins" and len(message_boxes) == 1


def validate_instantly(monkeypatch, window) -> None:
    """Make the validation job return a hand-written result at once (no Keras)."""
    folder = str(window.folder.path)
    monkeypatch.setattr(jobs, "validate", lambda *args: sample_result(folder=folder))


def test_opening_another_model_closes_the_validation_tab(window, qtbot, risky, monkeypatch):
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        window.open_demo()
    validate_instantly(monkeypatch, window)
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.validate()
    view = window.validation_view()
    assert window.views.currentWidget() is view and window.views.tabBar().isVisible()
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        window.reload_action.trigger()
    assert window.views.indexOf(view) >= 0 and view.result is not None  # same model
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        window.open_path(risky)
    assert window.views.indexOf(view) < 0 and view.result is None
    assert not window.views.tabBar().isVisible()

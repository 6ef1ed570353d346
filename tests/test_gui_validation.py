"""The Validation tab: real validations from the GUI worker, stages as they arrive, cancel,
crashes, and the plots' data read from hand-made results (no Keras)."""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QPalette, QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea

from fsprec.core.validate import Options, runner, run_validation
from fsprec.core.validate.result import CPU_NO_TRAINING, ValidationResult
from fsprec.gui import jobs
from fsprec.gui.plots import RISK_COLOR, WARN_COLOR, power_of_ten
from fsprec.gui.theme import verdict_color
from fsprec.gui.validation_data import (PENDING, layer_points, memory_bars, output_errors,
                                        riskiest, run_summary, speed_bars, training_curves)
from validation_samples import MEASURED, layer_row, sample_result

TIMEOUT_MS = 180_000


# --- The plots' data, from results ------------------------------------------------------------

def test_layer_points_one_per_measured_layer_in_model_order():
    points = layer_points(sample_result())
    assert [p.path for p in points] == MEASURED  # face_in_a produced no values
    assert [p.index for p in points] == list(range(len(MEASURED)))
    boost = points[1]
    assert (boost.max_abs, boost.min_abs, boost.risk) == (2.7e5, 88.7, "nonfinite")
    assert "encoder/boost" in boost.tooltip and "Inf/NaN" in boost.tooltip
    assert "2,048 non-finite values" in boost.tooltip and "270000" in boost.tooltip
    assert points[2].min_abs is None and "none (all zero)" in points[2].tooltip
    assert points[3].risk == "underflow" and "4% of non-zero values flush to zero" in \
        points[3].tooltip
    assert points[0].risk is None and "Risk" not in points[0].tooltip


def test_only_the_riskiest_layers_are_named():
    rows = [layer_row(f"encoder/under_{i}", risk="underflow", below_fp16_tiny=i + 2)
            for i in range(8)]
    rows.insert(3, layer_row("encoder/boost", max_abs=1e6, risk="overflow", above_fp16_max=3))
    named = riskiest(layer_points(sample_result(status="safe", layers=rows)), 3)
    assert [p.path for p in named] == ["encoder/boost", "encoder/under_7", "encoder/under_6"]


def test_output_errors_speed_memory_and_training():
    result = sample_result()
    errors = output_errors(result)
    assert [(e.label, e.psnr_db, e.error_to_variation, e.nonfinite) for e in errors] == [
        ("output 0", 52.0, 0.05, 0), ("output 1", None, 0.0, 1536)]
    speed = speed_bars(result)  # training was not timed (a CPU): forward only
    assert (speed.groups, speed.float32, speed.target) == (["forward"], [1000.0], [2500.0])
    assert memory_bars(result).groups == [] and memory_bars(result).note == "n/a on CPU"
    gpu = memory_bars(sample_result(kind="gpu"))
    assert (gpu.groups, gpu.float32, gpu.target) == (["peak memory"], [812.5], [500.0])
    curves = training_curves(result)
    assert curves.steps == [1, 2, 3] and curves.loss_float32 == [0.5, 0.4, 0.3]
    assert math.isnan(curves.loss_target[1]) and curves.skipped_steps == 1
    assert curves.loss_scale == [65536.0, 32768.0, 32768.0]
    assert curves.scaler == "torch.amp.GradScaler"
    assert training_curves(sample_result(training=False)) is None
    assert training_curves(sample_result(loss_scale=False)).loss_scale is None
    assert speed_bars(sample_result(speed=False)).note == "Speed was not measured."
    summary = run_summary(sample_result(kind="gpu"))
    assert "GPU NVIDIA H200" in summary and "torch backend, Keras 3.14.1" in summary
    assert "/envs/faceswap/bin/python" in summary
    assert "3 training steps" in summary and "batch 2 + 4 stress" in summary


def test_power_of_ten_labels():
    assert [power_of_ten(e) for e in (-8, 0, 5)] == ["10⁻⁸", "1", "10⁵"]


# --- The view, from results -------------------------------------------------------------------

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
    colour = {view.layer_plot.points[s.data()].path: s.brush().color() for s in maxima}
    assert colour["encoder/boost"] == RISK_COLOR and colour["encoder/dense"] == WARN_COLOR
    assert sorted(p for p, c in colour.items() if c in (RISK_COLOR, WARN_COLOR)) == \
        ["encoder/boost", "encoder/dense"]
    assert {"boost", "dense"} <= set(texts(view.layer_plot))  # the riskiest are named
    # PSNR per output in dB (a non-finite output fills its bar in red and says so).
    assert texts(view.psnr_plot) == ["52 dB", "Inf/NaN"]
    assert bar_heights(view.psnr_plot) == [52.0, 52.0]  # the Inf/NaN output's bar is full
    assert texts(view.ratio_plot) == ["5%", "Inf/NaN"]
    assert bar_heights(view.speed_plot) == [1000.0, 2500.0]
    assert texts(view.speed_plot) == ["1000", "2500"]
    assert "2.5× float32" in view.speed_plot.plotItem.titleLabel.text
    assert texts(view.memory_plot) == ["n/a on CPU"]
    assert view.scale_plot.title == "Loss scale, torch.amp.GradScaler (1 step skipped)"
    underflow = {view.underflow_plot.points[s.data()].path: s.pos().y()
                 for s in view.underflow_plot.scatter.points() if s.symbol() == "o"}
    assert underflow["encoder/dense"] == pytest.approx(4.0)
    # Right-clicking a plot offers zoom, reset and pyqtgraph's export dialog (PNG, SVG, CSV).
    for plot in (view.layer_plot, view.psnr_plot, view.loss_plot):
        assert plot.plotItem.vb.menuEnabled()
        assert "Export..." in [a.text() for a in plot.scene().contextMenu]
        assert {"Zoom in", "Zoom out", "Reset view"} <= {
            a.text() for a in plot.plotItem.vb.menu.actions()}


def test_small_speeds_keep_two_significant_digits(view):
    result = sample_result(kind="gpu")
    result.speed.forward_float32_ips, result.speed.forward_target_ips = 0.42, 0.061
    view.show_result(result)
    assert texts(view.speed_plot) == ["0.42", "0.061"]
    assert texts(view.memory_plot) == ["810 MB", "500 MB"]


def test_the_wheel_scrolls_the_page_and_ctrl_wheel_zooms(view, qtbot):
    view.resize(700, 400)
    view.show_result(sample_result())
    scroll = view.findChild(QScrollArea)
    qtbot.waitUntil(lambda: scroll.verticalScrollBar().maximum() > 0, timeout=5_000)
    plot = view.layer_plot
    before_range = plot.plotItem.vb.viewRange()
    bar = scroll.verticalScrollBar()
    bar.setValue(0)
    start = bar.value()

    def wheel(modifiers):
        centre = QPointF(plot.viewport().rect().center())
        event = QWheelEvent(centre, plot.viewport().mapToGlobal(centre), QPoint(0, 0),
                            QPoint(0, -120), Qt.MouseButton.NoButton, modifiers,
                            Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(plot.viewport(), event)
        QApplication.processEvents()

    wheel(Qt.KeyboardModifier.NoModifier)
    assert bar.value() > start  # the page scrolled
    assert plot.plotItem.vb.viewRange() == before_range  # the plot did not zoom
    wheel(Qt.KeyboardModifier.ControlModifier)
    assert plot.plotItem.vb.viewRange() != before_range  # Ctrl+wheel zooms
    plot.reset_action.trigger()
    after = plot.plotItem.vb.viewRange()
    assert [pytest.approx(a) for a in before_range] == after


def test_a_partial_result_fills_in_what_was_measured(view):
    view.show_running("tinyae: float32 against mixed float16")
    view.show_eta(42.4)
    view.show_progress("Output parity", 1, 2)
    assert view.verdict.text() == "Validating: Output parity (1 of 2)… About 42 s left."
    full = sample_result()
    partial = ValidationResult(full.model, full.policy, full.pins, full.runtime, full.inputs,
                               full.thresholds, outputs=full.outputs, stress=full.stress)
    view.show_stage("parity", partial)
    assert texts(view.psnr_plot) == ["52 dB", "Inf/NaN"]
    assert texts(view.layer_plot) == [PENDING]
    assert texts(view.loss_plot) == [PENDING] and texts(view.speed_plot) == [PENDING]
    assert "Measured so far: parity" in view.summary.text()
    assert view.cancel_button.isVisible() and view.result is None


def test_gpu_memory_and_missing_parts(view):
    view.show_result(sample_result(kind="gpu"))
    assert bar_heights(view.memory_plot) == [812.5, 500.0]
    view.show_result(sample_result(training=False, speed=False))
    assert texts(view.loss_plot) == ["No training check (Steps is 0 in Settings)."]
    assert texts(view.speed_plot) == ["Speed was not measured."]
    quick = sample_result(training=False)
    quick.notes.append(CPU_NO_TRAINING)
    view.show_result(quick)
    assert texts(view.loss_plot) == ["No training check on a CPU (float16 is emulated there)."]
    assert "float16 is emulated" in view.summary.text()
    view.show_result(sample_result(loss_scale=False))
    assert texts(view.scale_plot) == ["No loss scaling with mixed float16."]


def test_plots_follow_the_palette(view, qapp):
    view.show_result(sample_result())
    plots = (view.layer_plot, view.psnr_plot, view.loss_plot, view.underflow_plot)
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


def test_the_quick_pass_fills_the_tab_stage_by_stage_and_matches_the_cli(
        view, qtbot, risky, capsys, no_dangling_threads):
    """A real quick CPU pass: each stage reaches the view as it is measured, in order, and
    the final tab shows what `fsprec validate --json` reports."""
    from fsprec.core.cli import main
    from fsprec.gui.latest_job import LatestJob
    from fsprec.gui.workers import JobRunner

    shown: list[tuple[str, bool]] = []
    original = view.show_stage

    def record(stage, partial):
        shown.append((stage, partial.verdict is None))
        original(stage, partial)
    view.stageMeasured.disconnect(view.show_stage)
    view.stageMeasured.connect(record)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    etas: list[float | None] = []
    view.etaChanged.connect(etas.append)
    runner_ = JobRunner()
    view.show_running("tinyae: float32 against mixed float16 on the CPU")
    outcomes: list = []
    slot = LatestJob(runner_)  # kept referenced: it delivers the outcome
    job = slot.start("Validating", lambda task: run_validation(
        risky, Options(steps=2), "cpu", on_progress=task.progress, cancel=task.cancel_event,
        env=env, on_stage=view.on_stage, on_eta=view.on_eta), outcomes.append)
    job.progress.connect(view.show_progress)
    qtbot.waitUntil(lambda: bool(outcomes), timeout=TIMEOUT_MS)
    runner_.shutdown()
    view.show_result(outcomes[0].value)
    assert shown == [("parity", True), ("risk map", True), ("training", True),
                     ("speed", True), ("auto-pin", True)]
    assert any(eta is not None and eta > 0 for eta in etas)
    result = view.result
    assert view.badge.text() == "Safe with pins"

    assert main(["validate", str(risky), "--steps", "2", "--device", "cpu", "--json"]) == 1
    cli = json.loads(capsys.readouterr().out)
    assert view.verdict.text() == cli["verdict"]["text"][:1].upper() + cli["verdict"]["text"][1:]
    assert view.result.verdict.pins == cli["verdict"]["pins"]
    plotted = [p.path for p in view.layer_plot.points]
    assert plotted == [row["path"] for row in cli["layers"] if row["values"]]
    assert [(p.path, p.risk) for p in view.layer_plot.points] == \
        [(row["path"], row["risk"]) for row in cli["layers"] if row["values"]]
    assert [o.nonfinite_target for o in result.outputs] == \
        [o["nonfinite_target"] for o in cli["outputs"]]
    assert cli["runtime"]["backend"] == result.runtime.backend == "tensorflow"


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
    assert view.verdict.text().startswith("Safe with pins: keep boost, shrink in float32")
    assert "tensorflow backend" in view.summary.text() and "CPU" in view.summary.text()
    assert window.validate_action.isEnabled() and not view.cancel_button.isVisible()
    assert "Validation of model: safe with pins" in window.log_view.toPlainText()

    # One point per measured layer; encoder/boost is the red one.
    measured = [row.path for row in result.layers if row.values]
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
    qtbot.waitUntil(lambda: bool(validation_children()), timeout=TIMEOUT_MS)
    assert view.verdict.text().startswith("Validating")
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
    qtbot.waitUntil(lambda: bool(validation_children()), timeout=TIMEOUT_MS)
    started = time.perf_counter()
    window.close()
    assert time.perf_counter() - started < 2.5
    assert window.runner.running() == []
    assert not any(thread.isRunning() for thread in no_dangling_threads)
    assert validation_children() == []


def test_a_crashing_child_shows_the_error_and_the_app_keeps_going(window, qtbot, gui_settings,
                                                                  monkeypatch, message_boxes):
    monkeypatch.setattr(runner, "command", lambda *args: [
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


def test_the_tab_says_what_will_really_run(window, qtbot, gui_settings, monkeypatch):
    from fsprec.core.validate import installed_backends

    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        window.open_demo()
    validate_instantly(monkeypatch, window)
    gui_settings.device = "cpu"
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.validate()
    backend = installed_backends()[0] if installed_backends() else None
    said = f"{backend} backend (automatic)" if backend else "no Keras backend installed here"
    assert (f"on the CPU, {said}, quick preset (batch 2, no training check)."
            in window.log_view.toPlainText())
    gui_settings.device, gui_settings.validation_steps = "gpu", 5
    gui_settings.validation_python = "/opt/faceswap/bin/python"
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.validate()
    assert ("on the GPU, the backend in /opt/faceswap/bin/python picks (torch, else "
            "TensorFlow, else JAX), custom (batch 8, 5 training steps)."
            in window.log_view.toPlainText())


def test_a_missing_backend_is_a_refusal_naming_what_to_install(window, qtbot, monkeypatch,
                                                                message_boxes):
    from fsprec.core.validate import options

    monkeypatch.setattr(options, "installed_backends", lambda: [])
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        window.open_demo()
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.validate_action.trigger()
    ((kind, title, text),) = message_boxes
    assert (kind, title) == ("critical", "Validation failed")  # a refusal, not a crash box
    assert "none is installed" in text and "faceswap-precision[torch]" in text
    assert window.validation_view().verdict.text() == "Validation failed."
    assert window.validate_action.isEnabled()

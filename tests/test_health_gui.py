"""The Health tab under pytest-qt: timeline, plot, advice buttons, the flow's jobs, badges,
and one screenshot on a real display (Xvfb)."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from conftest import REPO, needs_fixtures
from gui_support import wait_shown
from health_factory import make_history, write_events
from fsprec.core import health
from fsprec.core.health_cache import HealthCache
from fsprec.gui.health_view import HealthView, LossPlot, thin

pytestmark = needs_fixtures
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    history = make_history(root)
    return history, health.check(history.model_dir, all_versions=True,
                                 cache=HealthCache(root / "cache.json"))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FSPREC_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))


@pytest.fixture
def view(qtbot):
    widget = HealthView()
    qtbot.addWidget(widget)
    widget.resize(1000, 800)
    return widget


def _button(widget, text: str) -> QPushButton:
    (button,) = [b for b in widget.findChildren(QPushButton) if b.text().startswith(text)]
    return button


def _row_texts(view: HealthView, column: int) -> list[str]:
    return [view.table.item(row, column).text() for row in range(view.table.rowCount())]


def test_timeline_table_marks_the_newest_clean(view, checked):
    view.show_report(checked[1])
    assert _row_texts(view, 0) == ["Live model", "Backup (.bk)", "Snapshot at 10 iterations",
                                   "Snapshot at 5 iterations", "Archived 2026-01-01 12:00"]
    health_column = _row_texts(view, 5)
    assert health_column[:3] == ["Damaged", "Damaged", "At risk"]
    assert health_column[3] == "Healthy  ★ newest healthy" and health_column[4] == "Healthy"
    assert view.table.item(3, 0).font().bold() and not view.table.item(4, 0).font().bold()
    assert view.badge.text() == "Damaged" and view.verdict.text().startswith("Broken")
    assert "newest healthy: Snapshot at 5 iterations" in view.summary.text()
    assert view.selected_version().id == "snapshot-5"  # the one to roll back to


def test_roll_back_only_to_a_restorable_version(view, checked, qtbot):
    view.show_report(checked[1])
    view.select_version("live")
    assert not view.rollback.isEnabled()
    view.select_version("backup")
    assert not view.rollback.isEnabled()  # damaged
    assert "NaN weight(s)" in view.details.text()
    view.select_version("snapshot-5")
    with qtbot.waitSignal(view.rollbackRequested) as signal:
        view.rollback.click()
    assert signal.args == ["snapshot-5"]


def test_advice_buttons_ask_for_the_flows(view, checked, qtbot):
    view.show_report(checked[1])
    with qtbot.waitSignal(view.rollbackRequested) as rolled:
        _button(view.advice_box, "Roll back").click()
    assert rolled.args == ["snapshot-5"]
    with qtbot.waitSignal(view.switchRequested) as switch:
        _button(view.advice_box, "Switch to float32").click()
    assert switch.args == ["float32", []]
    with qtbot.waitSignal(view.switchRequested) as pin:
        _button(view.advice_box, "Pin 2 layers").click()
    assert pin.args[0] == "mixed_float16"
    assert sorted(pin.args[1]) == ["conv_128_0_conv2d", "upscale_64_1_conv2d_conv2d"]


def test_plot_lines_select_timeline_rows(view, checked):
    view.show_report(checked[1])
    lines = view.plot.lines
    assert set(lines) == {v.id for v in checked[1].versions}
    assert lines["snapshot-10"].value() == 10
    lines["backup"].sigClicked.emit(lines["backup"], None)
    assert view.selected_version().id == "backup"
    assert lines["backup"].pen.width() == 3 and lines["live"].pen.width() < 3
    curves = [i for i in view.plot.plotItem.items if isinstance(i, pg.PlotDataItem)]
    assert len(curves) == 2  # side A and side B from the real log
    assert len(curves[0].getData()[0]) == 12


def test_plot_marks_nan_steps_and_session_bands(qtbot, tmp_path):
    logs = tmp_path / "m_logs"
    write_events(logs / "session_1" / "events.out.tfevents.1.x", [1, 2, 3],
                 {"face_A": [1.0, 0.9, 0.8], "face_B": [1.1, 1.0, 0.9]})
    write_events(logs / "session_2" / "events.out.tfevents.2.x", [4, 5, 6],
                 {"face_A": [0.7, math.nan, math.nan], "face_B": [0.8, 0.7, math.nan]})
    from fsprec.core.tblog import read_history

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.set_history(read_history(tmp_path, "m"), [])
    bands = [i for i in plot.plotItem.items if isinstance(i, pg.LinearRegionItem)]
    assert [b.getRegion() for b in bands] == [(1, 3), (4, 6)]
    (crosses,) = [i for i in plot.plotItem.items if isinstance(i, pg.ScatterPlotItem)
                  and not isinstance(i.parentItem(), pg.PlotDataItem)]
    assert list(crosses.getData()[0]) == [5, 6]


def test_a_long_log_is_drawn_as_mean_and_range_with_its_gaps():
    import numpy as np

    steps = np.arange(1, 1_000_001)
    values = np.where(steps % 2 == 0, 1.0, 3.0)
    values[500_000:501_000] = np.nan  # NaN throughout one stretch
    thinned = thin(steps, values, most=1000)
    assert thinned.starts.size == 1000 and thinned.starts[0] == 1
    assert np.nanmax(thinned.mean) == np.nanmin(thinned.mean) == 2.0
    assert set(thinned.low[np.isfinite(thinned.low)]) == {1.0}
    assert set(thinned.high[np.isfinite(thinned.high)]) == {3.0}
    assert np.isnan(thinned.mean[500])  # steps 500,001-501,000 hold the NaN stretch
    assert thin(steps[:1000], values[:1000], most=1000) is None


def test_plot_without_logs_says_so(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.set_history(None, [])
    texts = [i.toPlainText() for i in plot.plotItem.items if isinstance(i, pg.TextItem)]
    assert texts and texts[0].startswith("No training logs")


def test_logs_read_after_the_report(view, checked):
    from dataclasses import replace

    report = replace(checked[1], loss=None)
    view.show_report(report)
    texts = [i.toPlainText() for i in view.plot.plotItem.items if isinstance(i, pg.TextItem)]
    assert texts == ["Reading the training logs…"]
    view.show_loss(checked[1].loss)
    assert len([i for i in view.plot.plotItem.items if isinstance(i, pg.PlotDataItem)]) == 2
    assert view.plot.lines["snapshot-5"].pen.width() == 3  # the selected row's line


def test_progress_and_clear(view, checked):
    view.show_running()
    view.show_progress("Checking 1 of 5: Live model", 50, 100)
    assert view.progress.isVisibleTo(view) and view.progress.value() == 500
    assert view.cancel_button.isVisibleTo(view)
    view.show_report(checked[1])
    assert not view.progress.isVisibleTo(view)
    view.clear()
    assert view.table.rowCount() == 0 and view.report is None
    assert not view.rollback.isEnabled()


def open_health(qtbot, window, folder) -> HealthView:
    """Open ``folder`` in the window, show the Health tab, wait for its report and logs."""
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    return wait_checked(qtbot, window, window.health_action.trigger)


def wait_checked(qtbot, window, start) -> HealthView:
    """Run ``start()`` and wait until the Health tab shows a report with its training logs
    about the open model."""
    start()
    view = window.health_view()
    qtbot.waitUntil(lambda: view.report is not None and view.report.loss is not None
                    and view.report.model_dir == window.folder.path
                    and not view.progress.isVisible(), timeout=TIMEOUT_MS)
    return view


def test_the_window_checks_rolls_back_after_confirmation_and_checks_again(
        window, tmp_path, qtbot, monkeypatch):
    history = make_history(tmp_path)
    asked: list[list[str]] = []
    answers = [False, True]
    window.health.confirm = lambda plan: asked.append(plan.summary()) or answers.pop(0)
    view = open_health(qtbot, window, history.model_dir)
    assert window.views.currentWidget() is view
    assert view.badge.text() == "Damaged" and view.verdict.text().startswith("Broken")
    assert view.report.newest_clean.id == "snapshot-5"  # the check stopped there
    assert _row_texts(view, 5)[3] == "Healthy  ★ newest healthy"
    assert _row_texts(view, 5)[4] == "Not checked" and view.check_all.isEnabled()
    assert view.selected_version().id == "snapshot-5"
    assert window.browser.model.health[history.model_dir.resolve()] == "damaged"  # its badge
    assert [s.last for s in view.report.loss.sessions] == [12]
    assert "live" in view.plot.lines
    state = history.model_dir / "original_state.json"
    before = state.read_bytes()
    view.select_version("snapshot-5")
    view.rollback.click()
    qtbot.waitUntil(lambda: len(asked) == 1 and not window.job_status.busy, timeout=TIMEOUT_MS)
    assert state.read_bytes() == before  # the first answer was No
    assert "Archived first" in " ".join(asked[0])
    assert "Roll back cancelled; nothing was changed." in window.log_view.toPlainText()
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):  # the model is reopened
        view.rollback.click()
    assert json.loads(state.read_text())["iterations"] == 5
    assert "the previous files are in" in window.log_view.toPlainText()
    (archive,) = [p for p in history.model_dir.glob("original_archived_*")
                  if p != history.archive]  # the live files were moved there, not deleted
    assert json.loads((archive / "original_state.json").read_text())["iterations"] == 12
    assert (archive / "original.keras").is_file()
    qtbot.waitUntil(lambda: view.report is not None and view.report.live.iterations == 5
                    and view.report.loss is not None, timeout=TIMEOUT_MS)
    assert view.report.live.verdict == "clean" and view.badge.text() == "Healthy"
    view.check_all.click()  # every version, not just down to the first clean one
    qtbot.waitUntil(lambda: view.report.complete and view.report.loss is not None,
                    timeout=TIMEOUT_MS)
    assert "Not checked" not in _row_texts(view, 5)


def test_opening_another_model_mid_check_shows_only_the_new_one(
        window, tmp_path, qtbot, copy_fixture):
    history = make_history(tmp_path)
    other = copy_fixture("fs3/original-fp32-trained")
    wait_shown(qtbot, window, lambda: window.open_path(history.model_dir))
    window.health_action.trigger()  # checking the history...
    view = wait_checked(qtbot, window, lambda: window.open_path(other))  # ...superseded
    assert view.report.model_dir == other.resolve()
    assert [v.id for v in view.report.versions] == ["live", "backup"]
    assert window.views.currentWidget() is view


def test_the_advice_switch_goes_through_the_switch_flow(window, qtbot, monkeypatch):
    from fsprec.core.health import Advice

    wait_shown(qtbot, window, window.open_demo)
    view = window.health_view()
    window.ctx.show_tab(view, "Health")
    planned: list[tuple[str, tuple[str, ...]]] = []
    monkeypatch.setattr(window.switching, "switch",
                        lambda: planned.append((window.switch_choice().target,
                                                window.switch_choice().pins)))
    layer = window.folder.eligible[0]  # the demo model is float32
    view._set_advice(SimpleNamespace(advice=[
        Advice("pin", f"Keep {layer} in float32.", target="mixed_float16", pins=(layer,))]))
    _button(view.advice_box, "Pin 1 layer").click()
    assert window.views.currentWidget() is window.center  # the switch button is in view
    assert window.panel.model.pins() == [layer]
    assert planned == [("mixed_float16", (layer,))]  # the switch asks for confirmation
    window.ctx.show_tab(view, "Health")
    view._set_advice(SimpleNamespace(advice=[
        Advice("switch", "Train in float32.", target="float32")]))
    _button(view.advice_box, "Switch to float32").click()
    assert len(planned) == 1 and "not float32" in window.log_view.toPlainText()


def test_badges_from_the_cache_then_in_the_background(window, tmp_path, qtbot, monkeypatch,
                                                      message_boxes):
    history = make_history(tmp_path)
    badges, model = window.badges, window.browser.model
    badges.request([history.model_dir, history.snapshot_clean])
    qtbot.waitUntil(lambda: len(model.health) == 2, timeout=TIMEOUT_MS)
    assert model.health == {history.model_dir: "damaged", history.snapshot_clean: "clean"}
    model.health.clear()

    def no_weights_read(*args):
        raise AssertionError("a cached verdict was checked again")
    monkeypatch.setattr(health, "check_live", no_weights_read)
    badges.request([history.model_dir])  # cached now: no weights are read
    qtbot.waitUntil(lambda: bool(model.health), timeout=TIMEOUT_MS)
    assert model.health == {history.model_dir: "damaged"}
    assert message_boxes == []  # nothing failed


def test_the_browser_shows_each_models_health(window, tmp_path, qtbot):
    from fsprec.gui.browser import HEALTH_ROLE

    history = make_history(tmp_path)
    window.browsing.set_root(tmp_path)
    model = window.browser.model
    qtbot.waitUntil(lambda: model.rowCount() > 0 and all(
        e.path in model.health for e in model.entries if e.plugin), timeout=TIMEOUT_MS)
    rows = {model.entries[row].path.name: model.index(row) for row in range(model.rowCount())}
    assert rows["original"].data(HEALTH_ROLE) == "damaged"
    assert "Health: Damaged" in rows["original"].data(Qt.ItemDataRole.ToolTipRole)
    assert rows[history.snapshot_clean.name].data(HEALTH_ROLE) == "clean"
    assert rows[history.snapshot_at_risk.name].data(HEALTH_ROLE) == "at_risk"
    window.browser.list.grab()  # the delegate paints the dots without error


_SCREENSHOT = """
import sys
import time
from pathlib import Path
sys.path.insert(0, "tests")
from PySide6.QtCore import QSettings
from health_factory import make_history
from fsprec.gui.app import create_app
from fsprec.gui.main_window import MainWindow
from fsprec.gui.prefs import AppSettings
app = create_app([])
root = Path(sys.argv[1])
history = make_history(root / "models")
settings = AppSettings(QSettings(str(root / "settings.ini"), QSettings.Format.IniFormat))
settings.models_root = str(root / "models")
window = MainWindow(settings, data_dir=root / "data")
window.resize(1440, 900)
window.show()
def wait(done):
    end = time.monotonic() + 240
    while not done():
        app.processEvents()
        time.sleep(0.01)
        assert time.monotonic() < end, "timed out"
    for _ in range(30):
        app.processEvents()
window.open_path(history.model_dir)
wait(lambda: window.folder is not None and not window.job_status.busy)
window.health_action.trigger()
view = window.health_view()
wait(lambda: view.report is not None and view.report.loss is not None
     and not view.progress.isVisible() and len(window.browser.model.health) == 3)
assert window.grab().save(sys.argv[2])
window.close()
"""


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")
def test_screenshot_on_a_real_display(tmp_path):
    """The real window's Health tab on a history made from a real Faceswap fixture, drawn by
    X11 (the picture in docs/screenshot-health.png comes from here)."""
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1440x900x24",
                               "-nolisten", "tcp"], pass_fds=(write,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    try:
        if not number:
            pytest.skip("Xvfb did not start")
        shot = REPO / "artifacts" / "screenshots" / "health.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DISPLAY": f":{number}", "QT_QPA_PLATFORM": "xcb",
               "FSPREC_CACHE_DIR": str(tmp_path / "cache")}
        subprocess.run([sys.executable, "-c", _SCREENSHOT, str(tmp_path / "window"),
                        str(shot)], env=env, cwd=REPO, check=True, timeout=300)
        from PySide6.QtGui import QImage

        image = QImage(str(shot))
        assert image.width() == 1440 and image.height() == 900
    finally:
        server.terminate()
        server.wait(timeout=10)

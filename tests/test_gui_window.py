"""The main window, offscreen: opening models, the one-click switch, cancel, errors, actions."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QModelIndex, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QDialog

from conftest import copy_tree, fixture_path, needs_fixtures, snapshot
from fsprec.core import convert, open_model
from fsprec.core.task import Task
from fsprec.gui.dialogs import ConversionDialog, SettingsDialog, about_text
from fsprec.gui.layer_model import LAYER_ROLE, Column

TIMEOUT_MS = 20_000


def wait_shown(qtbot, window, start) -> None:
    """Run ``start()`` and wait until the model's tree and parameter counts are on screen."""
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        start()


def shown_layers(window) -> dict[str, tuple[str, str]]:
    """path -> (dtype cell, eligible cell) of every row of the layer tree."""
    model, found = window.panel.model, {}

    def visit(parent):
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            layer = index.data(LAYER_ROLE)
            found[layer.path] = (index.siblingAtColumn(Column.DTYPE).data(),
                                 index.siblingAtColumn(Column.ELIGIBLE).data())
            visit(index)
    visit(QModelIndex())
    return found


def accept_dialogs(monkeypatch) -> list[ConversionDialog]:
    """Make the conversion dialog answer "Switch" at once; returns the dialogs shown."""
    shown: list[ConversionDialog] = []

    def exec_(dialog):
        shown.append(dialog)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ConversionDialog, "exec", exec_)
    return shown


def switch_and_wait(qtbot, window) -> None:
    """Click the switch button and wait until the converted model is shown again."""
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        qtbot.mouseClick(window.panel.switch_button, Qt.MouseButton.LeftButton)


def hold_in(stage: str, monkeypatch) -> threading.Event:
    """Make a core job sit in ``stage`` until it is cancelled; returns "reached" event."""
    reached = threading.Event()
    original = Task.progress

    def progress(task, name, done, total):
        original(task, name, done, total)
        if name == stage:
            reached.set()
            while not task.cancelled:
                time.sleep(0.005)

    monkeypatch.setattr(Task, "progress", progress)
    return reached


class Heartbeat:
    """Measures the longest gap between ticks of a 5 ms timer on the GUI thread."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now

    def __enter__(self) -> Heartbeat:
        self._last = time.perf_counter()
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.stop()


WINDOW_WITHOUT_KERAS = r"""
import json, sys
from pathlib import Path
from PySide6.QtCore import QSettings, QTimer
from fsprec.gui.app import create_app
from fsprec.gui.dialogs import about_text
from fsprec.gui.main_window import MainWindow
from fsprec.gui.prefs import AppSettings
app = create_app([])
settings = AppSettings(QSettings(sys.argv[1] + "/s.ini", QSettings.Format.IniFormat))
window = MainWindow(settings, Path(sys.argv[1]))
window.show()
built = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow", "torch", "jax"))
window.paramsShown.connect(app.quit)
QTimer.singleShot(20000, app.quit)
window.open_demo()
app.exec()
about = about_text(settings)
window.close()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow", "torch", "jax"))
print(json.dumps({"built": built, "after": heavy, "shown": window.folder is not None,
                  "about": about}))
"""


def test_window_and_demo_never_import_keras(tmp_path):
    result = subprocess.run([sys.executable, "-c", WINDOW_WITHOUT_KERAS, str(tmp_path)],
                            capture_output=True, text=True, timeout=120,
                            env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin",
                                 "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["built"] == [] and report["after"] == []
    assert report["shown"]
    assert "Keras" in report["about"] and "Qt" in report["about"]


def test_demo_opens_from_help_menu(window, qtbot, tmp_path):
    wait_shown(qtbot, window, window.models.demo_action.trigger)
    assert window.folder.path == (tmp_path / "appdata" / "fsprec-demo").resolve()
    assert "original" in window.windowTitle()
    assert window.panel.summary.text() == "35 of 42 layers eligible; model is float32."
    assert window.panel.switch_button.text() == "Switch to mixed precision (float16)"
    assert window.panel.switch_button.isEnabled()


def test_filter_box_and_toggles_in_the_window(window, qtbot):
    wait_shown(qtbot, window, window.open_demo)
    panel = window.panel

    def visible_leaves():
        found, proxy = [], panel.proxy

        def visit(parent):
            for row in range(proxy.rowCount(parent)):
                index = proxy.index(row, 0, parent)
                layer = index.data(LAYER_ROLE)
                if not layer.is_model:
                    found.append(layer.name)
                visit(index)
        visit(QModelIndex())
        return found

    qtbot.keyClicks(panel.filter_edit, "PixelShuffler")
    assert len(visible_leaves()) == 7
    assert all(panel.tree.isExpanded(panel.proxy.index(row, 0))
               for row in range(panel.proxy.rowCount()))
    panel.filter_edit.clear()
    panel.only_eligible.setChecked(True)
    assert len(visible_leaves()) == 35
    panel.only_eligible.setChecked(False)
    panel.model.set_pinned("dense", True)
    panel.only_pinned.setChecked(True)
    assert visible_leaves() == ["dense"]
    assert panel.summary.text().endswith("; 1 kept in float32.")


@needs_fixtures
@pytest.mark.parametrize("name", ["fs3/original-fp32", "fs3/original-mixed",
                                  "fs3/phaze_a-fp32", "fs2/original-fp32"])
def test_tree_shows_core_dtypes_and_eligible_marks(name, window, qtbot, copy_fixture):
    folder = copy_fixture(name)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    shown = shown_layers(window)
    core = open_model(folder)
    layers = {layer.path: layer for top in core.layer_tree() for layer in top.walk()}
    assert set(shown) == set(layers)
    for path, layer in layers.items():
        dtype, eligible = shown[path]
        assert dtype == ("inherited" if layer.is_model else layer.dtype_policy or "none (op)")
        assert eligible == ("" if layer.is_model else "yes" if layer.eligible else "no")
    leaves = [layer for layer in layers.values() if not layer.is_model]
    assert window.panel.summary.text().startswith(
        f"{sum(leaf.eligible for leaf in leaves)} of {len(leaves)} layers eligible")
    assert window.panel.badge.text().replace(" ", "_") == core.precision


@needs_fixtures
@pytest.mark.parametrize("name", ["fs3/original-fp32", "fs2/lightweight-fp32"])
def test_switch_converts_exactly_like_core(name, window, qtbot, copy_fixture, tmp_path,
                                           monkeypatch, capsys):
    ours = copy_fixture(name)
    reference = copy_tree(fixture_path(name), tmp_path / "reference")
    dialogs = accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(ours))
    with Heartbeat() as heartbeat:
        switch_and_wait(qtbot, window)
    with capsys.disabled():
        print(f"\n[{name}] longest GUI-thread stall during plan + convert + reload: "
              f"{heartbeat.longest * 1000:.1f} ms")
    assert heartbeat.longest < 2.0

    assert len(dialogs) == 1 and dialogs[0].plan.target == "mixed_float16"
    assert any("Backups:" in line for line in dialogs[0].plan.summary())
    convert.convert(reference, "mixed_float16")
    converted, expected = open_model(ours), open_model(reference)
    assert converted.config == expected.config
    assert converted.state.data == expected.state.data
    assert converted.precision == "mixed_float16"
    # The tree was re-read from the file.
    assert window.folder.precision == "mixed_float16"
    shown = shown_layers(window)
    assert all(shown[p][0] == "mixed_float16" for p, layer in
               ((layer.path, layer) for top in converted.layer_tree(False) for layer in top.walk())
               if layer.eligible)
    assert window.panel.switch_button.text() == "Switch to full precision (float32)"
    assert window.recovery.restore_action.isEnabled()  # the conversion left .bk backups


@needs_fixtures
def test_pins_keep_layers_float32_and_switch_back(window, qtbot, copy_fixture, monkeypatch):
    folder = copy_fixture("fs3/original-fp32")
    accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    window.panel.model.set_pinned("dense", True)
    assert "1 kept in float32" in window.panel.summary.text()
    switch_and_wait(qtbot, window)
    assert open_model(folder).pinned == ["dense"]
    assert shown_layers(window)["encoder/dense"][0] == "float32"
    # Unpinning on a mixed model offers to apply the pins, then switching back is offered.
    window.panel.model.set_pinned("dense", False)
    assert window.panel.switch_button.text() == "Apply float32 pins (0 layers)"
    switch_and_wait(qtbot, window)
    assert open_model(folder).pinned == []
    assert window.panel.switch_button.text() == "Switch to full precision (float32)"
    switch_and_wait(qtbot, window)
    assert open_model(folder).precision == "float32"


@needs_fixtures
def test_cancel_leaves_the_folder_byte_for_byte(window, qtbot, copy_fixture, monkeypatch):
    folder = copy_fixture("fs3/original-fp32-trained")
    accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    before = snapshot(folder)
    reached = hold_in("Writing model", monkeypatch)
    qtbot.mouseClick(window.panel.switch_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(reached.is_set, timeout=TIMEOUT_MS)
    cancel = window.job_status.cancel_button
    assert cancel.isVisible() and not window.panel.switch_button.isEnabled()
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
    assert snapshot(folder) == before
    assert "cancelled" in window.log_view.toPlainText()
    assert not cancel.isVisible() and window.panel.switch_button.isEnabled()


@needs_fixtures
def test_closing_while_a_job_runs_cancels_it(window, qtbot, copy_fixture, monkeypatch,
                                             no_dangling_threads):
    folder = copy_fixture("fs3/original-fp32")
    accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    before = snapshot(folder)
    reached = hold_in("Writing model", monkeypatch)
    window.switching.switch()
    qtbot.waitUntil(reached.is_set, timeout=TIMEOUT_MS)
    window.close()
    assert window.runner.running() == []
    assert not any(thread.isRunning() for thread in no_dangling_threads)
    assert snapshot(folder) == before


@needs_fixtures
def test_corrupt_model_shows_the_error_and_the_app_keeps_going(window, qtbot, copy_fixture,
                                                               message_boxes):
    broken = copy_fixture("fs3/original-fp32")
    model_file = broken / "original.keras"
    model_file.write_bytes(model_file.read_bytes()[:20_000])
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.open_path(broken)
    assert [kind for kind, _, _ in message_boxes] == ["critical"]
    assert "original.keras" in message_boxes[0][2]
    assert window.folder is None
    good = copy_fixture("fs3/original-mixed")
    wait_shown(qtbot, window, lambda: window.open_path(good))
    assert window.folder.precision == "mixed_float16"


@needs_fixtures
def test_failed_switch_says_nothing_changed(window, qtbot, copy_fixture, monkeypatch,
                                            message_boxes):
    folder = copy_fixture("fs3/original-fp32")
    accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    (folder / "original_state.json").write_text("{not json")  # changed behind our back
    before = snapshot(folder)
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.switching.switch()
    assert message_boxes and message_boxes[-1][0] == "critical"
    assert "state file" in message_boxes[-1][2]
    assert snapshot(folder) == before


@needs_fixtures
def test_browser_lists_models_under_the_root_and_opens_them(window, qtbot, copy_fixture,
                                                             gui_settings, tmp_path):
    root = tmp_path / "models"
    for name in ("fs3/original-fp32-backup", "fs3/original-mixed", "fs2/lightweight-fp32"):
        copy_tree(fixture_path(name), root / name.replace("/", "_"))
    (root / "broken").mkdir()
    (root / "broken" / "x.keras").write_bytes(b"not a zip")
    window.browsing.set_root(root)
    model = window.browser.model
    qtbot.waitUntil(lambda: model.rowCount() == 4, timeout=TIMEOUT_MS)
    facts = {model.label(e): e for e in model.entries}
    assert facts["fs3_original-fp32-backup"].has_backup
    assert facts["fs2_lightweight-fp32"].format == "keras2"
    assert facts["broken"].problem
    tooltip = model.index(list(facts).index("fs3_original-mixed")).data(
        Qt.ItemDataRole.ToolTipRole)
    assert "FS3" in tooltip and "original" in tooltip
    row = model.row_of((root / "fs3_original-mixed").resolve())
    rect = window.browser.list.visualRect(model.index(row))
    wait_shown(qtbot, window, lambda: qtbot.mouseClick(
        window.browser.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center()))
    assert window.folder.path == (root / "fs3_original-mixed").resolve()
    assert gui_settings.models_root == str(root)
    assert gui_settings.recent_models[0] == str(window.folder.path)


@needs_fixtures
def test_dropping_a_folder_opens_it(window, qtbot, copy_fixture):
    folder = copy_fixture("fs3/lightweight-fp32")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    wait_shown(qtbot, window, lambda: window.dropEvent(event))
    assert window.folder.plugin == "lightweight"


def test_nan_scan_reports_clean_and_poisoned_weights(window, qtbot, message_boxes):
    wait_shown(qtbot, window, window.open_demo)
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.recovery.nan_action.trigger()
    assert message_boxes[-1][0] == "information" and "No NaN" in message_boxes[-1][2]
    poison(window.folder.model_file, "layers/functional/layers/dense/vars/0")
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.recovery.nan_action.trigger()
    kind, title, text = message_boxes[-1]
    assert kind == "exec" and "NaN" in title and "1 layer(s)" in text
    # The layer is marked in the tree until the model is read again.
    model = window.panel.model
    assert model.damaged() == {"encoder/dense": "1 NaN and 0 Inf values"}
    row = next(index for index in _all_indexes(model) if
               index.data(LAYER_ROLE).path == "encoder/dense")
    assert "1 NaN and 0 Inf" in row.data(Qt.ItemDataRole.ToolTipRole)
    assert row.data(Qt.ItemDataRole.DecorationRole) is not None
    clean = next(index for index in _all_indexes(model) if
                 index.data(LAYER_ROLE).path == "encoder/dense_1")
    assert clean.data(Qt.ItemDataRole.DecorationRole) is None


def _all_indexes(model):
    """Every column-0 index of a tree model, depth first."""
    pending = [model.index(row, 0) for row in range(model.rowCount())]
    while pending:
        index = pending.pop(0)
        yield index
        pending += [model.index(row, 0, index) for row in range(model.rowCount(index))]


def poison(model_file: Path, dataset: str) -> None:
    """Write a NaN into one weight of a .keras file (test set-up only)."""
    with zipfile.ZipFile(model_file) as archive:
        members = [(info, archive.read(info.filename)) for info in archive.infolist()]
    weights = io.BytesIO(dict((i.filename, d) for i, d in members)["model.weights.h5"])
    with h5py.File(weights, "r+") as h5:
        h5[dataset][0, 0] = np.nan
    with zipfile.ZipFile(model_file, "w") as archive:
        for info, data in members:
            archive.writestr(info, weights.getvalue() if info.filename == "model.weights.h5"
                             else data)


@needs_fixtures
def test_restore_from_backup(window, qtbot, copy_fixture, monkeypatch):
    folder = copy_fixture("fs3/original-fp32")
    accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    assert not window.recovery.restore_action.isEnabled()
    switch_and_wait(qtbot, window)
    assert window.recovery.restore_action.isEnabled()
    assert window.folder.precision == "mixed_float16"
    wait_shown(qtbot, window, window.recovery.restore_action.trigger)
    assert window.folder.precision == "float32"
    assert "Restored" in window.log_view.toPlainText()
    assert list(folder.glob("original_archived_*"))


@needs_fixtures
def test_train_ini_checkbox_updates_faceswap(window, qtbot, copy_fixture, monkeypatch,
                                             gui_settings, tmp_path):
    faceswap = tmp_path / "faceswap"
    (faceswap / "config").mkdir(parents=True)
    ini = faceswap / "config" / "train.ini"
    ini.write_text("[global]\n# Mixed precision\nmixed_precision = False\nlowmem = False\n")
    gui_settings.faceswap_folder = str(faceswap)
    folder = copy_fixture("fs3/original-fp32")
    dialogs = accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    switch_and_wait(qtbot, window)
    assert dialogs[0].update_ini.isChecked() and "train.ini" in dialogs[0].update_ini.text()
    assert ini.read_text() == ("[global]\n# Mixed precision\nmixed_precision = True\n"
                               "lowmem = False\n")
    assert "Updated" in window.log_view.toPlainText()


def test_settings_dialog_saves_and_the_button_follows(window, qtbot, gui_settings):
    wait_shown(qtbot, window, window.open_demo)
    dialog = SettingsDialog(gui_settings, window)
    qtbot.addWidget(dialog)
    dialog.policy.setCurrentIndex(dialog.policy.findData("mixed_bfloat16"))
    dialog.batch.setValue(4)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.backend.setCurrentIndex(dialog.backend.findData("tensorflow"))
    dialog.accept()
    window.refresh()
    assert (gui_settings.mixed_policy, gui_settings.validation_batch, gui_settings.device,
            gui_settings.keras_backend) == ("mixed_bfloat16", 4, "cpu", "tensorflow")
    assert window.panel.switch_button.text() == "Switch to mixed precision (bfloat16)"
    assert "tensorflow" in about_text(gui_settings)


def test_window_remembers_the_models_root(no_dangling_threads, gui_settings, qtbot, tmp_path):
    from fsprec.gui.main_window import MainWindow

    root = tmp_path / "models"
    root.mkdir()
    gui_settings.models_root = str(root)
    win = MainWindow(gui_settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: "No Faceswap model folders" in win.browser.empty.text(),
                    timeout=TIMEOUT_MS)
    win.close()


def test_command_line_arguments():
    from fsprec.gui.app import parse_args

    assert parse_args(["--demo"]).demo and parse_args([]).folder is None
    assert parse_args(["/models/original"]).folder == Path("/models/original")


@needs_fixtures
def test_app_opens_the_folder_given_on_the_command_line(copy_fixture, tmp_path):
    folder = copy_fixture("fs3/lightweight-mixed")
    shot = tmp_path / "shot.png"
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "FSPREC_SCREENSHOT": str(shot)}
    result = subprocess.run([sys.executable, "-m", "fsprec.gui.app", str(folder)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert shot.is_file() and shot.stat().st_size > 10_000
    recent = (tmp_path / ".config" / "fsprec" / "fsprec.conf").read_text()
    assert str(folder) in recent

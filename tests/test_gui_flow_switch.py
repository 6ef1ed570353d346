"""SwitchFlow (gui/flows/switch.py): the one-click switch, pins, cancel, failures, train.ini."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from conftest import copy_tree, fixture_path, needs_fixtures, snapshot
from fsprec.core import convert, open_model
from gui_support import (TIMEOUT_MS, Heartbeat, accept_dialogs, hold_in, shown_layers,
                         switch_and_wait, wait_shown)


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


# --- partial models: the badge, the marked layers, Make Consistent ----------------------------

@needs_fixtures
def test_partial_model_is_marked_and_made_consistent(window, qtbot, copy_fixture, monkeypatch):
    from PySide6.QtCore import Qt as QtRole

    from fsprec.gui.layer_model import Column
    from test_modelfile import _faceswap_partial_phaze_a

    folder = _faceswap_partial_phaze_a(copy_fixture)
    partial = open_model(folder).partial
    dialogs = accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    panel = window.panel
    assert panel.badge.text() == "partly mixed" and partial.reason in panel.badge.toolTip()
    assert panel.model.partial() == set(partial.layers)
    index = panel.model.index_of(partial.layers[0]).siblingAtColumn(Column.NAME)
    assert "makes the model partial" in index.data(QtRole.ItemDataRole.ToolTipRole)
    assert index.data(QtRole.ItemDataRole.BackgroundRole) is not None
    action = window.switching.consistent_action
    assert action.isEnabled() and action in window.menuBar().actions()[1].menu().actions()
    with qtbot.waitSignal(window.paramsShown, timeout=TIMEOUT_MS):
        action.trigger()
    assert dialogs[0].plan.target == "float32" and dialogs[0].plan.changes
    model = open_model(folder)
    assert model.partial is None and model.precision == "float32"
    assert panel.badge.text() == "float32" and not panel.model.partial()
    assert not action.isEnabled()


def test_consistent_model_offers_no_make_consistent(window, qtbot, tmp_path):
    from factory import make_keras3

    wait_shown(qtbot, window, lambda: window.open_path(make_keras3(tmp_path / "m")))
    assert not window.switching.consistent_action.isEnabled()


# --- the conversion dialog always says what Faceswap will do next -----------------------------

def _faceswap_tree(folder, mixed: bool):
    (folder / "config").mkdir(parents=True)
    (folder / "faceswap.py").write_text("# Faceswap\n")
    ini = folder / "config" / "train.ini"
    ini.write_text(f"[global]\nmixed_precision = {mixed}\n")
    return ini


@pytest.fixture
def no_faceswap(monkeypatch, tmp_path):
    """No Faceswap anywhere fsprec looks (the tests' own home, no variable)."""
    monkeypatch.delenv("FSPREC_FACESWAP", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("USERPROFILE", raising=False)


def test_dialog_says_faceswap_will_keep_it(window, qtbot, tmp_path, monkeypatch, gui_settings,
                                           no_faceswap):
    from factory import make_keras3

    _faceswap_tree(tmp_path / "faceswap", mixed=True)
    gui_settings.faceswap_folder = str(tmp_path / "faceswap")
    dialogs = accept_dialogs(monkeypatch)
    folder = make_keras3(tmp_path / "m")
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    switch_and_wait(qtbot, window)
    assert dialogs[0].faceswap_says() == "Faceswap will keep this."
    assert dialogs[0].locate.isHidden() and dialogs[0].update_ini.isHidden()


def test_dialog_finds_faceswap_on_its_own_and_ticks_the_update(window, qtbot, tmp_path,
                                                               monkeypatch, no_faceswap):
    from factory import make_keras3

    # The model lives inside the Faceswap tree: found without any setting.
    ini = _faceswap_tree(tmp_path / "faceswap", mixed=False)
    folder = make_keras3(tmp_path / "faceswap" / "models" / "m")
    dialogs = accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    switch_and_wait(qtbot, window)
    dialog = dialogs[0]
    assert dialog.faceswap_says() == ("Faceswap will switch it back — update train.ini "
                                      "(recommended)")
    assert dialog.update_ini.isChecked()
    assert "mixed_precision = True" in ini.read_text()  # updated, as ticked
    assert (ini.parent / "train.ini.bk").is_file()


def test_locate_saves_the_faceswap_folder_and_plans_again(window, qtbot, tmp_path, monkeypatch,
                                                          gui_settings, no_faceswap):
    from PySide6.QtWidgets import QDialog, QFileDialog

    from factory import make_keras3
    from fsprec.gui.dialogs import ConversionDialog

    faceswap = tmp_path / "elsewhere" / "faceswap"
    ini = _faceswap_tree(faceswap, mixed=False)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(faceswap))
    said: list[str] = []

    def exec_(dialog):
        said.append(dialog.faceswap_says())
        if dialog.locate.isVisibleTo(dialog):
            dialog.locate.click()  # chooses ``faceswap`` and ends the dialog
            return dialog.result()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ConversionDialog, "exec", exec_)
    folder = make_keras3(tmp_path / "m")
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    switch_and_wait(qtbot, window)
    assert said[0].startswith("Faceswap not found")
    assert said[1] == "Faceswap will switch it back — update train.ini (recommended)"
    assert gui_settings.faceswap_folder == str(faceswap)
    assert "mixed_precision = True" in ini.read_text()
    assert open_model(folder).precision == "mixed_float16"

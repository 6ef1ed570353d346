"""A first start (no models folder chosen): the welcome page says what to do, and the window
offers the models folder of a Faceswap install it finds (never choosing it silently)."""
from __future__ import annotations

from PySide6.QtCore import Qt

from conftest import copy_tree, fixture_path, needs_fixtures
from gui_support import TIMEOUT_MS


def _window(qtbot, settings, tmp_path):
    from fsprec.gui.main_window import MainWindow

    win = MainWindow(settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(win)
    win.show()
    return win


@needs_fixtures
def test_first_start_offers_faceswaps_models_folder(no_dangling_threads, gui_settings,
                                                    message_boxes, qtbot, tmp_path,
                                                    monkeypatch):
    home = tmp_path / "home"
    faceswap = home / "faceswap"
    (faceswap / "config").mkdir(parents=True)
    (faceswap / "faceswap.py").write_text("# Faceswap\n")
    (faceswap / "config" / "train.ini").write_text("[global]\nmixed_precision = False\n")
    models = faceswap / "models"
    copy_tree(fixture_path("fs3/original-fp32"), models / "original")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("USERPROFILE", raising=False)
    monkeypatch.delenv("FSPREC_FACESWAP", raising=False)
    win = _window(qtbot, gui_settings, tmp_path)
    welcome = win.welcome
    assert welcome.first_steps.isVisible()
    lines = welcome.first_steps.text().splitlines()
    assert "Choose the folder that holds your Faceswap models" in lines[0]
    assert "or open the demo model" in lines[1]
    qtbot.waitUntil(welcome.use_button.isVisible, timeout=TIMEOUT_MS)
    assert welcome.use_button.text() == "Use ~/faceswap/models"
    assert gui_settings.faceswap_folder == str(faceswap)  # the empty setting is filled
    assert gui_settings.models_root == ""  # offered, not chosen
    qtbot.mouseClick(welcome.use_button, Qt.MouseButton.LeftButton)
    assert gui_settings.models_root == str(models)
    qtbot.waitUntil(lambda: win.browser.model.rowCount() == 1, timeout=TIMEOUT_MS)
    assert win.browser.model.entries[0].path == (models / "original").resolve()
    assert welcome.first_steps.isHidden() and welcome.use_button.isHidden()
    win.close()


def test_first_start_without_faceswap_offers_nothing(no_dangling_threads, gui_settings,
                                                     message_boxes, qtbot, tmp_path,
                                                     monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("USERPROFILE", raising=False)
    monkeypatch.delenv("FSPREC_FACESWAP", raising=False)
    gui_settings.faceswap_folder = ""
    win = _window(qtbot, gui_settings, tmp_path)
    qtbot.waitUntil(lambda: not win.browsing.looking.running, timeout=TIMEOUT_MS)
    assert win.welcome.first_steps.isVisible() and win.welcome.use_button.isHidden()
    assert gui_settings.faceswap_folder == ""
    win.close()


def test_a_chosen_models_folder_is_no_first_start(no_dangling_threads, gui_settings,
                                                  message_boxes, qtbot, tmp_path):
    (tmp_path / "models").mkdir()
    gui_settings.models_root = str(tmp_path / "models")
    win = _window(qtbot, gui_settings, tmp_path)
    assert win.welcome.first_steps.isHidden() and not win.browsing.looking.running
    win.close()

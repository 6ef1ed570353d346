"""BrowseFlow (gui/flows/browse.py): the models folder list."""
from __future__ import annotations

from PySide6.QtCore import Qt

from conftest import copy_tree, fixture_path, needs_fixtures
from gui_support import TIMEOUT_MS, wait_shown


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

"""RecoveryFlow (gui/flows/recovery.py): the NaN/Inf scan and Restore from Backup."""
from __future__ import annotations

from PySide6.QtCore import Qt

from conftest import needs_fixtures, snapshot
from fsprec.core import open_model
from fsprec.gui.layer_model import LAYER_ROLE
from fsprec.gui.theme import warning_icon
from gui_support import TIMEOUT_MS, accept_dialogs, all_indexes, poison, switch_and_wait, wait_shown


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
    row = next(index for index in all_indexes(model) if
               index.data(LAYER_ROLE).path == "encoder/dense")
    assert "1 NaN and 0 Inf" in row.data(Qt.ItemDataRole.ToolTipRole)
    assert row.data(Qt.ItemDataRole.DecorationRole).cacheKey() == warning_icon().cacheKey()
    clean = next(index for index in all_indexes(model) if
                 index.data(LAYER_ROLE).path == "encoder/dense_1")
    assert clean.data(Qt.ItemDataRole.DecorationRole) is None


@needs_fixtures
def test_restore_from_backup(window, qtbot, copy_fixture, monkeypatch):
    folder = copy_fixture("fs3/original-fp32")
    accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    assert not window.recovery.restore_action.isEnabled()
    switch_and_wait(qtbot, window)
    assert window.recovery.restore_action.isEnabled()
    assert window.folder.precision == "mixed_float16"
    switched = snapshot(folder)
    wait_shown(qtbot, window, window.recovery.restore_action.trigger)
    assert window.folder.precision == "float32" and open_model(folder).precision == "float32"
    assert "Restored" in window.log_view.toPlainText()
    # The switched model was moved aside, byte for byte, not deleted.
    archives = list(folder.glob("original_archived_*"))
    assert len(archives) == 1
    archived = snapshot(archives[0])
    for name in ("original.keras", "original_state.json"):
        assert archived[name] == switched[name]

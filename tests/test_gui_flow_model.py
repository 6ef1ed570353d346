"""ModelFlow (gui/flows/model.py): opening models, the layer tree, parameter counts."""
from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QModelIndex

from conftest import needs_fixtures
from fsprec.core import demo, open_model
from fsprec.gui import jobs
from fsprec.gui.layer_model import LAYER_ROLE, Column
from gui_support import TIMEOUT_MS, shown_layers, wait_shown


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


def params_column(window) -> dict[str, str]:
    """path -> the Params cell of every row of the layer tree."""
    model, found = window.panel.model, {}

    def visit(parent):
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            found[index.data(LAYER_ROLE).path] = index.siblingAtColumn(Column.PARAMS).data()
            visit(index)
    visit(QModelIndex())
    return found


def test_a_superseded_parameter_count_never_reaches_the_window(window, qtbot, tmp_path,
                                                                monkeypatch):
    first = demo.ensure_demo(tmp_path / "first")
    second = demo.ensure_demo(tmp_path / "second")
    release, count = threading.Event(), jobs.layer_params

    def layer_params(folder, task):  # the first model's count is still running when the
        if folder.path == first.resolve():  # second model is opened, and ignores the cancel
            assert release.wait(10)
            return dict.fromkeys(count(folder, task), 999_999)
        return count(folder, task)

    monkeypatch.setattr(jobs, "layer_params", layer_params)
    with qtbot.waitSignal(window.modelShown, timeout=TIMEOUT_MS):
        window.open_path(first)
    wait_shown(qtbot, window, lambda: window.open_path(second))
    expected = params_column(window)
    late = []
    window.paramsShown.connect(lambda: late.append(True))
    release.set()
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=TIMEOUT_MS)
    assert late == [] and window.folder.path == second.resolve()
    assert params_column(window) == expected

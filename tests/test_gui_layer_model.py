"""The layer tree item model and its filter proxy, on real Faceswap configs."""
from __future__ import annotations

from functools import partial

import pytest
from PySide6.QtCore import QModelIndex, Qt

from conftest import fixture_path, needs_fixtures
from fsprec.core import open_model
from fsprec.core.layers import Layer
from fsprec.gui.layer_model import (LAYER_ROLE, Column, LayerFilterProxy, LayerTreeModel,
                                    dtype_label)
from fsprec.gui.theme import TINT_ALPHA, policy_color, text_on, tint

pytestmark = needs_fixtures


def walk(model, parent=QModelIndex()):
    """(index, layer) of every row, depth first."""
    for row in range(model.rowCount(parent)):
        index = model.index(row, 0, parent)
        yield index, index.data(LAYER_ROLE)
        yield from walk(model, index)


def cell_data(index, column, role=Qt.ItemDataRole.DisplayRole):
    """The data of another column of ``index``'s row."""
    return index.siblingAtColumn(column).data(role)


def visible_paths(proxy) -> list[str]:
    return [layer.path for _, layer in walk(proxy)]


def make_model(name: str, qapp) -> tuple[LayerTreeModel, LayerFilterProxy, list[Layer]]:
    folder = open_model(fixture_path(name))
    model = LayerTreeModel()
    model.set_layers(folder.layer_tree(with_params=False), folder.pinned)
    model.set_params({layer.path: layer.params for top in folder.layer_tree()
                      for layer in top.walk()})
    proxy = LayerFilterProxy()
    proxy.setSourceModel(model)
    return model, proxy, folder.layer_tree()


@pytest.mark.parametrize("name", ["fs3/original-fp32", "fs3/phaze_a-mixed", "fs2/original-fp32"])
def test_model_is_consistent(name, qapp, qtmodeltester):
    model, proxy, _ = make_model(name, qapp)
    qtmodeltester.check(model, force_py=True)
    proxy.set_text("conv")
    qtmodeltester.check(proxy, force_py=True)


@pytest.mark.parametrize("name", ["fs3/original-fp32", "fs3/original-mixed",
                                  "fs3/phaze_a-fp32", "fs3/original-fp32-switched-to-mixed",
                                  "fs2/lightweight-mixed"])
def test_cells_match_core_layers(name, qapp):
    model, _, tree = make_model(name, qapp)
    expected = {layer.path: layer for top in tree for layer in top.walk()}
    seen = 0
    for index, layer in walk(model):
        seen += 1
        core = expected[layer.path]
        cell = partial(cell_data, index)

        assert cell(Column.NAME) == core.name
        assert cell(Column.CLASS) == core.class_name
        assert cell(Column.DTYPE) == ("inherited" if core.is_model else
                                      core.dtype_policy or "none (op)")
        assert core.reason in cell(Column.ELIGIBLE, Qt.ItemDataRole.ToolTipRole)
        assert cell(Column.PARAMS) == ("0" if core.params == 0 else f"{core.params:,}")
        if core.is_model:
            assert cell(Column.ELIGIBLE) == ""
            assert cell(Column.PIN, Qt.ItemDataRole.CheckStateRole) is None
            continue
        assert cell(Column.ELIGIBLE) == ("yes" if core.eligible else "no")
        assert (cell(Column.ELIGIBLE, Qt.ItemDataRole.DecorationRole) is not None) \
            == core.eligible
        if core.dtype_policy:
            assert cell(Column.DTYPE, Qt.ItemDataRole.BackgroundRole) == \
                tint(policy_color(core.dtype_policy))
        checkable = bool(index.siblingAtColumn(Column.PIN).flags()
                         & Qt.ItemFlag.ItemIsUserCheckable)
        assert checkable == core.eligible
    assert seen == len(expected)


def test_summary_counts_match_the_fixture_table(qapp):
    model, _, _ = make_model("fs3/original-fp32", qapp)
    leaves = model.leaves()
    assert (sum(layer.eligible for layer in leaves), len(leaves)) == (35, 42)


def test_text_filter_keeps_parents_of_matches(qapp):
    _, proxy, _ = make_model("fs3/original-fp32", qapp)
    proxy.set_text("PixelShuffler")  # a class name, case-insensitive
    paths = visible_paths(proxy)
    assert {p for p in paths if "/" not in p} == {"encoder", "decoder_a", "decoder_b"}
    leaves = [p for p in paths if "/" in p]
    assert len(leaves) == 7 and all(p.endswith("_pixelshuffler") for p in leaves)
    proxy.set_text("decoder_b/")  # a path: every layer of that sub-model
    assert visible_paths(proxy)[0] == "decoder_b" and len(visible_paths(proxy)) == 1 + 12
    proxy.set_text("")
    assert len(visible_paths(proxy)) == 42 + 3


def test_dtype_filter_on_a_mixed_model(qapp):
    _, proxy, tree = make_model("fs3/original-mixed", qapp)
    proxy.set_text("mixed_float16")
    leaves = [p for p in visible_paths(proxy) if "/" in p]
    mixed = [layer.path for top in tree for layer in top.walk()
             if layer.dtype_policy == "mixed_float16"]
    assert leaves == mixed and len(mixed) == 35


def test_only_eligible_and_only_pinned_toggles(qapp):
    model, proxy, _ = make_model("fs3/original-fp32", qapp)
    proxy.set_only_eligible(True)
    leaves = [layer for _, layer in walk(proxy) if not layer.is_model]
    assert len(leaves) == 35 and all(layer.eligible for layer in leaves)
    proxy.set_only_eligible(False)
    proxy.set_only_pinned(True)
    assert visible_paths(proxy) == []
    model.set_pinned("dense", True)  # the proxy follows pin changes
    assert visible_paths(proxy) == ["encoder", "encoder/dense"]
    assert model.pins() == ["dense"]


def test_pin_checkbox_edits_pins_of_eligible_layers_only(qapp):
    model, _, _ = make_model("fs3/original-fp32", qapp)
    by_path = {layer.path: index for index, layer in walk(model)}
    dense = by_path["encoder/dense"].siblingAtColumn(Column.PIN)
    assert model.setData(dense, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert dense.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    output = by_path["decoder_a/face_out_a_0"].siblingAtColumn(Column.PIN)
    assert not model.setData(output, Qt.CheckState.Checked.value,
                             Qt.ItemDataRole.CheckStateRole)
    assert model.pins() == ["dense"]


def test_mixed_model_with_pins_shows_them_checked(qapp):
    folder = open_model(fixture_path("fs3/original-mixed"))
    model = LayerTreeModel()
    model.set_layers(folder.layer_tree(with_params=False), ["dense_1"])
    assert model.pins() == ["dense_1"]
    assert dtype_label(folder.layer_tree(False)[2]) == "inherited"


def test_colours_leave_text_to_the_palette(qapp):
    model, _, _ = make_model("fs3/original-mixed", qapp)
    for index, _layer in walk(model):
        for column in Column:
            cell = index.siblingAtColumn(column)
            assert cell.data(Qt.ItemDataRole.ForegroundRole) is None  # readable in any theme
            background = cell.data(Qt.ItemDataRole.BackgroundRole)
            assert background is None or background.alpha() == TINT_ALPHA < 100
    # Badges carry their own background, so their text colour follows it.
    assert text_on(policy_color("float32")).name() == "#ffffff"
    assert text_on(policy_color("mixed_float16")).name() == "#111111"

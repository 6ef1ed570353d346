"""The layer tree as a Qt item model, and the filter proxy that keeps parents of matches.

:class:`LayerTreeModel` wraps core's nested :class:`~fsprec.core.layers.Layer` tree as is
(sub-models expand); it adds only what the user edits: the pins, eligible layers kept in
float32 when the model runs in mixed precision.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (QAbstractItemModel, QModelIndex, QObject, QPersistentModelIndex,
                            QSortFilterProxyModel, Qt, Signal)
from PySide6.QtGui import QColor, QIcon

from fsprec.core.layers import Layer

from .theme import DAMAGED_COLOR, check_icon, dot_icon, policy_color, tint, warning_icon

Index = QModelIndex | QPersistentModelIndex
LAYER_ROLE = Qt.ItemDataRole.UserRole + 1
PIN_TOOLTIP = ("Keep this layer in float32 when the model runs in mixed precision "
               "(for a layer that misbehaves in float16).")


class Column(IntEnum):
    """The columns of the layer tree."""

    NAME = 0
    CLASS = 1
    DTYPE = 2
    ELIGIBLE = 3
    PARAMS = 4
    PIN = 5


COLUMN_COUNT = len(Column)
HEADERS = {Column.NAME: "Name", Column.CLASS: "Class", Column.DTYPE: "dtype policy",
           Column.ELIGIBLE: "Eligible", Column.PARAMS: "Params", Column.PIN: "Keep float32"}


def dtype_label(layer: Layer) -> str:
    """What the dtype column says: the policy, ``inherited`` for sub-models, or why none."""
    if layer.is_model:
        return "inherited"
    return layer.dtype_policy or "none (op)"


@dataclass(eq=False)
class _Node:
    """A layer with its place in the tree (what an index's internal pointer refers to)."""

    layer: Layer
    parent: _Node | None
    row: int
    children: list[_Node] = field(default_factory=list)


def _nodes(layers: list[Layer], parent: _Node | None) -> list[_Node]:
    nodes = []
    for row, layer in enumerate(layers):
        node = _Node(layer, parent, row)
        node.children = _nodes(layer.children, node)
        nodes.append(node)
    return nodes


class LayerTreeModel(QAbstractItemModel):
    """Columns Name, Class, dtype policy, Eligible, Params, Keep float32 over a Layer tree."""

    pinsChanged = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._roots: list[_Node] = []
        self._pins: set[str] = set()
        self._params: dict[str, int] = {}
        self._damaged: dict[str, str] = {}
        self._partial: set[str] = set()
        self._partial_reason = ""
        self._pins_editable = True

    # Content ---------------------------------------------------------------------------------
    def set_layers(self, layers: list[Layer], pins: Iterable[str] = (),
                   pins_editable: bool = True) -> None:
        """Show a new tree; ``pins`` are the layers currently kept in float32."""
        self.beginResetModel()
        self._roots = _nodes(layers, None)
        self._pins = set(pins)
        self._params = {}
        self._damaged = {}
        self._partial, self._partial_reason = set(), ""
        self._pins_editable = pins_editable
        self.endResetModel()
        self.pinsChanged.emit()

    def set_params(self, params: dict[str, int]) -> None:
        """Fill the Params column (counted later, off the GUI thread)."""
        self._params = dict(params)
        if self._roots:
            self._column_changed(Column.PARAMS, self._roots, QModelIndex())

    def set_damaged(self, damaged: dict[str, str]) -> None:
        """Mark layers whose weights hold NaN/Inf (path -> what was found), e.g. after a scan."""
        self._damaged = dict(damaged)
        if self._roots:
            self._column_changed(Column.NAME, self._roots, QModelIndex())

    def set_partial(self, paths: Iterable[str], reason: str) -> None:
        """Mark the layers that make the model partial (why: ``reason``)."""
        self._partial, self._partial_reason = set(paths), reason
        if self._roots:
            self._column_changed(Column.NAME, self._roots, QModelIndex())

    def partial(self) -> set[str]:
        """The layers currently marked as making the model partial."""
        return set(self._partial)

    def damaged(self) -> dict[str, str]:
        """The layers currently marked as holding NaN/Inf weights."""
        return dict(self._damaged)

    def _column_changed(self, column: Column, nodes: list[_Node], parent: Index) -> None:
        self.dataChanged.emit(self.index(0, column, parent),
                              self.index(len(nodes) - 1, column, parent))
        for node in nodes:
            if node.children:
                self._column_changed(column, node.children, self.index(node.row, 0, parent))

    def layers(self) -> list[Layer]:
        """Every layer, depth first."""
        return [layer for node in self._roots for layer in node.layer.walk()]

    def leaves(self) -> list[Layer]:
        """Every layer that is not a sub-model."""
        return [layer for layer in self.layers() if not layer.is_model]

    def pins(self) -> list[str]:
        """Pinned layer names, in config order."""
        return [layer.name for layer in self.leaves() if layer.name in self._pins]

    def is_pinned(self, layer: Layer) -> bool:
        """True when ``layer`` is kept in float32."""
        return layer.name in self._pins

    @property
    def params(self) -> dict[str, int]:
        """Parameter counts per layer path (empty until counted)."""
        return self._params

    def index_of(self, path: str) -> QModelIndex:
        """The Name cell of the layer at ``path`` (invalid when there is none)."""
        nodes, parent = self._roots, QModelIndex()
        while True:
            for node in nodes:
                if node.layer.path == path:
                    return self.index(node.row, 0, parent)
                if path.startswith(node.layer.path + "/"):
                    nodes, parent = node.children, self.index(node.row, 0, parent)
                    break
            else:
                return QModelIndex()

    # QAbstractItemModel ----------------------------------------------------------------------
    def _node(self, index: Index) -> _Node | None:
        return index.internalPointer() if index.isValid() else None

    def _children(self, parent: Index) -> list[_Node]:
        node = self._node(parent)
        return node.children if node is not None else self._roots

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        children = self._children(parent)
        if not (0 <= row < len(children) and 0 <= column < COLUMN_COUNT):
            return QModelIndex()
        return self.createIndex(row, column, children[row])

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        node = self._node(index)
        if node is None or node.parent is None:
            return QModelIndex()
        return self.createIndex(node.parent.row, 0, node.parent)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self._children(parent))

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return COLUMN_COUNT

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[Column(section)]
        if role == Qt.ItemDataRole.ToolTipRole and section == Column.PIN:
            return PIN_TOOLTIP
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        node = self._node(index)
        if node is None:
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == Column.PIN and node.layer.eligible and self._pins_editable:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        node = self._node(index)
        if node is None:
            return None
        layer, column = node.layer, index.column()
        if role == LAYER_ROLE:
            return layer
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(layer, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(layer, column)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(layer, column)
        if role == Qt.ItemDataRole.BackgroundRole:
            return self._background(layer, column)
        if role == Qt.ItemDataRole.CheckStateRole and column == Column.PIN and layer.eligible:
            return (Qt.CheckState.Checked if layer.name in self._pins
                    else Qt.CheckState.Unchecked)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == Column.PARAMS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _decoration(self, layer: Layer, column: int) -> QIcon | None:
        if column == Column.NAME and layer.path in self._damaged:
            return warning_icon()
        if column == Column.DTYPE:
            return dot_icon(policy_color(None if layer.is_model else layer.dtype_policy).name())
        if column == Column.ELIGIBLE and layer.eligible:
            return check_icon()
        return None

    def _background(self, layer: Layer, column: int) -> QColor | None:
        if column == Column.NAME and layer.path in self._damaged:
            return tint(QColor(DAMAGED_COLOR))
        if column == Column.NAME and layer.path in self._partial:
            return tint(policy_color("partial"))
        if column == Column.DTYPE and not layer.is_model and layer.dtype_policy:
            return tint(policy_color(layer.dtype_policy))
        return None

    def _display(self, layer: Layer, column: int) -> str:
        if column == Column.NAME:
            return layer.name
        if column == Column.CLASS:
            return layer.class_name
        if column == Column.DTYPE:
            return dtype_label(layer)
        if column == Column.ELIGIBLE:
            return "" if layer.is_model else ("yes" if layer.eligible else "no")
        if column == Column.PARAMS:
            count = self._params.get(layer.path)
            return f"{count:,}" if count else ("" if count is None else "0")
        return ""

    def _tooltip(self, layer: Layer, column: int) -> str:
        if column == Column.NAME and layer.path in self._damaged:
            return f"{layer.path}: its weights hold {self._damaged[layer.path]}."
        if column == Column.NAME and layer.path in self._partial:
            return f"{layer.path}: makes the model partial — {self._partial_reason}."
        if column == Column.PIN:
            return PIN_TOOLTIP if layer.eligible else ""
        if layer.is_model:
            return f"{layer.path}: sub-model; its layers carry their own dtype policies."
        verdict = "may run in mixed precision" if layer.eligible else "stays float32"
        return f"{layer.path}: {verdict} ({layer.reason})."

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        node = self._node(index)
        if (node is None or role != Qt.ItemDataRole.CheckStateRole
                or index.column() != Column.PIN or not node.layer.eligible
                or not self._pins_editable):
            return False
        checked = Qt.CheckState(value) == Qt.CheckState.Checked
        self.set_pinned(node.layer.name, checked)
        return True

    def set_pins(self, names: Iterable[str]) -> None:
        """Keep exactly these eligible layers in float32 (other names are ignored)."""
        pins = set(names) & {layer.name for layer in self.leaves() if layer.eligible}
        if pins == self._pins:
            return
        self._pins = pins
        self._column_changed(Column.PIN, self._roots, QModelIndex())
        self.pinsChanged.emit()

    def set_pinned(self, name: str, pinned: bool) -> None:
        """Pin or unpin an eligible layer by name (every row with that name updates)."""
        if pinned == (name in self._pins):
            return
        if pinned:
            self._pins.add(name)
        else:
            self._pins.discard(name)
        self._column_changed(Column.PIN, self._roots, QModelIndex())
        self.pinsChanged.emit()


class LayerFilterProxy(QSortFilterProxyModel):
    """Filters on name/path, class or dtype text, and on "only eligible" / "only pinned";
    a sub-model stays visible while any of its layers matches."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setRecursiveFilteringEnabled(True)
        self._text = ""
        self._only_eligible = False
        self._only_pinned = False

    def setSourceModel(self, model: QAbstractItemModel) -> None:  # Qt name
        super().setSourceModel(model)
        if isinstance(model, LayerTreeModel):
            model.pinsChanged.connect(self._pins_changed)

    @property
    def active(self) -> bool:
        """True when any filter is set."""
        return bool(self._text or self._only_eligible or self._only_pinned)

    def set_text(self, text: str) -> None:
        """Show layers whose path, class or dtype contains ``text`` (case-insensitive)."""
        self._refilter(lambda: setattr(self, "_text", text.strip().lower()))

    def set_only_eligible(self, on: bool) -> None:
        """Show only layers that may run in mixed precision."""
        self._refilter(lambda: setattr(self, "_only_eligible", on))

    def set_only_pinned(self, on: bool) -> None:
        """Show only layers pinned to float32."""
        self._refilter(lambda: setattr(self, "_only_pinned", on))

    def _refilter(self, change: Any) -> None:
        self.beginFilterChange()
        change()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)  # Qt >= 6.10

    def _pins_changed(self) -> None:
        if self._only_pinned:
            self._refilter(lambda: None)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self.active:
            return True
        source = self.sourceModel()
        layer: Layer = source.index(source_row, 0, source_parent).data(LAYER_ROLE)
        if layer is None or layer.is_model:
            return False  # shown through its matching layers (recursive filtering)
        if self._only_eligible and not layer.eligible:
            return False
        if self._only_pinned and not (isinstance(source, LayerTreeModel)
                                      and source.is_pinned(layer)):
            return False
        if self._text:
            haystack = f"{layer.path}\n{layer.class_name}\n{dtype_label(layer)}".lower()
            return self._text in haystack
        return True

"""The centre of the window: the open model's header, the one-click switch, and its layers."""
from __future__ import annotations

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QSize, Qt, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QPushButton, QTreeView, QVBoxLayout,
                               QWidget)

from fsprec.core.layers import Layer, Partial

from .layer_model import LAYER_ROLE, Column, LayerFilterProxy, LayerTreeModel, dtype_label
from .theme import DAMAGED_COLOR, PRECISION_LABELS, badge_style
from .widgets import ElidedLabel

# A prominent button that follows the palette (readable in light and dark themes).
_PRIMARY_STYLE = (
    "QPushButton { background: palette(highlight); color: palette(highlighted-text);"
    " border: none; border-radius: 6px; padding: 8px 18px; font-weight: 600; }"
    "QPushButton:hover { background: palette(link); }"
    "QPushButton:disabled { background: palette(mid); color: palette(window); }")


_FITTED = (Column.CLASS, Column.DTYPE, Column.ELIGIBLE, Column.PARAMS, Column.PIN)
_CELL_PADDING = 8


class LayerPanel(QWidget):
    """Model header with the switch button, filter controls, the layer tree and a summary."""

    switchRequested = Signal()
    layerSelected = Signal(object)  # Layer | None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = LayerTreeModel(self)
        self.proxy = LayerFilterProxy(self)
        self.proxy.setSourceModel(self.model)

        self.title = QLabel()
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.45)
        font.setWeight(QFont.Weight.DemiBold)
        self.title.setFont(font)
        self.subtitle = ElidedLabel()
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.subtitle.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.badge = QLabel()
        self.badge.setAccessibleName("Model precision")
        self.in_use = QLabel()
        self.in_use.setAccessibleName("Model in use")
        self.in_use.setStyleSheet(f"QLabel {{ color: {DAMAGED_COLOR}; font-weight: 600; }}")
        self.in_use.hide()
        self.switch_button = QPushButton()
        self.switch_button.setStyleSheet(_PRIMARY_STYLE)
        self.switch_button.setMinimumHeight(38)
        self.switch_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.switch_button.clicked.connect(self.switchRequested)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter layers by name, class or dtype…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._text_changed)
        self.only_eligible = QCheckBox("Only eligible")
        self.only_eligible.setToolTip("Show only the layers that may run in mixed precision.")
        self.only_eligible.toggled.connect(self._eligible_toggled)
        self.only_pinned = QCheckBox("Only kept float32")
        self.only_pinned.setToolTip("Show only the eligible layers pinned to float32.")
        self.only_pinned.toggled.connect(self._pinned_toggled)

        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setIconSize(QSize(12, 12))
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # names differ at both ends
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(Column.NAME, QHeaderView.ResizeMode.Stretch)
        # Fitted once per content change (_fit_columns): ResizeToContents would measure every
        # row again on each change and stall the GUI thread on big models.
        for column in _FITTED:
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        self.tree.selectionModel().selectionChanged.connect(self._selection_changed)

        self.summary = QLabel()
        self.summary.setAccessibleName("Layer summary")

        top = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(2)
        heading = QHBoxLayout()
        heading.addWidget(self.title)
        heading.addWidget(self.badge)
        heading.addWidget(self.in_use)
        heading.addStretch(1)
        titles.addLayout(heading)
        titles.addWidget(self.subtitle)
        top.addLayout(titles, 1)
        top.addWidget(self.switch_button, 0, Qt.AlignmentFlag.AlignVCenter)

        filters = QHBoxLayout()
        filters.addWidget(self.filter_edit, 1)
        filters.addWidget(self.only_eligible)
        filters.addWidget(self.only_pinned)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(filters)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.summary)
        self.model.pinsChanged.connect(self._update_summary)
        self._precision = ""

    def show_model(self, title: str, subtitle: str, precision: str, tree: list[Layer],
                   pins: list[str], partial: Partial | None = None) -> None:
        """Show a model's header and layer tree; a ``partial`` model's badge says why, and
        the layers concerned are marked."""
        self.title.setText(title)
        self.subtitle.set_full_text(subtitle)
        self._precision = precision
        self.badge.setText(PRECISION_LABELS.get(precision, precision))
        self.badge.setStyleSheet(badge_style(precision))
        self.badge.setToolTip(f"Partly mixed: {partial.reason}. Model ▸ Make Consistent fixes "
                              "it." if partial else f"The model is saved in {precision}.")
        self.model.set_layers(tree, pins)
        if partial is not None:
            self.model.set_partial(partial.layers, partial.reason)
        self.tree.expandAll()
        self._fit_columns()
        self._update_summary()

    def set_params(self, params: dict[str, int]) -> None:
        """Fill in the parameter counts."""
        self.model.set_params(params)
        self._fit_columns()
        self._update_summary()

    def _fit_columns(self) -> None:
        """Size the narrow columns to their longest text, from font metrics alone (asking the
        model for every row's size hint costs milliseconds per column on big models)."""
        layers = self.model.layers()
        texts = {Column.CLASS: {layer.class_name for layer in layers},
                 Column.DTYPE: {dtype_label(layer) for layer in layers},
                 Column.ELIGIBLE: {"yes", "no"},
                 Column.PARAMS: {f"{count:,}" for count in self.model.params.values()},
                 Column.PIN: set()}
        icon = self.tree.iconSize().width() + 6
        extra = {Column.DTYPE: icon, Column.ELIGIBLE: icon}
        metrics, header = self.tree.fontMetrics(), self.tree.header()
        for column, strings in texts.items():
            width = max((metrics.horizontalAdvance(text) for text in strings), default=0)
            width += extra.get(column, 0) + 2 * _CELL_PADDING
            self.tree.setColumnWidth(column, max(width, header.sectionSizeHint(column)))

    def set_in_use(self, message: str) -> None:
        """Say beside the badge who else uses the model ("" when nobody does)."""
        self.in_use.setText(message)
        self.in_use.setToolTip(f"{message}." if message else "")
        self.in_use.setVisible(bool(message))

    def set_switch(self, text: str, tooltip: str, enabled: bool) -> None:
        """Label and enable the switch button."""
        self.switch_button.setText(text)
        self.switch_button.setToolTip(tooltip)
        self.switch_button.setEnabled(enabled)

    def selected_layer(self) -> Layer | None:
        """The layer selected in the tree, if any."""
        indexes = self.tree.selectionModel().selectedRows()
        return indexes[0].data(LAYER_ROLE) if indexes else None

    def select_path(self, path: str) -> bool:
        """Select and show the layer at ``path`` (clearing filters that hide it); False when
        the model has no such layer."""
        source = self.model.index_of(path)
        if not source.isValid():
            return False
        if not self.proxy.mapFromSource(source).isValid():
            self.filter_edit.clear()
            self.only_eligible.setChecked(False)
            self.only_pinned.setChecked(False)
        index = self.proxy.mapFromSource(source)
        parent = index.parent()
        while parent.isValid():
            self.tree.expand(parent)
            parent = parent.parent()
        self.tree.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)
        self.tree.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        self.tree.setFocus()
        return True

    def _update_summary(self) -> None:
        leaves = self.model.leaves()
        eligible = sum(1 for layer in leaves if layer.eligible)
        text = (f"{eligible} of {len(leaves)} layers eligible; model is "
                f"{PRECISION_LABELS.get(self._precision, self._precision)}")
        pins = len(self.model.pins())
        if pins:
            text += f"; {pins} kept in float32"
        self.summary.setText(text + ".")

    def _text_changed(self, text: str) -> None:
        self.proxy.set_text(text)
        self.tree.expandAll()

    def _eligible_toggled(self, on: bool) -> None:
        self.proxy.set_only_eligible(on)
        self.tree.expandAll()

    def _pinned_toggled(self, on: bool) -> None:
        self.proxy.set_only_pinned(on)
        self.tree.expandAll()

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self.layerSelected.emit(self.selected_layer())

"""The model browser: every model folder found under a root folder the user chose."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import (QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex,
                            QRect, QSize, Qt, Signal)
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListView, QPushButton, QStyle,
                               QStyledItemDelegate, QStyleOptionViewItem, QToolButton,
                               QVBoxLayout, QWidget)

from fsprec.core.scan import ScanEntry, human_size

from .theme import (HEALTH_LABELS, PRECISION_LABELS, SHORT_PRECISION_LABELS, health_color,
                    policy_color, text_on)

Index = QModelIndex | QPersistentModelIndex
ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1
HEALTH_ROLE = Qt.ItemDataRole.UserRole + 2  # the live weights' health verdict, or None
FORMAT_SHORT = {"keras3": "FS3", "keras2": "FS2"}


def entry_facts(entry: ScanEntry) -> str:
    """The second line of a browser row: format, iterations, size, backup, plugin."""
    if not entry.plugin:
        return entry.problem or "not a readable model"
    facts = [FORMAT_SHORT.get(entry.format, entry.format), f"{entry.iterations:,} it",
             human_size(entry.size)]
    if entry.has_backup:
        facts.append("backup")
    return " · ".join([*facts, entry.plugin])


class ScanListModel(QAbstractListModel):
    """The scan results, one row per model folder."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.root: Path | None = None
        self.entries: list[ScanEntry] = []
        self.health: dict[Path, str] = {}  # model folder -> its live weights' health verdict

    def set_entries(self, root: Path, entries: list[ScanEntry]) -> None:
        """Replace the list with a new scan of ``root``."""
        self.beginResetModel()
        self.root, self.entries = root, list(entries)
        self.endResetModel()

    def set_health(self, folder: Path, verdict: str) -> None:
        """Show ``verdict`` as the health badge of ``folder``'s row (kept across rescans)."""
        self.health[folder] = verdict
        row = self.row_of(folder)
        if row >= 0:
            self.dataChanged.emit(self.index(row), self.index(row))

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        entry = self.entries[index.row()]
        if role == ENTRY_ROLE:
            return entry
        if role == HEALTH_ROLE:
            return self.health.get(entry.path)
        if role == Qt.ItemDataRole.DisplayRole:
            return self.label(entry)
        if role == Qt.ItemDataRole.ToolTipRole:
            precision = PRECISION_LABELS.get(entry.precision, entry.precision)
            facts = entry_facts(entry) + (f" · {precision}" if precision else "")
            lines = [str(entry.path), facts]
            if entry.plugin and entry.problem:
                lines.append(entry.problem)
            verdict = self.health.get(entry.path)
            if verdict:
                lines.append(f"Health: {HEALTH_LABELS.get(verdict, verdict)}")
            return "\n".join(lines)
        return None

    def label(self, entry: ScanEntry) -> str:
        """The folder's path relative to the root (its name when it is the root)."""
        if self.root is not None and entry.path != self.root:
            try:
                return str(entry.path.relative_to(self.root))
            except ValueError:
                pass
        return entry.path.name

    def row_of(self, folder: Path) -> int:
        """The row showing ``folder``, or -1."""
        return next((row for row, entry in enumerate(self.entries) if entry.path == folder), -1)


class ScanDelegate(QStyledItemDelegate):
    """Two lines per model (name; facts) with a precision badge and a health dot on the
    right."""

    PAD = 6

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        height = option.fontMetrics.height()
        return QSize(200, 2 * height + 3 * self.PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        entry: ScanEntry = index.data(ENTRY_ROLE)
        self.initStyleOption(option, index)
        option.text = ""
        style = option.widget.style() if option.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter,
                              option.widget)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        text_role = (QPalette.ColorRole.HighlightedText if selected
                     else QPalette.ColorRole.Text)
        rect = option.rect.adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        bold = QFont(option.font)
        bold.setWeight(QFont.Weight.DemiBold)
        bold_metrics = QFontMetrics(bold)
        name_rect = QRect(rect.left(), rect.top(), rect.width(), bold_metrics.height())
        facts_rect = QRect(rect.left(), name_rect.bottom() + self.PAD // 2, rect.width(),
                           option.fontMetrics.height() + 2)
        painter.save()
        painter.setFont(bold)
        painter.setPen(option.palette.color(text_role))
        painter.drawText(name_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         bold_metrics.elidedText(index.data(), Qt.TextElideMode.ElideMiddle,
                                                 rect.width()))
        painter.setFont(option.font)
        badge = self._paint_badge(painter, option, facts_rect, entry)
        if badge is not None:
            facts_rect.setRight(badge.left() - self.PAD)
        dot = self._paint_health(painter, option, facts_rect, index.data(HEALTH_ROLE))
        if dot is not None:
            facts_rect.setRight(dot.left() - self.PAD)
        painter.setPen(option.palette.color(
            text_role if selected else QPalette.ColorRole.PlaceholderText))
        painter.drawText(facts_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         option.fontMetrics.elidedText(entry_facts(entry),
                                                       Qt.TextElideMode.ElideRight,
                                                       facts_rect.width()))
        painter.restore()

    def _paint_badge(self, painter: QPainter, option: QStyleOptionViewItem, rect: QRect,
                     entry: ScanEntry) -> QRect | None:
        if not entry.precision:
            return None
        text = SHORT_PRECISION_LABELS.get(entry.precision, entry.precision)
        metrics = option.fontMetrics
        width = metrics.horizontalAdvance(text) + 14
        badge = QRect(rect.right() - width, rect.top(), width, rect.height())
        color = policy_color(entry.precision)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawRoundedRect(badge, 7, 7)
        painter.setPen(text_on(color))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
        return badge


    @staticmethod
    def _paint_health(painter: QPainter, option: QStyleOptionViewItem, rect: QRect,
                      verdict: str | None) -> QRect | None:
        """A dot in the health verdict's colour, with a white mark inside when damaged."""
        if not verdict:
            return None
        size = min(rect.height(), option.fontMetrics.height()) - 2
        dot = QRect(rect.right() - size, rect.center().y() - size // 2, size, size)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(health_color(verdict))
        painter.drawEllipse(dot)
        if verdict == "damaged":
            painter.setPen(text_on(health_color(verdict)))
            painter.drawText(dot, Qt.AlignmentFlag.AlignCenter, "!")
        return dot


class ModelBrowser(QWidget):
    """Root folder chooser above the list of model folders found under it."""

    chooseRootRequested = Signal()
    rescanRequested = Signal()
    modelActivated = Signal(Path)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ScanListModel(self)
        self.root_label = QLabel()
        self.root_label.setWordWrap(True)
        self.root_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        choose = QPushButton("Choose folder…")
        choose.setToolTip("Choose the folder that holds your Faceswap model folders.")
        choose.clicked.connect(self.chooseRootRequested)
        self.rescan_button = QToolButton()
        self.rescan_button.setText("Rescan")
        self.rescan_button.setToolTip("Look for model folders again.")
        self.rescan_button.clicked.connect(self.rescanRequested)
        self.list = QListView()
        self.list.setModel(self.model)
        self.list.setItemDelegate(ScanDelegate(self.list))
        self.list.setUniformItemSizes(True)
        self.list.setMouseTracking(True)
        self.list.activated.connect(self._activated)
        self.list.clicked.connect(self._activated)
        self.empty = QLabel()
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.empty.setForegroundRole(QPalette.ColorRole.PlaceholderText)

        buttons = QHBoxLayout()
        buttons.addWidget(choose)
        buttons.addWidget(self.rescan_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        heading = QLabel("Models")
        font = heading.font()
        font.setWeight(QFont.Weight.DemiBold)
        heading.setFont(font)
        layout.addWidget(heading)
        layout.addWidget(self.root_label)
        layout.addLayout(buttons)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty, 1)
        self.set_root(None)

    def set_root(self, root: Path | None) -> None:
        """Show the chosen root (before its scan arrives)."""
        self.rescan_button.setEnabled(root is not None)
        self.root_label.setText(str(root) if root else "")
        self.root_label.setToolTip(str(root) if root else "")
        self.root_label.setVisible(root is not None)
        self._show_empty("Scanning…" if root else
                         "Choose the folder that holds your Faceswap models, or drop a folder "
                         "onto the window.")

    def set_entries(self, root: Path, entries: list[ScanEntry]) -> None:
        """Show the model folders found under ``root``."""
        self.model.set_entries(root, entries)
        self.rescan_button.setEnabled(True)
        if entries:
            self.list.show()
            self.empty.hide()
        else:
            self._show_empty(f"No Faceswap model folders under {root}.")

    def set_current(self, folder: Path | None) -> None:
        """Highlight the row of the open model, if listed."""
        row = self.model.row_of(folder) if folder else -1
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row))
        else:
            self.list.clearSelection()

    def _show_empty(self, text: str) -> None:
        self.model.set_entries(self.model.root or Path(), [])
        self.list.hide()
        self.empty.setText(text)
        self.empty.show()

    def _activated(self, index: QModelIndex) -> None:
        entry: ScanEntry | None = index.data(ENTRY_ROLE)
        if entry is not None:
            self.modelActivated.emit(entry.path)

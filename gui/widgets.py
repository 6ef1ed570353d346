"""Small widgets shared by the panels."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QPalette, QResizeEvent
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)


class ElidedLabel(QLabel):
    """A one-line label that elides its text in the middle when it does not fit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        """Show ``text``, elided to the label's width; the tooltip keeps it whole."""
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        """The text before elision."""
        return self._full

    def resizeEvent(self, event: QResizeEvent) -> None:  # Qt name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle,
                                                   max(0, self.width())))


class LogView(QPlainTextEdit):
    """The read-only log at the bottom; starts a few lines high."""

    def __init__(self) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.setMaximumBlockCount(2000)
        self.setAccessibleName("Log")

    def sizeHint(self) -> QSize:  # Qt name
        return QSize(600, 3 * self.fontMetrics().lineSpacing() + 12)


class WelcomePage(QWidget):
    """What the window shows before a model is open: what fsprec does, and two ways in. On a
    first start it says what to do, and offers a models folder found on this computer."""

    openRequested = Signal()
    demoRequested = Signal()
    useRequested = Signal(object)  # Path: the offered models folder

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("Open a Faceswap model folder")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setWeight(QFont.Weight.DemiBold)
        title.setFont(font)
        text = QLabel("fsprec shows every layer of a Faceswap model with its dtype policy, "
                      "marks the layers that may run in mixed precision, and switches the "
                      "saved model between float32 and mixed precision in one click. Weights "
                      "are never changed, and a backup is kept.\n\nPick a model in the list on "
                      "the left, open a folder, or drop one onto this window.")
        text.setWordWrap(True)
        self.first_steps = QLabel("Choose the folder that holds your Faceswap models\n"
                                  "or open the demo model")
        self.first_steps.setAccessibleName("First steps")
        font = self.first_steps.font()
        font.setWeight(QFont.Weight.DemiBold)
        self.first_steps.setFont(font)
        self.first_steps.hide()
        self.use_button = QPushButton()
        self.use_button.clicked.connect(lambda: self.useRequested.emit(self._offered))
        self.use_button.hide()
        self._offered: Path | None = None
        open_button = QPushButton("Open model folder…")
        open_button.clicked.connect(self.openRequested)
        demo_button = QPushButton("Open the demo model")
        demo_button.clicked.connect(self.demoRequested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.use_button)
        buttons.addWidget(open_button)
        buttons.addWidget(demo_button)
        buttons.addStretch(1)
        column = QWidget()
        column.setMaximumWidth(560)
        content = QVBoxLayout(column)
        content.addWidget(title)
        content.addWidget(text)
        content.addWidget(self.first_steps)
        content.addLayout(buttons)
        rows = QVBoxLayout(self)
        rows.addStretch(1)
        middle = QHBoxLayout()
        middle.addStretch(1)
        middle.addWidget(column, 4)
        middle.addStretch(1)
        rows.addLayout(middle)
        rows.addStretch(2)

    def set_first_start(self, first: bool) -> None:
        """Show (or hide) the two lines that say what to do first."""
        self.first_steps.setVisible(first)

    def offer(self, folder: Path | None) -> None:
        """Offer ``folder`` as the models folder ("Use ~/faceswap/models"); None: offer nothing."""
        self._offered = folder
        self.use_button.setVisible(folder is not None)
        if folder is not None:
            self.use_button.setText(f"Use {home_relative(folder)}")
            self.use_button.setToolTip(f"List the models in {folder}.")
            self.use_button.setDefault(True)


def home_relative(path: Path) -> str:
    """``path`` with the home folder written as ``~``."""
    try:
        return str(Path("~") / Path(path).relative_to(Path.home()))
    except ValueError:
        return str(path)


def verdict_header(name: str) -> tuple[QLabel, QLabel, QLabel]:
    """The top of a result view: a badge (accessible as ``name``), the verdict sentence (larger,
    bold, selectable) and a quieter summary line."""
    badge = QLabel()
    badge.setAccessibleName(name)
    verdict = QLabel()
    verdict.setWordWrap(True)
    verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    font = verdict.font()
    font.setPointSizeF(font.pointSizeF() * 1.15)
    font.setWeight(QFont.Weight.DemiBold)
    verdict.setFont(font)
    summary = QLabel()
    summary.setWordWrap(True)
    summary.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return badge, verdict, summary

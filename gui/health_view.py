"""The Health tab: every saved version of the model with its verdict, the loss history with
sessions, NaN steps and versions marked, advice with buttons, and roll back.

The view shows a :class:`~fsprec.core.health.HealthReport` and asks for the rest through
signals; :class:`~fsprec.gui.flows.health.HealthFlow` runs the jobs.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
                               QProgressBar, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from fsprec.core.health import AT_RISK, CLEAN, HealthReport, Version
from fsprec.core.scan import human_size
from fsprec.core.tblog import LossHistory

from .plots import RISK_COLOR, ThemedPlot
from .theme import (HEALTH_LABELS, SHORT_PRECISION_LABELS, colored_badge_style, dot_icon,
                    health_color, tint)
from .widgets import verdict_header

SIDE_COLORS = ("#0ea5e9", "#ec4899", "#14b8a6", "#8b5cf6")  # sky, pink, teal, violet
COLUMNS = ("Version", "Iterations", "Saved", "Precision", "Size", "Health")
RESTORABLE = (CLEAN, AT_RISK)
ROLLBACK_TIP = ("Make the selected version the live model; the current files are archived "
                "first, never deleted.")
MAX_ROWS_SHOWN = 8  # more versions scroll
MAX_STRETCHES = 4000  # per curve; longer logs show each stretch's mean and range


@dataclass(frozen=True)
class Thinned:
    """A long curve cut into stretches: each stretch's start, lowest, highest and mean value
    (NaN for a stretch that is NaN throughout, so gaps stay)."""

    starts: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray


def thin(steps: np.ndarray, values: np.ndarray, most: int = MAX_STRETCHES) -> Thinned | None:
    """``values`` in at most ``most`` stretches, or None when the curve is short enough to
    draw as it is (a long training logs millions of steps; a screen shows a few thousand)."""
    if steps.size <= most:
        return None
    per = -(-steps.size // most)
    padded = np.full(-(-steps.size // per) * per, np.nan)
    padded[:values.size] = values
    stretches = padded.reshape(-1, per)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN stretches
        return Thinned(steps[::per], np.nanmin(stretches, axis=1),
                       np.nanmax(stretches, axis=1), np.nanmean(stretches, axis=1))


def _faint(color: QColor, alpha: int) -> QColor:
    faint = QColor(color)
    faint.setAlpha(alpha)
    return faint


def _short(version: Version) -> str:
    """A version's name on its line in the plot."""
    return {"live": "live", "backup": "backup", "archive": "archived"}.get(
        version.kind, f"snapshot {version.iterations:,}")


class LossPlot(ThemedPlot):
    """Loss per side against iteration: sessions as bands, NaN steps as red crosses, each
    saved version as a vertical line; clicking a line emits ``versionClicked(id)``."""

    versionClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Training loss per side", {"left": "loss", "bottom": "iteration"},
                         parent)
        self.history: LossHistory | None = None
        self.versions: list[Version] = []
        self.selected: str | None = None
        self.pending = False
        self.lines: dict[str, pg.InfiniteLine] = {}

    def set_history(self, history: LossHistory | None, versions: list[Version],
                    pending: bool = False) -> None:
        """Show ``history`` with a line for each version (``pending``: the logs are still
        being read)."""
        self.history, self.versions, self.pending = history, versions, pending
        self.redraw()

    def select(self, version_id: str | None) -> None:
        """Draw the line of ``version_id`` thicker."""
        self.selected = version_id
        for key, line in self.lines.items():
            line.setPen(self._line_pen(key))

    def _line_pen(self, version_id: str) -> pg.QtGui.QPen:
        version = next(v for v in self.versions if v.id == version_id)
        chosen = version_id == self.selected
        return pg.mkPen(health_color(version.verdict), width=3 if chosen else 1.5,
                        style=Qt.PenStyle.SolidLine if chosen else Qt.PenStyle.DashLine)

    def draw(self, text: QColor) -> None:
        self.lines = {}
        history = self.history
        if self.pending:
            return self.note("Reading the training logs…", text)
        if history is None or not history.sessions:
            return self.note("No training logs: Faceswap writes them to <plugin>_logs while "
                             "it trains (unless logging is turned off).", text)
        curves = {side: history.curve(side) for side in history.sides}
        finite = [values[np.isfinite(values)] for _, values in curves.values()]
        finite = [values for values in finite if values.size]
        top = max(float(values.max()) for values in finite) if finite else 1.0
        low = min(float(values.min()) for values in finite) if finite else 0.0
        self._bands(history, text, top)
        legend = self.legend(text, columns=1)
        for number, (side, (steps, values)) in enumerate(curves.items()):
            color = QColor(SIDE_COLORS[number % len(SIDE_COLORS)])
            thinned = thin(steps, values)
            if thinned is None:
                curve = pg.PlotDataItem(steps, values, connect="finite",
                                        pen=pg.mkPen(color, width=1.5))
                self.addItem(curve)
                legend.addItem(curve, f"side {side.removeprefix('face_')}")
                continue
            lows = pg.PlotCurveItem(thinned.starts, thinned.low, connect="finite", pen=None)
            highs = pg.PlotCurveItem(thinned.starts, thinned.high, connect="finite", pen=None)
            self.addItem(pg.FillBetweenItem(lows, highs, brush=pg.mkBrush(_faint(color, 60))))
            curve = pg.PlotDataItem(thinned.starts, thinned.mean, connect="finite",
                                    pen=pg.mkPen(color, width=2))
            self.addItem(curve)
            legend.addItem(curve, f"side {side.removeprefix('face_')} (mean; range shaded)")
        nan_steps = history.nan_steps()
        if nan_steps:
            crosses = pg.ScatterPlotItem(nan_steps, [top] * len(nan_steps), symbol="x", size=11,
                                         pen=pg.mkPen(RISK_COLOR, width=2),
                                         brush=pg.mkBrush(RISK_COLOR))
            self.addItem(crosses)
            legend.addItem(crosses, f"loss NaN ({len(nan_steps)} step"
                                    f"{'s' if len(nan_steps) != 1 else ''})")
        for version in self.versions:
            if version.iterations <= 0:
                continue
            line = pg.InfiniteLine(version.iterations, angle=90, movable=False,
                                   pen=self._line_pen(version.id),
                                   hoverPen=pg.mkPen(health_color(version.verdict), width=4),
                                   label=_short(version), labelOpts={
                                       "position": 0.06, "color": text, "rotateAxis": (1, 0),
                                       "anchors": [(0, 0), (0, 0)]})
            line.setToolTip(f"{version.label}: {HEALTH_LABELS[version.verdict]}")
            line.sigClicked.connect(lambda _line, _event, key=version.id:
                                    self.versionClicked.emit(key))
            self.addItem(line)
            self.lines[version.id] = line
        first = min(s.first for s in history.sessions if s.first is not None)
        last = max([s.last for s in history.sessions if s.last is not None]
                   + [v.iterations for v in self.versions])
        span = (top - low) or abs(top) * 0.1 or 1.0
        self.plotItem.setYRange(low - 0.05 * span, top + 0.35 * span, padding=0)
        self.plotItem.setXRange(first, last + max(1, (last - first) * 0.03), padding=0)

    def _bands(self, history: LossHistory, text: QColor, top: float) -> None:
        for index, session in enumerate(history.sessions):
            if session.first is None or session.last is None:
                continue
            band = pg.LinearRegionItem((session.first, max(session.last, session.first + 0.5)),
                                       movable=False, brush=pg.mkBrush(
                                           _faint(text, 18 if index % 2 == 0 else 34)),
                                       pen=pg.mkPen(None))
            band.setZValue(-10)
            self.addItem(band)
            label = pg.TextItem(f"session {session.number}", color=_faint(text, 160),
                                anchor=(0, 1))
            label.setPos(session.first, top)
            self.addItem(label)


class HealthView(QWidget):
    """Shows a model's health report; asks the flow for checks, roll backs and switches."""

    checkRequested = Signal(bool)  # True: check every version
    cancelRequested = Signal()
    rollbackRequested = Signal(str)  # a version id
    switchRequested = Signal(str, list)  # target precision, layer names to keep in float32
    versionSelected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: HealthReport | None = None
        self.badge, self.verdict, self.summary = verdict_header("Health")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.check_all = QPushButton("Check every version")
        self.check_all.setToolTip("By default the check stops at the newest healthy version.")
        self.check_all.clicked.connect(lambda: self.checkRequested.emit(True))
        self.check_again = QPushButton("Check again")
        self.check_again.clicked.connect(lambda: self.checkRequested.emit(False))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.rollback = QPushButton("Roll back to this version…")
        self.rollback.setToolTip(ROLLBACK_TIP)
        self._blocked = ""  # why nothing may rewrite the model now ("" when it may)
        self.rollback.clicked.connect(self._rollback_selected)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAccessibleName("Versions")
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.plot = LossPlot()
        self.plot.versionClicked.connect(self.select_version)
        self.advice_box = QGroupBox("What to do")
        self.advice_layout = QVBoxLayout(self.advice_box)

        heading = QHBoxLayout()
        heading.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignTop)
        heading.addWidget(self.verdict, 1)
        controls = QHBoxLayout()
        controls.addWidget(self.summary, 1)
        controls.addWidget(self.progress)
        for button in (self.cancel_button, self.check_again, self.check_all):
            controls.addWidget(button)
        versions = QWidget()
        column = QVBoxLayout(versions)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.table)
        below = QHBoxLayout()
        below.addWidget(self.details, 1)
        below.addWidget(self.rollback, 0, Qt.AlignmentFlag.AlignTop)
        column.addLayout(below)
        column.addWidget(self.advice_box)
        layout = QVBoxLayout(self)
        layout.addLayout(heading)
        layout.addLayout(controls)
        layout.addWidget(versions)
        layout.addWidget(self.plot, 1)
        self.clear()

    # States ----------------------------------------------------------------------------------
    def clear(self, message: str = "Open a model to check its health.") -> None:
        """Forget the report (another model was opened)."""
        self.report = None
        self.table.setRowCount(0)
        self.plot.set_history(None, [])
        self._set_advice(None)
        self._heading(None, message, "")
        self.details.clear()
        self._running(False)
        self.check_again.setEnabled(False)
        self.check_all.setEnabled(False)
        self.rollback.setEnabled(False)

    def show_running(self, what: str = "Checking the saved versions…") -> None:
        """A check started."""
        self._running(True)
        self.progress.setRange(0, 0)
        if self.report is None:
            self._heading(None, what, "Each version's weights are read once, newest first.")

    def show_progress(self, stage: str, done: int, total: int) -> None:
        """The running job reached ``stage``."""
        self._running(True)
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(done, total) / total))
        else:
            self.progress.setRange(0, 0)
        self.progress.setFormat(stage)
        self.progress.setToolTip(stage)

    def show_stopped(self, message: str) -> None:
        """The job ended without a report; the previous report (if any) stays."""
        self._running(False)
        if self.report is None:
            self._heading(None, message, "")
            self.check_again.setEnabled(True)
        else:
            self.summary.setText(message)

    def show_report(self, report: HealthReport) -> None:
        """Show ``report``: the timeline, the loss history, the advice."""
        self.report = report
        self._running(False)
        live, clean = report.live, report.newest_clean
        count = len(report.versions)
        counted = f"{count} saved version{'s' if count != 1 else ''}"
        newest = ("no healthy version found" if clean is None else
                  "the live model is the newest healthy version" if clean is live else
                  f"newest healthy: {clean.label}")
        self._heading(live.verdict, live.summary, f"{counted}; {newest}.")
        self._fill_table(report)
        self.plot.set_history(report.loss, report.versions, pending=report.loss is None)
        self._set_advice(report)
        self.check_again.setEnabled(True)
        self.check_all.setEnabled(not report.complete)
        self.select_version(clean.id if clean is not None and clean is not live else live.id)

    def show_loss(self, history: LossHistory) -> None:
        """The training logs of the shown report were read."""
        self._running(False)
        if self.report is None:
            return
        self.report.loss = history
        self.plot.set_history(history, self.report.versions)
        selected = self.selected_version()
        self.plot.select(selected.id if selected is not None else None)

    def select_version(self, version_id: str) -> None:
        """Select the timeline row of ``version_id``."""
        if self.report is None:
            return
        for row, version in enumerate(self.report.versions):
            if version.id == version_id:
                self.table.selectRow(row)
                return

    def selected_version(self) -> Version | None:
        """The version of the selected row."""
        rows = self.table.selectionModel().selectedRows()
        if self.report is None or not rows:
            return None
        return self.report.versions[rows[0].row()]

    # Parts -----------------------------------------------------------------------------------
    def _running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        for button in (self.check_again, self.check_all):
            button.setVisible(not running)
        self._enable_writes()

    def set_blocked(self, reason: str) -> None:
        """Disable roll back and the advice's buttons with ``reason`` as their tooltip (Faceswap
        is training the model, say); "" enables them again."""
        self._blocked = reason
        self._enable_writes()

    def _enable_writes(self) -> None:
        running = not self.progress.isHidden()
        self.rollback.setEnabled(not running and not self._blocked
                                 and self._restorable(self.selected_version()))
        self.rollback.setToolTip(self._blocked or ROLLBACK_TIP)
        for button in self.advice_box.findChildren(QPushButton):
            button.setEnabled(not running and not self._blocked)

    def _heading(self, verdict: str | None, text: str, summary: str) -> None:
        self.badge.setVisible(verdict is not None)
        self.badge.setText(HEALTH_LABELS.get(verdict or "", ""))
        self.badge.setStyleSheet(colored_badge_style(health_color(verdict)))
        self.verdict.setText(text)
        self.summary.setText(summary)

    def _fill_table(self, report: HealthReport) -> None:
        clean = report.newest_clean
        self.table.setRowCount(len(report.versions))
        for row, version in enumerate(report.versions):
            newest = version is clean
            health = HEALTH_LABELS[version.verdict] + ("  ★ newest healthy" if newest else "")
            saved = version.saved.replace("T", " ")[:16]
            cells = (version.label, f"{version.iterations:,}", saved,
                     SHORT_PRECISION_LABELS.get(version.precision, version.precision or "?"),
                     human_size(version.size) if version.size else "", health)
            for column, value in enumerate(cells):
                item = QTableWidgetItem(value)
                item.setToolTip(version.summary)
                if column in (1, 4):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if newest:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                    item.setBackground(tint(health_color(CLEAN)))
                self.table.setItem(row, column, item)
            self.table.item(row, len(COLUMNS) - 1).setIcon(
                dot_icon(health_color(version.verdict).name()))
        shown = min(max(len(report.versions), 1), MAX_ROWS_SHOWN)
        self.table.setMaximumHeight(self.table.horizontalHeader().sizeHint().height()
                                    + 2 * self.table.frameWidth() + 2
                                    + shown * self.table.verticalHeader().defaultSectionSize())

    def _selection_changed(self) -> None:
        version = self.selected_version()
        self._enable_writes()
        if version is None:
            self.details.clear()
            self.plot.select(None)
            return
        lines = [f"<b>{version.label}</b>: {version.summary}"]
        if version.check is not None:
            for layer in version.check.damaged[:8]:
                lines.append(f"• {layer.path}: {layer.damage}")
            for layer in version.check.at_risk[:8]:
                lines.append(f"• {layer.path}: {layer.risk}")
        self.details.setText("<br>".join(lines))
        self.rollback.setText("Roll back to this version…")
        self.plot.select(version.id)
        self.versionSelected.emit(version.id)

    @staticmethod
    def _restorable(version: Version | None) -> bool:
        return version is not None and version.kind != "live" and version.verdict in RESTORABLE

    def _rollback_selected(self) -> None:
        version = self.selected_version()
        if self._restorable(version):
            assert version is not None
            self.rollbackRequested.emit(version.id)

    def _set_advice(self, report: HealthReport | None) -> None:
        while self.advice_layout.count():
            item = self.advice_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
            elif item.layout() is not None:
                _drop(item.layout())
        advice = report.advice if report is not None else []
        self.advice_box.setVisible(bool(advice))
        for entry in advice:
            row = QHBoxLayout()
            label = QLabel(entry.text)
            label.setWordWrap(True)
            row.addWidget(label, 1)
            button = self._advice_button(entry.action, entry.version, entry.target,
                                         list(entry.pins))
            if button is not None:
                row.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
            self.advice_layout.addLayout(row)

    def _advice_button(self, action: str, version: str | None, target: str | None,
                       pins: list[str]) -> QPushButton | None:
        if action == "rollback" and version:
            button = QPushButton("Roll back…")
            button.clicked.connect(lambda: self.rollbackRequested.emit(version))
        elif action == "switch" and target:
            button = QPushButton("Switch to float32…")
            button.clicked.connect(lambda: self.switchRequested.emit(target, []))
        elif action == "pin" and target:
            button = QPushButton(f"Pin {len(pins)} layer{'s' if len(pins) != 1 else ''}…")
            button.setToolTip(", ".join(pins))
            button.clicked.connect(lambda: self.switchRequested.emit(target, pins))
        else:
            return None
        button.setEnabled(not self._blocked)
        if self._blocked:
            button.setToolTip(self._blocked)
        return button


def _drop(layout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item.widget() is not None:
            item.widget().deleteLater()


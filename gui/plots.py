"""pyqtgraph plots of a validation result that take their colours from the Qt palette.

Each plot keeps what it shows and draws it again when the palette changes, so axes, text and
background read well in light and dark themes. The mouse wheel scrolls the page; Ctrl+wheel
zooms a plot, and its right-click menu zooms in or out, resets the view and offers pyqtgraph's
"Export..." (PNG, SVG, CSV). The plot-options menu, whose transforms would fight the explicit
log scales here, is left out.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPalette, QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QWidget

from fsprec.core.validate.result import FLOAT16_MAX, FLOAT16_TINY, sig

from .theme import policy_color
from .validation_data import (Bars, LayerPoint, OutputError, Training, riskiest,
                              underflow_threshold)

RISK_COLOR = QColor("#ef4444")  # red: a layer or output in trouble
WARN_COLOR = QColor("#d97706")  # dark amber: a warning (underflow past the stated share)
LIMIT_COLOR = QColor("#f59e0b")  # amber, the float16 colour: float16's limits
MAX_RISK_LABELS = 5  # the riskiest layers named beside their point; hover names the rest
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(exponent: int) -> str:
    """``10⁵``-style text for a log-axis tick."""
    return "1" if exponent == 0 else "10" + str(exponent).translate(_SUPERSCRIPT)


def _text(widget: QWidget) -> QColor:
    return widget.palette().color(QPalette.ColorRole.Text)


def _faint(color: QColor, alpha: int) -> QColor:
    faint = QColor(color)
    faint.setAlpha(alpha)
    return faint


class ThemedPlot(pg.PlotWidget):
    """A plot whose background, axes, title and legend follow the palette."""

    def __init__(self, title: str, axis_labels: dict[str, str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.axis_labels = axis_labels
        self.setMinimumHeight(230)
        self.plotItem.setMenuEnabled(False, enableViewBoxMenu=True)
        self.plotItem.hideButtons()
        for name in ("left", "bottom"):
            self.getAxis(name).enableAutoSIPrefix(False)
        menu = self.plotItem.vb.menu
        menu.addSeparator()
        self.zoom_in_action = menu.addAction("Zoom in", lambda: self.zoom(0.5))
        self.zoom_out_action = menu.addAction("Zoom out", lambda: self.zoom(2.0))
        self.reset_action = menu.addAction("Reset view", self.reset_view)

    def zoom(self, factor: float) -> None:
        """Zoom about the middle of the view (< 1: in)."""
        self.plotItem.vb.scaleBy((factor, factor))

    def reset_view(self) -> None:
        """Back to the view the plot drew."""
        self.redraw()

    def wheelEvent(self, event: QWheelEvent) -> None:  # Qt name
        """Ctrl+wheel zooms; the plain wheel scrolls the page the plot sits on."""
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(event)
            return
        page = self.parentWidget()
        while page is not None and not isinstance(page, QAbstractScrollArea):
            page = page.parentWidget()
        if page is None:
            event.ignore()
        else:  # the graphics view stops an ignored wheel event; hand it to the page
            QApplication.sendEvent(page.verticalScrollBar(), event)

    def sizeHint(self) -> QSize:  # Qt name
        """As small as readable: layouts and scroll areas give plots the room there is."""
        return QSize(320, self.minimumHeight())

    def changeEvent(self, event: QEvent) -> None:  # Qt name
        super().changeEvent(event)
        themed = event.type() in (QEvent.Type.PaletteChange,
                                  QEvent.Type.ApplicationPaletteChange)
        if themed and hasattr(self, "axis_labels"):  # not while pyqtgraph builds the widget
            self.redraw()

    def redraw(self) -> None:
        """Clear and draw the plot with the current palette's colours."""
        text = _text(self)
        self.setBackground(self.palette().color(QPalette.ColorRole.Base))
        for name in ("left", "bottom"):
            axis = self.getAxis(name)
            axis.setPen(pg.mkPen(_faint(text, 150)))
            axis.setTextPen(pg.mkPen(text))
            axis.setTicks(None)
            self.plotItem.showAxis(name)
            if name in self.axis_labels:
                self.setLabel(name, self.axis_labels[name], color=text.name())
        self.plotItem.clear()
        if self.plotItem.legend is not None:
            self.plotItem.legend.clear()
            self.plotItem.legend.hide()
        self.plotItem.setTitle(self.title, color=text.name(), size="10pt")
        self.draw(text)

    def draw(self, text: QColor) -> None:
        """Add the plot's items (``text`` is the palette's text colour); each plot
        overrides this."""

    def legend(self, text: QColor, columns: int = 4) -> pg.LegendItem:
        """The legend in the top right corner, in the palette's colours, ``columns`` entries
        to a row."""
        base = self.palette().color(QPalette.ColorRole.Base)
        legend = self.plotItem.addLegend(offset=(-6, 4), verSpacing=-6)
        legend.setColumnCount(columns)
        legend.setLabelTextColor(text)
        legend.setBrush(pg.mkBrush(_faint(base, 220)))
        legend.setPen(pg.mkPen(_faint(text, 60)))
        legend.show()
        return legend

    def note(self, message: str, color: QColor) -> None:
        """A message in the middle of an otherwise empty plot."""
        self.plotItem.setXRange(0, 1)
        self.plotItem.setYRange(0, 1)
        for name in ("left", "bottom"):
            self.plotItem.hideAxis(name)
        item = pg.TextItem(message, color=color, anchor=(0.5, 0.5))
        item.setPos(0.5, 0.5)
        self.addItem(item)


class LayerPlot(ThemedPlot):
    """A plot with one point per layer in one scatter (so hover tips never compete between
    items): hovering a point names its layer; clicking one emits ``layerClicked(path)``."""

    layerClicked = Signal(str)

    def __init__(self, title: str, axis_labels: dict[str, str], hover_size: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(title, axis_labels, parent)
        self.points: list[LayerPoint] = []
        self.message = ""
        self.scatter = pg.ScatterPlotItem(hoverable=True, hoverSize=hover_size,
                                          tip=lambda x, y, data: self.points[data].tooltip)
        self.scatter.sigClicked.connect(self._clicked)

    def set_points(self, points: list[LayerPoint],
                   message: str = "No layer produced values.") -> None:
        """Show these layers (``message`` when there are none)."""
        self.points, self.message = points, message
        self.redraw()

    def _clicked(self, _item: pg.ScatterPlotItem, spots: Sequence, _event: object) -> None:
        if len(spots):
            self.layerClicked.emit(self.points[spots[0].data()].path)


class LayerRangePlot(LayerPlot):
    """Each layer's output range (max |x| and smallest non-zero |x|) against float16's limits.

    Log y axis, one x position per measured layer in model order; layers at risk in float16
    are red. Hovering a point names its layer; clicking one emits ``layerClicked(path)``.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Activation range per layer (float32 run) against float16's limits",
                         {"left": "|x|", "bottom": "layer, in model order"}, 13, parent)
        self.setMinimumHeight(340)
        self.plotItem.setLogMode(False, True)

    def draw(self, text: QColor) -> None:
        if not self.points:
            return self.note(self.message, text)
        normal = policy_color("float32")
        spots = []
        for color in (normal, WARN_COLOR, RISK_COLOR):
            chosen = [p for p in self.points if point_color(p) == color]
            self._ranges(chosen, _faint(color, 110))
            spots += [self._spot(p, "max", color) for p in chosen if p.max_abs > 0]
            spots += [self._spot(p, "min", color) for p in chosen if p.min_abs]
        self.scatter.setData(spots=spots)
        self.addItem(self.scatter)
        legend = self.legend(text, columns=2)
        for name, which, color in (("max |x|", "max", normal),
                                   ("min non-zero |x|", "min", normal),
                                   ("Inf/NaN or overflow in float16", "max", RISK_COLOR),
                                   ("underflow past the share", "max", WARN_COLOR)):
            style = self._style(which, color)
            legend.addItem(pg.ScatterPlotItem(symbol=style["symbol"], size=style["size"],
                                              pen=style["pen"], brush=style["brush"]), name)
        self._limits(text)
        self._name_risky()
        self._fit()

    def _ranges(self, points: list[LayerPoint], color: QColor) -> None:
        """A thin vertical line from each layer's smallest to its largest value."""
        x, y = [], []
        for p in points:
            if p.min_abs and p.max_abs > 0:
                x += [p.index, p.index]
                y += [math.log10(p.min_abs), math.log10(p.max_abs)]
        if x:
            self.addItem(pg.PlotCurveItem(x, y, connect="pairs", pen=pg.mkPen(color, width=2)))

    @staticmethod
    def _style(which: str, color: QColor) -> dict:
        """A filled circle for max |x|, a light triangle for the smallest non-zero |x|."""
        if which == "max":
            return {"symbol": "o", "size": 8, "pen": pg.mkPen(color), "brush": pg.mkBrush(color)}
        return {"symbol": "t", "size": 7, "pen": pg.mkPen(color),
                "brush": pg.mkBrush(_faint(color, 60))}

    def _spot(self, point: LayerPoint, which: str, color: QColor) -> dict:
        value = point.max_abs if which == "max" else point.min_abs
        return {"pos": (point.index, math.log10(value)), "data": point.index,
                **self._style(which, color)}

    def _limits(self, text: QColor) -> None:
        # Both labels hang below their line: the legend sits above the top one.
        for value, label, position, anchor in (
                (FLOAT16_MAX, "float16 max 65504", 0.01, (0, 0)),
                (FLOAT16_TINY, "float16 underflow 6e-8", 0.99, (1, 0))):
            line = pg.InfiniteLine(math.log10(value), angle=0,
                                   pen=pg.mkPen(LIMIT_COLOR, width=1.5,
                                                style=Qt.PenStyle.DashLine),
                                   label=label, labelOpts={"position": position, "color": text,
                                                           "anchors": [anchor, anchor]})
            self.addItem(line)

    def _name_risky(self) -> None:
        for p in riskiest(self.points, MAX_RISK_LABELS):
            value = p.max_abs if p.max_abs > 0 else p.min_abs
            if value:
                label = pg.TextItem(p.path.rsplit("/", 1)[-1], color=point_color(p),
                                    anchor=(-0.15, 0.5))
                label.setPos(p.index, math.log10(value))
                self.addItem(label)

    def _fit(self) -> None:
        """Show every layer and both float16 limits."""
        logs = [math.log10(v) for p in self.points for v in (p.max_abs, p.min_abs) if v]
        low = min([*logs, math.log10(FLOAT16_TINY)]) - 1.2
        high = max([*logs, math.log10(FLOAT16_MAX)]) + 2.0  # head room for the legend
        self.plotItem.setYRange(low, high, padding=0)
        self.plotItem.setXRange(-0.5, len(self.points) - 0.5, padding=0.02)
        layer_ticks(self, len(self.points))
        decades = range(math.ceil(low), math.floor(high) + 1)
        step = max(1, math.ceil(len(decades) / 9))  # a labelled tick every `step` decades
        self.getAxis("left").setTicks([[(e, power_of_ten(e)) for e in decades if e % step == 0],
                                       [(e, "") for e in decades]])

def layer_ticks(plot: ThemedPlot, count: int) -> None:
    """Whole layer numbers on the bottom axis (pyqtgraph picks halves for a few layers)."""
    if count <= 12:
        plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(count)]])


def point_color(point: LayerPoint) -> QColor:
    """Red for Inf/NaN or overflow, amber for underflow past the share, else float32's."""
    if point.severe:
        return RISK_COLOR
    return WARN_COLOR if point.risk else policy_color("float32")


class UnderflowPlot(LayerPlot):
    """Per layer, the share of non-zero values that flush to zero in float16 (dots) and that
    are subnormal (faint triangles), against the share past which a layer is flagged."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Underflow per layer: non-zero values that flush to zero in float16",
                         {"left": "% of non-zero values", "bottom": "layer, in model order"},
                         11, parent)

    def draw(self, text: QColor) -> None:
        if not self.points:
            return self.note(self.message, text)
        line = underflow_threshold()
        spots = []
        normal = policy_color("float32")
        for p in self.points:
            color = WARN_COLOR if p.risk == "underflow" else normal
            spots.append({"pos": (p.index, 100 * p.subnormal_share), "data": p.index,
                          "symbol": "t", "size": 6, "pen": pg.mkPen(_faint(normal, 120)),
                          "brush": pg.mkBrush(_faint(normal, 40))})
            spots.append({"pos": (p.index, 100 * p.underflow_share), "data": p.index,
                          "symbol": "o", "size": 7, "pen": pg.mkPen(color),
                          "brush": pg.mkBrush(color)})
        self.scatter.setData(spots=spots)
        self.addItem(self.scatter)
        legend = self.legend(text, columns=2)
        for name, symbol, color in (("flush to zero", "o", normal),
                                    ("subnormal (harmless alone)", "t", _faint(normal, 120))):
            legend.addItem(pg.ScatterPlotItem(symbol=symbol, size=7, pen=pg.mkPen(color),
                                              brush=pg.mkBrush(color)), name)
        self.addItem(pg.InfiniteLine(line, angle=0, label=f"flagged past {sig(line)}%",
                                     labelOpts={"position": 0.98, "color": text,
                                                "anchors": [(1, 1), (1, 1)]},
                                     pen=pg.mkPen(WARN_COLOR, style=Qt.PenStyle.DashLine)))
        top = max([100 * max(p.underflow_share, p.subnormal_share) for p in self.points]
                  + [line])
        self.plotItem.setYRange(0, top * 1.5, padding=0)
        self.plotItem.setXRange(-0.5, len(self.points) - 0.5, padding=0.02)
        layer_ticks(self, len(self.points))


@dataclass(frozen=True)
class Series:
    """One set of bars: a value per group (None: not measured), its colour and labels."""

    name: str
    values: Sequence[float | None]
    color: QColor
    labels: Sequence[str]
    alerts: Sequence[bool] = ()  # Inf/NaN: a full-height red bar instead of the value


class BarPlot(ThemedPlot):
    """Bars per group, side by side per series, each labelled with its value."""

    def __init__(self, title: str, unit: str, parent: QWidget | None = None) -> None:
        super().__init__(title, {"left": unit}, parent)
        self.groups: list[str] = []
        self.series: list[Series] = []
        self.message = ""
        self.line: float | None = None
        self.plotItem.setMouseEnabled(False, False)

    def set_bars(self, groups: list[str], series: list[Series], message: str = "",
                 line: float | None = None, title: str | None = None) -> None:
        """Show ``series`` over ``groups``; ``message`` instead when there are no groups;
        ``line`` is a dashed horizontal reference (a limit: say which in the title)."""
        self.groups, self.series, self.message, self.line = groups, series, message, line
        if title is not None:
            self.title = title
        self.redraw()

    def draw(self, text: QColor) -> None:
        if not self.groups:
            return self.note(self.message, text)
        legend = self.legend(text) if len(self.series) > 1 else None
        measured = [v for series in self.series for v in series.values if v is not None]
        top = max([*measured, self.line or 0.0]) or 1.0
        width = 0.8 / len(self.series)
        for number, series in enumerate(self.series):
            offset = (number - (len(self.series) - 1) / 2) * width
            xs, heights, brushes = [], [], []
            for index, value in enumerate(series.values):
                alert = index < len(series.alerts) and series.alerts[index]
                if value is None and not alert:
                    self._label(index + offset, 0.0, series.labels[index], text)
                    continue
                height = top if alert else value  # an alert (Inf/NaN) fills the plot in red
                xs.append(index + offset)
                heights.append(height)
                brushes.append(pg.mkBrush(_faint(RISK_COLOR, 90) if alert else series.color))
                self._label(index + offset, height, series.labels[index],
                            RISK_COLOR if alert else text)
            bars = pg.BarGraphItem(x=xs, height=heights, width=width * 0.9, brushes=brushes,
                                   pen=pg.mkPen(None))
            self.addItem(bars)
            if legend is not None:
                legend.addItem(pg.BarGraphItem(x=[0], height=[1], width=1,
                                               brush=pg.mkBrush(series.color)), series.name)
        if self.line is not None:
            self.addItem(pg.InfiniteLine(self.line, angle=0, pen=pg.mkPen(
                RISK_COLOR, style=Qt.PenStyle.DashLine)))
        self.getAxis("bottom").setTicks([list(enumerate(self.groups))])
        self.plotItem.setXRange(-0.5, len(self.groups) - 0.5, padding=0)
        self.plotItem.setYRange(0, top * (1.75 if legend is not None else 1.2), padding=0)

    def _label(self, x: float, y: float, text: str, color: QColor) -> None:
        label = pg.TextItem(text, anchor=(0.5, 1), color=color)
        label.setPos(x, y)
        self.addItem(label)


class CurvePlot(ThemedPlot):
    """Lines over training steps, one per series; NaN steps leave gaps. ``log_y`` suits
    values that halve and double (a loss scale)."""

    def __init__(self, title: str, unit: str, log_y: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(title, {"left": unit, "bottom": "step"}, parent)
        self.log_y = log_y
        self.plotItem.setLogMode(False, log_y)
        self.steps: list[int] = []
        self.curves: list[tuple[str, list[float], QColor]] = []
        self.message = ""

    def set_curves(self, steps: list[int], curves: list[tuple[str, list[float], QColor]],
                   message: str = "", title: str | None = None) -> None:
        """Show ``curves`` (name, values, colour) over ``steps``, or ``message`` if none."""
        self.steps, self.curves, self.message = steps, curves, message
        if title is not None:
            self.title = title
        self.redraw()

    def draw(self, text: QColor) -> None:
        shown = [math.log10(v) if self.log_y else v for _, values, _ in self.curves
                 for v in values if math.isfinite(v) and (v > 0 or not self.log_y)]
        if not shown:
            return self.note(self.message if not self.curves else "Every value is Inf/NaN.",
                             RISK_COLOR if self.curves else text)
        if len(self.steps) <= 12:
            self.getAxis("bottom").setTicks([[(s, str(s)) for s in self.steps]])
        # Losses fall, so the top right corner is free for a legend, one entry a row.
        legend = self.legend(text, columns=1) if len(self.curves) > 1 else None
        for number, (name, values, color) in enumerate(self.curves):
            # Later curves dashed, so one that lies on another still shows.
            style = Qt.PenStyle.DashLine if number else Qt.PenStyle.SolidLine
            curve = pg.PlotDataItem(self.steps, values, pen=pg.mkPen(color, width=2,
                                                                     style=style),
                                    symbol="o", symbolSize=6, symbolBrush=color,
                                    symbolPen=pg.mkPen(color), connect="finite")
            bad = sum(1 for v in values if not math.isfinite(v))
            if bad < len(values):
                self.addItem(curve)
            if legend is not None:
                legend.addItem(curve, f"{name}: Inf/NaN at {bad}/{len(values)} steps"
                               if bad else name)
        low, high = min(shown), max(shown)  # log10 of the values on a log axis
        span = (high - low) or abs(high) * 0.1 or 1.0
        head = 0.5 if legend is not None else 0.1
        self.plotItem.setYRange(low - 0.1 * span, high + head * span, padding=0)
        self.plotItem.setXRange(self.steps[0] - 0.2, self.steps[-1] + 0.2, padding=0)


def output_error_series(errors: list[OutputError], policy: str) -> tuple[Series, Series]:
    """PSNR (dB) and error relative to the output's variation (%) per output; non-finite
    outputs in red. An identical output shows "identical"; a flat one, "flat"."""
    color = policy_color(policy)
    alerts = [e.nonfinite > 0 for e in errors]

    def label(e: OutputError, value: str) -> str:
        return "Inf/NaN" if e.nonfinite else value

    psnr = Series("PSNR", [e.psnr_db for e in errors], color,
                  [label(e, "identical" if e.psnr_db is None else f"{sig(e.psnr_db)} dB")
                   for e in errors], alerts)
    ratio = Series("error / variation",
                   [None if e.error_to_variation is None else 100 * e.error_to_variation
                    for e in errors], color,
                   [label(e, "flat" if e.error_to_variation is None
                          else f"{sig(100 * e.error_to_variation)}%") for e in errors], alerts)
    return psnr, ratio


def paired_series(bars: Bars, policy: str, unit: str = "") -> list[Series]:
    """float32 and target-policy series of ``bars``, labelled with two significant digits."""
    return [Series(name, values, policy_color(name if name == "float32" else policy),
                   ["n/a" if v is None else sig(v, unit) for v in values])
            for name, values in (("float32", bars.float32), (policy, bars.target))]


def training_series(training: Training, policy: str) -> list[tuple[str, list[float], QColor]]:
    """The loss curves, float32 and the target policy."""
    return [("float32", training.loss_float32, policy_color("float32")),
            (policy, training.loss_target, policy_color(policy))]

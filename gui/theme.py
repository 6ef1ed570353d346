"""Colours and small painted icons that read well on light and dark palettes.

Text always keeps the palette's own colour; precision is shown with a saturated dot and a
translucent tint, so neither depends on the theme, and badges choose their text colour by
contrast with their own background.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.resources import files

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

from fsprec.core.switch import PRECISION_LABELS  # noqa: F401 (re-exported for the views)

_POLICY_COLORS = {
    "float32": "#3b82f6",  # blue
    "mixed_float16": "#f59e0b",  # amber
    "mixed_bfloat16": "#a855f7",  # purple
    "partial": "#ef4444",  # red: some layers mixed, some not
}
_NEUTRAL = "#94a3b8"  # slate: sub-models (inherited) and ops without a policy
_VERDICT_COLORS = {"safe": "#16a34a", "safe_with_pins": "#d97706", "not_safe": "#dc2626"}
ELIGIBLE_COLOR = "#22c55e"  # green
DAMAGED_COLOR = "#dc2626"  # red: weights that hold NaN or Inf
TINT_ALPHA = 56
HEALTH_LABELS = {"clean": "Healthy", "damaged": "Damaged", "at_risk": "At risk",
                 "not_checked": "Not checked", "unreadable": "Can't be read"}
_HEALTH_STATUS = {"clean": "safe", "at_risk": "safe_with_pins", "damaged": "not_safe"}

SHORT_PRECISION_LABELS = {"float32": "fp32", "mixed_float16": "mixed fp16",
                          "mixed_bfloat16": "mixed bf16", "partial": "partial"}


def policy_color(policy: str | None) -> QColor:
    """The colour that stands for a dtype policy or a model precision."""
    return QColor(_POLICY_COLORS.get(policy or "", _NEUTRAL))


def verdict_color(status: str | None) -> QColor:
    """Green for safe, amber for safe with pins, red for not safe; slate for no verdict."""
    return QColor(_VERDICT_COLORS.get(status or "", _NEUTRAL))


def health_color(verdict: str | None) -> QColor:
    """A model health verdict's colour: green healthy, amber at risk, red damaged; slate
    otherwise."""
    return verdict_color(_HEALTH_STATUS.get(verdict or ""))


def tint(color: QColor) -> QColor:
    """A translucent version of ``color`` for row backgrounds (palette text stays readable)."""
    tinted = QColor(color)
    tinted.setAlpha(TINT_ALPHA)
    return tinted


def text_on(color: QColor) -> QColor:
    """Black or white, whichever contrasts more with ``color``."""
    luminance = 0.2126 * color.redF() + 0.7152 * color.greenF() + 0.0722 * color.blueF()
    return QColor("#111111") if luminance > 0.55 else QColor("#ffffff")


def _icon(size: int, paint: Callable[[QPainter], None]) -> QIcon:
    """An antialiased ``size`` x ``size`` icon on a transparent background."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    paint(painter)
    painter.end()
    return QIcon(pixmap)


def _round_pen(color: str, width: float) -> QPen:
    pen = QPen(QColor(color), width)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    return pen


@cache
def dot_icon(color_name: str, size: int = 12) -> QIcon:
    """A filled circle, for dtype and precision markers."""
    def paint(painter: QPainter) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(color_name))
        painter.drawEllipse(QRectF(1, 1, size - 2, size - 2))
    return _icon(size, paint)


@cache
def check_icon(size: int = 14) -> QIcon:
    """A green tick, for eligible layers."""
    def paint(painter: QPainter) -> None:
        painter.setPen(_round_pen(ELIGIBLE_COLOR, size / 6))
        path = QPainterPath()
        path.moveTo(size * 0.18, size * 0.55)
        path.lineTo(size * 0.42, size * 0.78)
        path.lineTo(size * 0.84, size * 0.25)
        painter.drawPath(path)
    return _icon(size, paint)


@cache
def warning_icon(size: int = 14) -> QIcon:
    """A red disc with a white "!", for layers whose weights hold NaN or Inf."""
    def paint(painter: QPainter) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(DAMAGED_COLOR))
        painter.drawEllipse(QRectF(0.5, 0.5, size - 1, size - 1))
        painter.setPen(_round_pen("white", size / 7))
        middle = size / 2
        painter.drawLine(QPointF(middle, size * 0.25), QPointF(middle, size * 0.56))
        painter.drawPoint(QPointF(middle, size * 0.77))
    return _icon(size, paint)


def app_icon() -> QIcon:
    """The application icon (``resources/fsprec.svg``)."""
    svg = files("fsprec.resources").joinpath("fsprec.svg")
    return QIcon(str(svg))


def badge_style(policy: str | None) -> str:
    """A style sheet for a rounded precision badge label."""
    return colored_badge_style(policy_color(policy))


def colored_badge_style(color: QColor) -> str:
    """A style sheet for a rounded badge label on ``color``."""
    return (f"QLabel {{ background: {color.name()}; color: {text_on(color).name()};"
            " border-radius: 8px; padding: 2px 9px; font-weight: 600; }")

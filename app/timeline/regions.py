"""Regions of the generated lane: what the window tells the timeline, and how they are drawn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from app.timeline import theme
from app.timeline._pg import pg

HEADER_PX = 16  # the label bar along a region's top edge


@dataclass(frozen=True)
class RegionView:
    """One region of the generated lane as the timeline shows it.

    `start`/`end` are clip seconds. `colour` indexes `theme.TAKE_PALETTE` (wrapping), so a region is
    coloured by its active take and the takes panel can use the same colours (`theme.take_colour`).
    `label` is drawn in the region's header bar (e.g. "Take 2 · seed 1234"). `active` marks the region
    whose takes are being shown (drawn brighter, with a thicker border).
    """

    id: str
    start: float
    end: float
    colour: int
    label: str
    active: bool = False

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ValueError(f"region {self.id!r} ends ({self.end}) before it starts ({self.start})")

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


def region_at(regions: Sequence[RegionView], t: float) -> RegionView | None:
    """The region under time `t`; where regions overlap, the one drawn on top (the later one)."""
    for region in reversed(regions):
        if region.contains(t):
            return region
    return None


class RegionsItem(pg.GraphicsObject):
    """All regions of a lane, painted in pixels (crisp borders, labels clipped to their region)."""

    def __init__(self, y_range: tuple[float, float]) -> None:
        super().__init__()
        self._regions: list[RegionView] = []
        self._audition: str | None = None
        self._y_range = y_range
        self._view = (-float("inf"), float("inf"))
        self._bounds = QRectF()
        self._font = QFont()
        self._font.setPointSizeF(max(7.0, self._font.pointSizeF() * 0.85))
        self._font.setBold(True)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)  # cheap playhead moves on top

    def set_regions(self, regions: Sequence[RegionView]) -> None:
        self.prepareGeometryChange()
        self._regions = list(regions)
        self._update_bounds()
        self.update()

    def set_y_range(self, y_range: tuple[float, float]) -> None:
        self.prepareGeometryChange()
        self._y_range = y_range
        self._update_bounds()
        self.update()

    def set_view(self, t0: float, t1: float) -> None:
        """Only what is on screen is painted (and cached): a 10-minute lane can hold hundreds of regions."""
        self.prepareGeometryChange()
        self._view = (t0, t1)
        self._update_bounds()
        self.update()

    def set_audition(self, region_id: str | None) -> None:
        self._audition = region_id
        self.update()

    def regions(self) -> list[RegionView]:
        return list(self._regions)

    def _visible(self) -> list[RegionView]:
        t0, t1 = self._view
        return [r for r in self._regions if r.end > t0 and r.start < t1]

    def _update_bounds(self) -> None:
        visible = self._visible()
        if not visible:
            self._bounds = QRectF()
            return
        lo, hi = self._y_range
        start = max(min(r.start for r in visible), self._view[0])
        end = min(max(r.end for r in visible), self._view[1])
        self._bounds = QRectF(start, lo, end - start, hi - lo)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        visible = self._visible()
        if not visible:
            return
        to_device = painter.transform()
        lo, hi = self._y_range
        painter.save()
        painter.resetTransform()
        # Pixels of the device being painted: the viewport, or the item's cache pixmap.
        device = painter.device()
        area = QRectF(-4, -4, device.width() + 8, device.height() + 8)
        painter.setFont(self._font)
        metrics = QFontMetrics(self._font)
        for region in visible:
            rect = to_device.mapRect(QRectF(region.start, lo, region.end - region.start, hi - lo))
            rect = rect.normalized().intersected(area)
            if rect.width() <= 0:
                continue
            self._paint_region(painter, metrics, region, rect)
        painter.restore()

    def _paint_region(
        self, painter: QPainter, metrics: QFontMetrics, region: RegionView, rect: QRectF
    ) -> None:
        colour = theme.take_colour(region.colour)
        auditioning = region.id == self._audition
        body = theme.with_alpha(colour, 92 if region.active or auditioning else 58)
        painter.fillRect(rect, body)
        header = QRectF(rect.left(), rect.top(), rect.width(), min(HEADER_PX, rect.height()))
        painter.fillRect(header, theme.with_alpha(colour, 235 if region.active else 190))
        if auditioning:
            border = QPen(theme.AUDITION, 2)
        else:
            border = QPen(colour.lighter(135) if region.active else colour, 2 if region.active else 1)
        border.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        painter.setPen(border)
        painter.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        inset = border.widthF() / 2
        painter.drawRect(rect.adjusted(inset, inset, -inset, -inset))
        text = ("▶ " if auditioning else "") + region.label
        room = int(header.width()) - 10
        if room > metrics.horizontalAdvance("…") and text:
            painter.setPen(_label_colour(colour))
            elided = metrics.elidedText(text, Qt.TextElideMode.ElideRight, room)
            baseline = header.top() + (header.height() + metrics.ascent() - metrics.descent()) / 2
            painter.drawText(QPointF(header.left() + 5, baseline), elided)


def _label_colour(background: QColor) -> QColor:
    """Dark text on light take colours, white on dark ones."""
    r, g, b = background.redF(), background.greenF(), background.blueF()
    return QColor("#101114") if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else QColor("#ffffff")

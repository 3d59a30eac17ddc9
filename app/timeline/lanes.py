"""The audio lanes: a header with mute, solo and gain, and a view with the waveform (and regions)."""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QPointF, Qt, Signal, Slot
from PySide6.QtGui import QHelpEvent, QMouseEvent, QPainter, QPaintEvent, QPen, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.timeline import theme
from app.timeline._pg import pg
from app.timeline.envelope import EnvelopePyramid
from app.timeline.regions import HEADER_PX, RegionsItem, RegionView, region_at
from app.timeline.snap import grid_lines
from app.timeline.views import TimeGraphicsView
from app.timeline.waveform import WaveformItem

ORIGINAL = "original"
GENERATED = "generated"
LANES = (ORIGINAL, GENERATED)
HEADER_WIDTH = 200

# Gain slider positions are half decibels; the lowest position is silence.
GAIN_MIN_DB = -60.0
GAIN_MAX_DB = 12.0
_SILENT_POSITION = round(GAIN_MIN_DB * 2) - 1
_MIN_GRID_PX = 6  # grid lines closer than this are not drawn


def gain_to_db(gain: float) -> float:
    return -math.inf if gain <= 0 else 20.0 * math.log10(gain)


def db_to_gain(db: float) -> float:
    return 0.0 if db == -math.inf else 10.0 ** (db / 20.0)


def format_gain(gain: float) -> str:
    db = gain_to_db(gain)
    return "-∞ dB" if db == -math.inf else f"{db:+.1f} dB"


class GainSlider(QSlider):
    """Lane gain in half-decibel steps from silence to +12 dB; double-click resets to 0 dB."""

    gain_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setRange(_SILENT_POSITION, round(GAIN_MAX_DB * 2))
        self.setValue(0)
        self.setSingleStep(1)
        self.setPageStep(6)
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.valueChanged.connect(self._on_value)

    def gain(self) -> float:
        return self.position_gain(self.value())

    @staticmethod
    def position_gain(position: int) -> float:
        return 0.0 if position <= _SILENT_POSITION else db_to_gain(position / 2.0)

    def set_gain(self, gain: float) -> None:
        """Move to `gain` (linear) without emitting `gain_changed`."""
        db = gain_to_db(gain)
        position = _SILENT_POSITION if db == -math.inf else round(min(max(db, GAIN_MIN_DB), GAIN_MAX_DB) * 2)
        blocked = self.blockSignals(True)
        self.setValue(position)
        self.blockSignals(blocked)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.setValue(0)
        event.accept()

    @Slot(int)
    def _on_value(self, position: int) -> None:
        self.gain_changed.emit(self.position_gain(position))


class LaneHeader(QFrame):
    """Name, mute, solo and gain of one lane."""

    mute_toggled = Signal(bool)
    solo_toggled = Signal(bool)
    gain_changed = Signal(float)

    def __init__(self, lane: str, title: str, colour: object, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lane = lane
        self.setObjectName("laneHeader")
        self.setFixedWidth(HEADER_WIDTH)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)

        chip = QFrame(self)
        chip.setFixedSize(4, 14)
        chip.setStyleSheet(f"background: {theme.with_alpha(colour, 255).name()}; border-radius: 2px;")  # type: ignore[arg-type]
        self.name_label = QLabel(title, self)
        self.name_label.setObjectName("laneName")
        self.hint_label = QLabel("", self)
        self.hint_label.setObjectName("laneHint")

        self.mute_button = QToolButton(self)
        self.mute_button.setObjectName("muteButton")
        self.mute_button.setText("M")
        self.mute_button.setCheckable(True)
        self.mute_button.setToolTip(f"Mute the {title.lower()} lane")
        self.solo_button = QToolButton(self)
        self.solo_button.setObjectName("soloButton")
        self.solo_button.setText("S")
        self.solo_button.setCheckable(True)
        self.solo_button.setToolTip(f"Solo: hear only the {title.lower()} lane (and other soloed lanes)")
        self.gain_slider = GainSlider(self)
        self.gain_slider.setToolTip(
            f"Gain of the {title.lower()} lane, from silence to +12 dB. Double-click to reset to 0 dB."
        )
        self.gain_label = QLabel(format_gain(1.0), self)
        self.gain_label.setObjectName("gainLabel")
        self.gain_label.setMinimumWidth(self.gain_label.fontMetrics().horizontalAdvance("-60.0 dB") + 2)
        self.gain_label.setToolTip("Lane gain")
        for button in (self.mute_button, self.solo_button):
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)

        title_row = QHBoxLayout()
        title_row.setSpacing(6)
        title_row.addWidget(chip)
        title_row.addWidget(self.name_label)
        title_row.addStretch(1)
        title_row.addWidget(self.hint_label)
        controls = QHBoxLayout()
        controls.setSpacing(4)
        controls.addWidget(self.mute_button)
        controls.addWidget(self.solo_button)
        controls.addWidget(self.gain_slider, 1)
        controls.addWidget(self.gain_label)
        column = QVBoxLayout(self)
        column.setContentsMargins(8, 6, 8, 6)
        column.setSpacing(4)
        column.addLayout(title_row)
        column.addLayout(controls)
        column.addStretch(1)

        self.mute_button.toggled.connect(self.mute_toggled)
        self.solo_button.toggled.connect(self.solo_toggled)
        self.gain_slider.gain_changed.connect(self._on_gain)

    def state(self) -> tuple[float, bool, bool]:
        return self.gain_slider.gain(), self.mute_button.isChecked(), self.solo_button.isChecked()

    def set_state(self, gain: float, mute: bool, solo: bool) -> None:
        """Show a state (undo/redo) without emitting any signal."""
        self.gain_slider.set_gain(gain)
        self.gain_label.setText(format_gain(self.gain_slider.gain()))
        for button, checked in ((self.mute_button, mute), (self.solo_button, solo)):
            blocked = button.blockSignals(True)
            button.setChecked(checked)
            button.blockSignals(blocked)

    def set_hint(self, text: str) -> None:
        self.hint_label.setText(text)

    @Slot(float)
    def _on_gain(self, gain: float) -> None:
        self.gain_label.setText(format_gain(gain))
        self.gain_changed.emit(gain)


class LaneView(TimeGraphicsView):
    """A lane's waveform (from an `EnvelopePyramid`) and, for the generated lane, its regions."""

    def __init__(self, lane: str, parent: QWidget | None = None) -> None:
        super().__init__((-1.08, 1.08), parent)
        self.lane = lane
        self._y_range = (-1.08, 1.08)
        self.setObjectName(f"{lane}Lane")
        self.setBackground(theme.LANE_BACKGROUND if lane == ORIGINAL else theme.LANE_BACKGROUND_ALT)
        self.setMinimumHeight(56)
        self.setCursor(Qt.CursorShape.IBeamCursor)
        self._pyramid: EnvelopePyramid | None = None
        self._hint = ""
        self._grid: float | None = None
        self._regions: list[RegionView] = []

        self.regions_item = RegionsItem(self._y_range)
        self.regions_item.setZValue(-20)
        self.wave_item = WaveformItem()
        self.selection_item = pg.LinearRegionItem(
            values=(0.0, 0.0),
            orientation="vertical",
            movable=False,
            brush=theme.SELECTION_FILL,
            pen=pg.mkPen(theme.SELECTION_EDGE, width=1),
        )
        self.selection_item.setZValue(10)
        self.selection_item.setVisible(False)
        self.playhead_item = pg.InfiniteLine(
            pos=0.0, angle=90, movable=False, pen=pg.mkPen(theme.PLAYHEAD, width=1)
        )
        self.playhead_item.setZValue(20)
        for item in (self.regions_item, self.wave_item, self.selection_item, self.playhead_item):
            self.vb.addItem(item, ignoreBounds=True)
        self.set_muted_look(False)

    # --- content ------------------------------------------------------------------------------------------

    def set_pyramid(self, pyramid: EnvelopePyramid | None) -> None:
        self._pyramid = pyramid
        self.refresh_wave()

    def pyramid(self) -> EnvelopePyramid | None:
        return self._pyramid

    def set_regions(self, regions: list[RegionView]) -> None:
        self._regions = list(regions)
        self.regions_item.set_regions(self._regions)
        self.wave_item.set_highlight([(r.start, r.end) for r in self._regions])

    def regions(self) -> list[RegionView]:
        return list(self._regions)

    def region_at(self, t: float) -> RegionView | None:
        return region_at(self._regions, t)

    def set_audition(self, region_id: str | None) -> None:
        self.regions_item.set_audition(region_id)

    def set_muted_look(self, muted: bool) -> None:
        if self.lane == ORIGINAL:
            colour = theme.ORIGINAL_WAVE_MUTED if muted else theme.ORIGINAL_WAVE
        else:
            colour = theme.GENERATED_WAVE_MUTED if muted else theme.GENERATED_WAVE
        # Opaque: overlapping strokes of a translucent colour would show as stripes.
        highlight = theme.WAVE_ON_REGION_MUTED if muted else theme.WAVE_ON_REGION
        self.wave_item.set_colours(colour, highlight)

    def set_hint(self, text: str) -> None:
        """Text shown in the middle of the lane when it has no waveform ("" for none)."""
        self._hint = text
        self.viewport().update()

    def set_grid(self, step: float | None) -> None:
        """Draw faint vertical lines every `step` seconds (None: no grid)."""
        self._grid = step
        self.viewport().update()

    def set_selection(self, selection: tuple[float, float] | None) -> None:
        if selection is None:
            self.selection_item.setVisible(False)
            return
        self.selection_item.setRegion(selection)
        self.selection_item.setVisible(True)

    def set_playhead(self, t: float) -> None:
        self.playhead_item.setValue(t)

    def drawn_points(self) -> int:
        return self.wave_item.points

    # --- view ---------------------------------------------------------------------------------------------

    def set_view(self, t0: float, t1: float) -> None:
        super().set_view(t0, t1)
        self.regions_item.set_view(t0, t1)
        self.refresh_wave()

    def refresh_wave(self) -> None:
        if self._pyramid is None:
            self.wave_item.set_slice(None)
        else:
            t0, t1 = self.view_range()
            self.wave_item.set_slice(self._pyramid.slice(t0, t1, self.pixel_width()))
        self.viewport().update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if not hasattr(self, "wave_item"):  # pyqtgraph resizes once inside the base constructor
            return
        self._fit_y()
        self.refresh_wave()

    def _fit_y(self) -> None:
        """Keep the waveform clear of the region label bar: extra room above +1 for HEADER_PX pixels."""
        height = max(HEADER_PX + 8, self.viewport().height())
        top = 1.08
        if self.lane == GENERATED:
            top += 2.16 * HEADER_PX / (height - HEADER_PX)
        self._y_range = (-1.08, top)
        self.vb.setYRange(*self._y_range, padding=0.0)
        self.regions_item.set_y_range(self._y_range)

    # --- overlay: grid and hint ---------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self._grid is None and not (self._hint and self._pyramid is None):
            return
        painter = QPainter(self.viewport())
        if self._grid is not None and self._grid / self.seconds_per_pixel() >= _MIN_GRID_PX:
            painter.setPen(QPen(theme.GRID_LINE, 1))
            t0, t1 = self.view_range()
            h = self.viewport().height()
            for t in grid_lines(t0, t1, self._grid):
                x = round(self.time_to_x(t)) + 0.5
                painter.drawLine(QPointF(x, 0), QPointF(x, h))
        if self._hint and self._pyramid is None:
            painter.setPen(theme.TEXT_FAINT)
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, self._hint)
        painter.end()

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            region = self.region_at(self.x_to_time(event.pos().x()))
            if region is not None:
                span = f"{region.start:.2f} s – {region.end:.2f} s"
                text = f"{region.label}\n{span}\nClick to pick it, double-click to open its takes"
                QToolTip.showText(event.globalPos(), text, self)
                return True
        return super().viewportEvent(event)

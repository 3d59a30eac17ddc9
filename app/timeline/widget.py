"""TimelineWidget: the Foley timeline (ruler, picture strip, original and generated lanes).

The widget only displays and reports: it never plays audio or runs the model. The window feeds it (clip,
audio, regions, the playhead position during playback) and reacts to its signals (scrubbing, selection,
lane mixer changes, region clicks). See `app.timeline` for the API summary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeyEvent, QWheelEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollBar,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.timeline import theme
from app.timeline.envelope import BuildCancelled, EnvelopePyramid, check_audio
from app.timeline.jobs import SerialJobQueue
from app.timeline.lanes import GENERATED, HEADER_WIDTH, LANES, ORIGINAL, LaneHeader, LaneView
from app.timeline.regions import RegionView
from app.timeline.ruler import RulerWidget
from app.timeline.snap import GRID_SECONDS, SnapMode, check_snap_mode, snap_time, snap_to_frame
from app.timeline.thumbnails import ThumbnailStrip
from app.timeline.timecode import drop_frame_default, format_timecode
from app.timeline.viewrange import ZOOM_STEP, ViewRange
from vaura_core.media import ClipInfo, ThumbnailCache

# Lanes with more samples than this get their envelope built on the worker pool (about 47 s at 44.1 kHz).
SYNC_ENVELOPE_SAMPLES = 1 << 21
DRAG_THRESHOLD_PX = 3  # a press that moves less than this is a click
WHEEL_ZOOM_BASE = 1.25  # zoom factor per wheel notch
WHEEL_PAN_FRACTION = 0.1  # of the visible span per wheel notch
_SNAP_LABELS: tuple[tuple[SnapMode, str, str], ...] = (
    ("frame", "Frames", "Selections snap to the clip's video frames"),
    (
        "grid",
        "0.64 s grid",
        "Selections snap to the model's 0.64 s segments (where generation windows start)",
    ),
    ("off", "Off", "No snapping"),
)


@dataclass(frozen=True)
class LaneState:
    """A lane's mixer settings: linear gain (1.0 = unity, 0.0 = silent), mute and solo."""

    gain: float = 1.0
    mute: bool = False
    solo: bool = False


@dataclass
class _LaneDrag:
    press_x: float
    press_t: float
    anchor: float  # the selection edge that stays put
    region: str | None  # region under the press
    dragging: bool = False


class TimelineWidget(QWidget):
    """The Foley timeline. Times are clip seconds: 0.0 is the first video frame (as in `vaura_core.media`).

    Signals
        playhead_dragged(float)    the user clicked or dragged on the ruler or picture strip (scrubbing),
                                   or clicked an empty spot of a lane; snapped to frames unless snap is off
        scrub_started(), scrub_finished()   around every such press ... release
        selection_changed(object)  (start, end) or None, on every change (user drags and set_selection)
        lane_gain_changed(str, float), lane_mute_changed(str, bool), lane_solo_changed(str, bool)
                                   the user changed a lane's mixer control ("original" or "generated")
        region_clicked(str), region_double_clicked(str)   a region of the generated lane, by id
        view_changed(float, float) the visible range after zooming, panning or fitting
        follow_changed(bool)       follow-playhead was switched (toolbar button or set_follow)
    """

    playhead_dragged = Signal(float)
    scrub_started = Signal()
    scrub_finished = Signal()
    selection_changed = Signal(object)
    lane_gain_changed = Signal(str, float)
    lane_mute_changed = Signal(str, bool)
    lane_solo_changed = Signal(str, bool)
    region_clicked = Signal(str)
    region_double_clicked = Signal(str)
    view_changed = Signal(float, float)
    follow_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("timeline")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(theme.STYLE_SHEET)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(480, 240)

        self._clip: ClipInfo | None = None
        self._has_original = False
        self._duration = 0.0
        self._fps = 0.0
        self._drop_frame: bool | None = None
        self._playhead = 0.0
        self._selection: tuple[float, float] | None = None
        self._snap: SnapMode = "frame"
        self._follow = True
        self._scrubbing = False
        self._lane_drag: _LaneDrag | None = None
        self._pan_from: tuple[float, float] | None = None  # (press x, view start) of a middle-button drag
        self._audition: str | None = None
        self._envelope_generation = dict.fromkeys(LANES, 0)
        self._envelopes = SerialJobQueue("envelopes")
        self._envelopes.done.connect(self._on_envelope)
        self._envelopes.failed.connect(self._on_envelope_failed)

        self.view = ViewRange(self)
        self._build()
        self.view.changed.connect(self._on_view_changed)
        self._on_view_changed(self.view.start, self.view.end)
        self.clear()

    # ======================================================================================================
    # construction

    def _build(self) -> None:
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(1)
        grid.setVerticalSpacing(1)

        self.counter = QLabel("--:--:--:--", self)
        self.counter.setObjectName("counter")
        self.counter.setToolTip("Playhead position: timecode (clip frame rate and start time)")
        self.counter_seconds = QLabel("", self)
        self.counter_seconds.setObjectName("counterSeconds")
        self.counter_seconds.setToolTip("Playhead position in seconds from the first frame")
        corner = self._header_frame()
        corner_layout = QVBoxLayout(corner)
        corner_layout.setContentsMargins(10, 3, 8, 3)
        corner_layout.setSpacing(0)
        corner_layout.addWidget(self.counter)
        corner_layout.addWidget(self.counter_seconds)

        self.ruler = RulerWidget(self)
        self.ruler.scrub_pressed.connect(self._on_scrub_pressed)
        self.ruler.scrub_moved.connect(self._on_scrub_moved)
        self.ruler.scrub_released.connect(self._on_scrub_released)

        picture_header = self._header_frame()
        self.picture_label = QLabel("Picture", picture_header)
        self.picture_label.setObjectName("laneName")
        self.picture_hint = QLabel("", picture_header)
        self.picture_hint.setObjectName("laneHint")
        picture_layout = QHBoxLayout(picture_header)
        picture_layout.setContentsMargins(20, 4, 8, 4)
        picture_layout.addWidget(self.picture_label)
        picture_layout.addStretch(1)
        picture_layout.addWidget(self.picture_hint)
        picture_header.setToolTip("The clip's pictures, at the time under each thumbnail")

        self.thumbnail_strip = ThumbnailStrip(self)
        self.thumbnail_strip.pressed.connect(self._on_strip_pressed)
        self.thumbnail_strip.moved.connect(self._on_strip_moved)
        self.thumbnail_strip.released.connect(self._on_strip_released)
        self._strip_playhead = self._add_playhead_line(self.thumbnail_strip)

        self.headers: dict[str, LaneHeader] = {
            ORIGINAL: LaneHeader(ORIGINAL, "Original audio", theme.ORIGINAL_WAVE, self),
            GENERATED: LaneHeader(GENERATED, "Generated", theme.GENERATED_WAVE, self),
        }
        self.lanes: dict[str, LaneView] = {lane: LaneView(lane, self) for lane in LANES}
        self.headers[ORIGINAL].mute_button.setChecked(True)  # the clip's own sound is a reference
        for lane in LANES:
            header, view = self.headers[lane], self.lanes[lane]
            header.mute_toggled.connect(lambda on, lane=lane: self._on_mute(lane, on))
            header.solo_toggled.connect(lambda on, lane=lane: self._on_solo(lane, on))
            header.gain_changed.connect(lambda gain, lane=lane: self.lane_gain_changed.emit(lane, gain))
            view.pressed.connect(lambda t, x, b, m, lane=lane: self._on_lane_pressed(lane, t, x, b, m))
            view.moved.connect(self._on_lane_moved)
            view.released.connect(self._on_lane_released)
            view.double_clicked.connect(lambda t, x, lane=lane: self._on_lane_double_clicked(lane, t))
            view.setToolTip(
                "Drag to select a range (it snaps as the Snap setting says); Shift-click extends it. "
                "Wheel zooms around the pointer, Shift+wheel or middle-drag scrolls."
            )
        self._refresh_lane_looks()

        toolbar = QFrame(self)
        toolbar.setObjectName("toolbar")
        bar = QHBoxLayout(toolbar)
        bar.setContentsMargins(6, 3, 6, 3)
        bar.setSpacing(4)
        self.zoom_out_button = self._tool_button("−", "Zoom out (-)", self.zoom_out)
        self.zoom_in_button = self._tool_button("+", "Zoom in (+)", self.zoom_in)
        self.fit_button = self._tool_button("Fit", "Fit the whole clip in the window", self.fit)
        self.snap_combo = QComboBox(toolbar)
        for mode, label, tip in _SNAP_LABELS:
            self.snap_combo.addItem(label, mode)
            self.snap_combo.setItemData(self.snap_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.snap_combo.setToolTip(
            "Snap: where selection edges land (frames, the model's 0.64 s grid, or anywhere)"
        )
        self.snap_combo.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.snap_combo.currentIndexChanged.connect(self._on_snap_combo)
        snap_label = QLabel("Snap", toolbar)
        snap_label.setObjectName("laneHint")
        self.follow_button = self._tool_button(
            "Follow", "Follow the playhead: scroll the view when playback leaves it", None
        )
        self.follow_button.setObjectName("followButton")
        self.follow_button.setCheckable(True)
        self.follow_button.setChecked(True)
        self.follow_button.toggled.connect(self._on_follow_toggled)
        self.scrollbar = QScrollBar(Qt.Orientation.Horizontal, toolbar)
        self.scrollbar.setToolTip("Scroll through the clip")
        self.scrollbar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.scrollbar.valueChanged.connect(self._on_scrollbar)
        self.selection_label = QLabel("", toolbar)
        self.selection_label.setObjectName("laneHint")
        self.selection_label.setToolTip("The selection: start – end timecode and its length")
        for widget in (self.zoom_out_button, self.zoom_in_button, self.fit_button):
            bar.addWidget(widget)
        bar.addSpacing(8)
        bar.addWidget(snap_label)
        bar.addWidget(self.snap_combo)
        bar.addWidget(self.follow_button)
        bar.addSpacing(8)
        bar.addWidget(self.scrollbar, 1)
        bar.addSpacing(8)
        bar.addWidget(self.selection_label)

        grid.addWidget(corner, 0, 0)
        grid.addWidget(self.ruler, 0, 1)
        grid.addWidget(picture_header, 1, 0)
        grid.addWidget(self.thumbnail_strip, 1, 1)
        for row, lane in enumerate(LANES, start=2):
            grid.addWidget(self.headers[lane], row, 0)
            grid.addWidget(self.lanes[lane], row, 1)
        grid.addWidget(toolbar, 4, 0, 1, 2)
        grid.setColumnMinimumWidth(0, HEADER_WIDTH)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(2, 2)
        grid.setRowStretch(3, 3)

        for watched in (
            self.ruler,
            self.thumbnail_strip.viewport(),
            *(v.viewport() for v in self.lanes.values()),
        ):
            watched.installEventFilter(self)

    def _header_frame(self) -> QFrame:
        frame = QFrame(self)
        frame.setObjectName("laneHeader")
        frame.setFixedWidth(HEADER_WIDTH)
        frame.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        return frame

    def _tool_button(self, text: str, tip: str, slot: object) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        if slot is not None:
            button.clicked.connect(slot)
        return button

    @staticmethod
    def _add_playhead_line(view: ThumbnailStrip) -> object:
        from app.timeline._pg import pg

        line = pg.InfiniteLine(pos=0.0, angle=90, movable=False, pen=pg.mkPen(theme.PLAYHEAD, width=1))
        line.setZValue(20)
        view.vb.addItem(line, ignoreBounds=True)
        return line

    # ======================================================================================================
    # public API: content

    def set_clip(
        self,
        info: ClipInfo,
        thumbnails: ThumbnailCache | None,
        original_audio: np.ndarray | None,
        sample_rate: int,
    ) -> None:
        """Show a newly opened clip, fitted to the window.

        `thumbnails` supplies the picture strip (None: no pictures); the timeline decodes from it on the
        worker pool, one picture at a time. `original_audio` is the clip's sound as mono samples at
        `sample_rate` from the first video frame (`vaura_core.media.read_audio_mono`), or None when the
        clip has none. The generated lane, regions, selection and playhead are reset; lane mixer states
        are kept (the window restores them with `set_lane_state` if it wants to). Arrays are kept by
        reference: do not modify them afterwards.
        """
        self._cancel_interaction()
        self._clip = info
        self._duration = float(info.duration)
        self._fps = float(info.frame_rate)
        self.ruler.set_timing(self._fps, info.start_time, self._drop_frame)
        drop = drop_frame_default(self._fps) if self._drop_frame is None else self._drop_frame
        self.picture_hint.setText(
            f"{self._fps:.3f}".rstrip("0").rstrip(".") + (" fps DF" if drop else " fps")
        )
        self.view.set_extent(self._duration, self._fps)
        self.thumbnail_strip.set_source(
            thumbnails, self._duration, self._fps, info.display_width / max(1, info.display_height)
        )
        has_audio = original_audio is not None and np.asarray(original_audio).size > 0
        self._has_original = has_audio
        self._set_lane_audio(ORIGINAL, original_audio if has_audio else None, sample_rate)
        self.lanes[ORIGINAL].set_hint("" if has_audio else "This clip has no audio")
        self.headers[ORIGINAL].set_hint("" if has_audio else "no audio")
        self._set_lane_audio(GENERATED, None, sample_rate)
        self.lanes[GENERATED].set_hint("Generate to fill this lane")
        self.set_regions([])
        self.set_audition(None)
        self._set_selection(None)
        self._set_playhead_visible(True)
        self._playhead = -1.0  # force the refresh below
        self.set_playhead(0.0)
        self._refresh_grid()
        self._refresh_enabled()

    def clear(self) -> None:
        """Back to the empty state (no clip); background decoding stops."""
        self._cancel_interaction()
        self._clip = None
        self._has_original = False
        self._duration = 0.0
        self._fps = 0.0
        self.thumbnail_strip.set_source(None, 0.0, 25.0, 16 / 9)
        for lane in LANES:
            self._set_lane_audio(lane, None, 1)
            self.lanes[lane].set_hint("")
        self.lanes[GENERATED].set_hint("Open a clip: drop it on the window or use File ▸ Open")
        self.headers[ORIGINAL].set_hint("")
        self.picture_hint.setText("")
        self.set_regions([])
        self.set_audition(None)
        self._set_selection(None)
        self.ruler.set_timing(None, 0.0, self._drop_frame)
        self.view.set_extent(0.0, None)
        self._playhead = 0.0
        self._show_playhead(0.0)
        self._set_playhead_visible(False)
        self.counter.setText("--:--:--:--")
        self.counter_seconds.setText("")
        self._refresh_grid()
        self._refresh_enabled()

    def set_generated(self, audio: np.ndarray | None, sample_rate: int) -> None:
        """Show the generated track (mono samples from the first frame at `sample_rate`), or None."""
        if sample_rate <= 0 and audio is not None:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        has_audio = audio is not None and np.asarray(audio).size > 0
        self._set_lane_audio(GENERATED, audio if has_audio else None, sample_rate)
        if self._clip is not None:
            self.lanes[GENERATED].set_hint("" if has_audio else "Generate to fill this lane")

    def set_regions(self, regions: list[RegionView]) -> None:
        """Replace the regions drawn on the generated lane (later ones are drawn on top)."""
        for region in regions:
            if not isinstance(region, RegionView):
                raise TypeError(f"expected RegionView items, got {type(region).__name__}")
        self.lanes[GENERATED].set_regions(list(regions))

    def regions(self) -> list[RegionView]:
        return self.lanes[GENERATED].regions()

    def set_audition(self, region_id: str | None) -> None:
        """Highlight the region being auditioned (None: no highlight)."""
        self._audition = region_id
        self.lanes[GENERATED].set_audition(region_id)

    def audition(self) -> str | None:
        return self._audition

    def set_drop_frame(self, drop_frame: bool | None) -> None:
        """Force drop-frame (True) or non-drop (False) timecode, or pick by frame rate (None, the default)."""
        self._drop_frame = drop_frame
        if self._clip is not None:
            self.ruler.set_timing(self._fps, self._clip.start_time, drop_frame)
            self._update_counter(force=True)
            self._update_selection_label()

    def clip(self) -> ClipInfo | None:
        return self._clip

    def duration(self) -> float:
        return self._duration

    # ======================================================================================================
    # public API: playhead

    def set_playhead(self, t: float) -> None:
        """Move the playhead (cheap: meant to be called at 60 Hz during playback).

        With follow on, a playhead that leaves the visible range scrolls the view (a page at a time), except
        while the user is scrubbing or selecting.
        """
        if self._clip is None:
            return
        t = min(max(float(t), 0.0), self._duration)
        if t == self._playhead:
            return
        self._playhead = t
        self._show_playhead(t)
        if self._follow and not self._scrubbing and self._lane_drag is None and not self.view.contains(t):
            self.view.page_to(t)

    def playhead(self) -> float:
        return self._playhead

    def set_follow(self, follow: bool) -> None:
        """Scroll the view to keep the playhead visible during playback (on by default)."""
        self.follow_button.setChecked(bool(follow))

    def follow(self) -> bool:
        return self._follow

    def is_scrubbing(self) -> bool:
        return self._scrubbing

    # ======================================================================================================
    # public API: selection and snapping

    def set_snap(self, mode: str) -> None:
        """Snap mode: "frame" (selection edges and the playhead land on the clip's frames), "grid" (selection
        edges on the model's 0.64 s grid, the playhead on frames) or "off" (anywhere)."""
        mode = check_snap_mode(mode)
        index = next(i for i, (m, _, _) in enumerate(_SNAP_LABELS) if m == mode)
        self.snap_combo.setCurrentIndex(index)
        self._snap = mode
        self._refresh_grid()

    def snap(self) -> SnapMode:
        return self._snap

    def selection(self) -> tuple[float, float] | None:
        return self._selection

    def set_selection(self, t0: float, t1: float) -> None:
        """Select [t0, t1] (either order, clamped to the clip, not snapped); an empty range clears it."""
        if self._clip is None:
            return
        lo, hi = sorted(min(max(float(t), 0.0), self._duration) for t in (t0, t1))
        self._set_selection((lo, hi) if hi > lo else None)

    def clear_selection(self) -> None:
        self._set_selection(None)

    def snap_time(self, t: float) -> float:
        """`t` as a selection edge lands under the current snap mode."""
        return snap_time(t, self._snap, self._fps, self._duration, GRID_SECONDS)

    def snap_playhead_time(self, t: float) -> float:
        """`t` as the playhead lands when scrubbing: on frames unless snapping is off."""
        t = min(max(t, 0.0), self._duration)
        if self._snap == "off" or not self._fps:
            return t
        return snap_to_frame(t, self._fps, self._duration)

    # ======================================================================================================
    # public API: zoom and pan

    def zoom_in(self) -> None:
        """Zoom in by 2x around the playhead when it is on screen, else around the middle."""
        self.view.zoom(ZOOM_STEP, self._zoom_anchor())

    def zoom_out(self) -> None:
        self.view.zoom(1.0 / ZOOM_STEP, self._zoom_anchor())

    def fit(self) -> None:
        """Show the whole clip."""
        self.view.fit()

    def visible_range(self) -> tuple[float, float]:
        return self.view.start, self.view.end

    def set_visible_range(self, t0: float, t1: float) -> None:
        """Show [t0, t1], clamped to the clip and the zoom limits."""
        self.view.set_range(t0, t1)

    def _zoom_anchor(self) -> float | None:
        return self._playhead if self._clip is not None and self.view.contains(self._playhead) else None

    # ======================================================================================================
    # public API: lanes

    def set_lane_state(self, lane: str, gain: float, mute: bool, solo: bool) -> None:
        """Show a lane's mixer state (undo/redo, restored settings) without emitting any signal."""
        self._header(lane).set_state(gain, mute, solo)
        self._refresh_lane_looks()

    def lane_state(self, lane: str) -> LaneState:
        gain, mute, solo = self._header(lane).state()
        return LaneState(gain, mute, solo)

    def lane_view(self, lane: str) -> LaneView:
        self._header(lane)
        return self.lanes[lane]

    def lane_header(self, lane: str) -> LaneHeader:
        return self._header(lane)

    def _header(self, lane: str) -> LaneHeader:
        try:
            return self.headers[lane]
        except KeyError:
            raise ValueError(f"unknown lane {lane!r}; lanes are {', '.join(LANES)}") from None

    # ======================================================================================================
    # introspection (tests, diagnostics)

    def drawn_points(self, lane: str = GENERATED) -> int:
        """Vertices of `lane`'s waveform as drawn now (at most about two per pixel of the lane's width)."""
        return self.lane_view(lane).drawn_points()

    def time_to_pixel(self, t: float) -> float:
        """x of clip time `t` in the viewport of every row (ruler, strip, lanes share the mapping)."""
        return self.lanes[GENERATED].time_to_x(t)

    def pixel_to_time(self, x: float) -> float:
        return self.lanes[GENERATED].x_to_time(x)

    def is_busy(self) -> bool:
        """Whether thumbnails or waveforms are still being prepared in the background."""
        return self.thumbnail_strip.pending() > 0 or self._envelopes.pending() > 0

    def stop_background_work(self, timeout_s: float = 5.0) -> bool:
        """Stop decoding thumbnails and building waveforms, waiting for the job in progress; True when
        nothing is left running. The widget stays usable (it is called on close)."""
        strip_idle = self.thumbnail_strip.stop(timeout_s)
        for lane in self._envelope_generation:  # in place: running builds read this dict
            self._envelope_generation[lane] += 1
        envelopes_idle = self._envelopes.shutdown(timeout_s)
        self._envelopes.restart()
        return strip_idle and envelopes_idle

    # ======================================================================================================
    # internals: display

    def _show_playhead(self, t: float) -> None:
        self.ruler.set_playhead(t if self._clip is not None else None)
        self._strip_playhead.setValue(t)  # type: ignore[attr-defined]
        for view in self.lanes.values():
            view.set_playhead(t)
        self._update_counter()

    def _set_playhead_visible(self, visible: bool) -> None:
        self._strip_playhead.setVisible(visible)  # type: ignore[attr-defined]
        for view in self.lanes.values():
            view.playhead_item.setVisible(visible)

    def _update_counter(self, force: bool = False) -> None:
        if self._clip is None:
            return
        text = format_timecode(self._playhead, self._fps, self._clip.start_time, self._drop_frame)
        if force or text != self.counter.text():
            self.counter.setText(text)
        self.counter_seconds.setText(f"{self._playhead:.3f} s")

    def _set_selection(self, selection: tuple[float, float] | None) -> None:
        if selection == self._selection:
            return
        self._selection = selection
        self.ruler.set_selection(selection)
        for view in self.lanes.values():
            view.set_selection(selection)
        self._update_selection_label()
        self.selection_changed.emit(selection)

    def _update_selection_label(self) -> None:
        if self._selection is None or self._clip is None:
            self.selection_label.setText("")
            return
        t0, t1 = self._selection
        start = self._clip.start_time
        self.selection_label.setText(
            f"Selection {format_timecode(t0, self._fps, start, self._drop_frame)} – "
            f"{format_timecode(t1, self._fps, start, self._drop_frame)}  ({t1 - t0:.2f} s)"
        )

    def _refresh_grid(self) -> None:
        step = GRID_SECONDS if self._snap == "grid" and self._clip is not None else None
        for view in self.lanes.values():
            view.set_grid(step)

    def _refresh_lane_looks(self) -> None:
        states = {lane: self.lane_state(lane) for lane in LANES}
        soloing = any(state.solo for state in states.values())
        for lane, state in states.items():
            audible = not state.mute and (state.solo or not soloing)
            self.lanes[lane].set_muted_look(not audible)

    def _refresh_enabled(self) -> None:
        has_clip = self._clip is not None
        for widget in (self.zoom_in_button, self.zoom_out_button, self.fit_button, self.scrollbar):
            widget.setEnabled(has_clip)
        for lane, enabled in ((ORIGINAL, has_clip and self._has_original), (GENERATED, has_clip)):
            header = self.headers[lane]
            for control in (header.mute_button, header.solo_button, header.gain_slider):
                control.setEnabled(enabled)

    @Slot(float, float)
    def _on_view_changed(self, t0: float, t1: float) -> None:
        self.ruler.set_view(t0, t1)
        self.thumbnail_strip.set_view(t0, t1)
        for view in self.lanes.values():
            view.set_view(t0, t1)
        span_ms = round((t1 - t0) * 1000)
        blocked = self.scrollbar.blockSignals(True)
        self.scrollbar.setRange(0, max(0, round(self.view.extent * 1000) - span_ms))
        self.scrollbar.setPageStep(max(1, span_ms))
        self.scrollbar.setSingleStep(max(1, span_ms // 10))
        self.scrollbar.setValue(round(t0 * 1000))
        self.scrollbar.blockSignals(blocked)
        self.view_changed.emit(t0, t1)

    # ======================================================================================================
    # internals: waveforms

    def _set_lane_audio(self, lane: str, audio: np.ndarray | None, sample_rate: int) -> None:
        self._envelope_generation[lane] += 1
        generation = self._envelope_generation[lane]
        view = self.lanes[lane]
        if audio is None:
            view.set_pyramid(None)
            return
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        samples = check_audio(audio)
        if samples.size <= SYNC_ENVELOPE_SAMPLES:
            view.set_pyramid(EnvelopePyramid.build(samples, sample_rate))
            return

        # Long audio is summarised (and converted, if need be) on the pool; the old waveform stays up
        # until the new one is ready.
        counters = self._envelope_generation

        def cancelled() -> bool:
            return counters[lane] != generation

        def build() -> EnvelopePyramid:
            return EnvelopePyramid.build(samples, sample_rate, cancelled)

        self._envelopes.submit((lane, generation), build)

    @Slot(object, object)
    def _on_envelope(self, key: object, pyramid: object) -> None:
        lane, generation = key  # type: ignore[misc]
        if self._envelope_generation.get(lane) == generation and isinstance(pyramid, EnvelopePyramid):
            self.lanes[lane].set_pyramid(pyramid)

    @Slot(object, str)
    def _on_envelope_failed(self, key: object, message: str) -> None:
        lane, generation = key  # type: ignore[misc]
        if self._envelope_generation.get(lane) == generation and message != BuildCancelled.__name__:
            self.lanes[lane].set_pyramid(None)
            self.lanes[lane].set_hint(f"Cannot draw this waveform: {message}")

    # ======================================================================================================
    # internals: mouse

    def _cancel_interaction(self) -> None:
        if self._scrubbing:
            self._scrubbing = False
            self.scrub_finished.emit()
        self._lane_drag = None
        self._pan_from = None

    def _scrub_to(self, t: float) -> None:
        t = self.snap_playhead_time(t)
        if t != self._playhead:
            self._playhead = t
            self._show_playhead(t)
        self.playhead_dragged.emit(t)

    @Slot(float)
    def _on_scrub_pressed(self, t: float) -> None:
        if self._clip is None:
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        self._scrubbing = True
        self.scrub_started.emit()
        self._scrub_to(t)

    @Slot(float)
    def _on_scrub_moved(self, t: float) -> None:
        if self._scrubbing and self.snap_playhead_time(t) != self._playhead:
            self._scrub_to(t)

    @Slot(float)
    def _on_scrub_released(self, t: float) -> None:
        if not self._scrubbing:
            return
        if self.snap_playhead_time(t) != self._playhead:
            self._scrub_to(t)
        self._scrubbing = False
        self.scrub_finished.emit()

    @Slot(float, float, object, object)
    def _on_strip_pressed(self, t: float, x: float, button: object, modifiers: object) -> None:
        if button == Qt.MouseButton.LeftButton:
            self._on_scrub_pressed(t)
        elif button == Qt.MouseButton.MiddleButton:
            self._pan_from = (x, self.view.start)

    @Slot(float, float, object)
    def _on_strip_moved(self, t: float, x: float, buttons: object) -> None:
        if self._pan_from is not None:
            self._pan_to(x)
        else:
            self._on_scrub_moved(t)

    @Slot(float, float, object)
    def _on_strip_released(self, t: float, x: float, button: object) -> None:
        if button == Qt.MouseButton.MiddleButton:
            self._pan_from = None
        elif button == Qt.MouseButton.LeftButton:
            self._on_scrub_released(t)

    def _pan_to(self, x: float) -> None:
        assert self._pan_from is not None
        press_x, start = self._pan_from
        seconds = (x - press_x) * self.lanes[GENERATED].seconds_per_pixel()
        self.view.set_range(start - seconds, start - seconds + self.view.span)

    def _on_lane_pressed(self, lane: str, t: float, x: float, button: object, modifiers: object) -> None:
        if self._clip is None:
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if button == Qt.MouseButton.MiddleButton:
            self._pan_from = (x, self.view.start)
            return
        if button != Qt.MouseButton.LeftButton:
            return
        region = self.lanes[GENERATED].region_at(t) if lane == GENERATED else None
        anchor = self.snap_time(t)
        extend = bool(modifiers & Qt.KeyboardModifier.ShiftModifier) and self._selection is not None  # type: ignore[operator]
        if extend:
            assert self._selection is not None
            lo, hi = self._selection
            anchor = hi if abs(t - lo) < abs(t - hi) else lo  # keep the far edge, move the near one
        self._lane_drag = _LaneDrag(press_x=x, press_t=t, anchor=anchor, region=region.id if region else None)
        if extend:
            self._lane_drag.dragging = True
            self._drag_selection_to(t)

    @Slot(float, float, object)
    def _on_lane_moved(self, t: float, x: float, buttons: object) -> None:
        if self._pan_from is not None:
            self._pan_to(x)
            return
        drag = self._lane_drag
        if drag is None:
            return
        if not drag.dragging and abs(x - drag.press_x) < DRAG_THRESHOLD_PX:
            return
        drag.dragging = True
        self._drag_selection_to(t)
        width = self.lanes[GENERATED].pixel_width()
        if x < 0 or x > width:  # dragging past an edge scrolls that way
            overshoot = x if x < 0 else x - width
            self.view.pan(overshoot * self.lanes[GENERATED].seconds_per_pixel())

    @Slot(float, float, object)
    def _on_lane_released(self, t: float, x: float, button: object) -> None:
        if button == Qt.MouseButton.MiddleButton:
            self._pan_from = None
            return
        drag, self._lane_drag = self._lane_drag, None
        if drag is None or button != Qt.MouseButton.LeftButton:
            return
        if drag.dragging:
            return
        if drag.region is not None:
            self.region_clicked.emit(drag.region)
            return
        # A click on an empty spot: drop the selection and put the playhead there.
        self._set_selection(None)
        self.scrub_started.emit()
        self._scrubbing = True
        self._scrub_to(t)
        self._scrubbing = False
        self.scrub_finished.emit()

    def _on_lane_double_clicked(self, lane: str, t: float) -> None:
        if lane != GENERATED:
            return
        region = self.lanes[GENERATED].region_at(t)
        if region is not None:
            self._lane_drag = None
            self.region_double_clicked.emit(region.id)

    def _drag_selection_to(self, t: float) -> None:
        assert self._lane_drag is not None
        edge = self.snap_time(t)
        lo, hi = sorted((self._lane_drag.anchor, edge))
        self._set_selection((lo, hi) if hi > lo else None)

    # ======================================================================================================
    # events

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(event, QWheelEvent):
            self._wheel(event)
            return True
        return super().eventFilter(watched, event)

    def _wheel(self, event: QWheelEvent) -> None:
        if self._clip is None:
            return
        angle = event.angleDelta()
        pixels = event.pixelDelta()
        horizontal = angle.x() != 0 and abs(angle.x()) > abs(angle.y())
        if horizontal or event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            if not pixels.isNull():  # a touchpad: follow the fingers exactly
                delta_px = pixels.x() if horizontal else pixels.y()
                self.view.pan(-delta_px * self.lanes[GENERATED].seconds_per_pixel())
            else:
                notches = (angle.x() if horizontal else angle.y()) / 120.0
                self.view.pan(-notches * WHEEL_PAN_FRACTION * self.view.span)
            return
        notches = angle.y() / 120.0
        if notches:
            self.view.zoom(WHEEL_ZOOM_BASE**notches, self.pixel_to_time(event.position().x()))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_in()
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.zoom_out()
        elif key == Qt.Key.Key_Escape and self._selection is not None:
            self.clear_selection()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop_background_work()
        super().closeEvent(event)

    # ======================================================================================================
    # internals: controls

    def _on_mute(self, lane: str, on: bool) -> None:
        self._refresh_lane_looks()
        self.lane_mute_changed.emit(lane, on)

    def _on_solo(self, lane: str, on: bool) -> None:
        self._refresh_lane_looks()
        self.lane_solo_changed.emit(lane, on)

    @Slot(int)
    def _on_snap_combo(self, index: int) -> None:
        mode = self.snap_combo.itemData(index)
        if mode:
            self._snap = mode
            self._refresh_grid()

    @Slot(bool)
    def _on_follow_toggled(self, on: bool) -> None:
        if on != self._follow:
            self._follow = on
            self.follow_changed.emit(on)

    @Slot(int)
    def _on_scrollbar(self, value: int) -> None:
        start = value / 1000.0
        self.view.set_range(start, start + self.view.span)

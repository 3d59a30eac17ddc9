"""The Foley timeline widget: timecode, envelopes, ticks, thumbnails, selection, scrubbing, zoom, lanes."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.timeline import (
    GENERATED_LANE,
    GRID_SECONDS,
    ORIGINAL_LANE,
    RegionView,
    TimelineWidget,
    format_timecode,
    take_colour,
    theme,
)
from app.timeline.envelope import EnvelopePyramid
from app.timeline.ruler import seconds_ticks, timecode_ticks
from app.timeline.thumbnails import tile_layout
from app.timeline.viewrange import MIN_VISIBLE_FRAMES
from tests.media_factory import AudioSpec, make_video
from vaura_core.media import ThumbnailCache, probe, read_audio_mono

NTSC_FILM = 24000 / 1001
NTSC_VIDEO = 30000 / 1001
FPS = 25
CLIP_SECONDS = 4.0


# --- timecode -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "fps", "expected"),
    [
        (0.0, 25, "00:00:00:00"),
        (0.12, 25, "00:00:00:03"),  # 3 / 25 lands a hair under the frame boundary in floating point
        (0.119, 25, "00:00:00:02"),
        (61.52, 25, "00:01:01:13"),
        (3599.99, 30, "00:59:59:29"),
        (7 / 30, 30, "00:00:00:07"),
        (90061.0, 25, "01:01:01:00"),  # hours wrap at 24, as on a timecode clock
        (1.0, NTSC_FILM, "00:00:00:23"),  # 23.976 counts 24 frames per timecode second...
        (24 / NTSC_FILM, NTSC_FILM, "00:00:01:00"),  # ...so timecode runs 0.1 % behind the clock
        (-0.04, 25, "-00:00:00:01"),
    ],
)
def test_timecode_counts_frames_at_the_nominal_rate(seconds: float, fps: float, expected: str) -> None:
    assert format_timecode(seconds, fps) == expected


def test_timecode_honours_the_start_time() -> None:
    assert format_timecode(0.0, 25, start_time=3600.0) == "01:00:00:00"
    assert format_timecode(2.5, 25, start_time=10.0) == "00:00:12:12"
    # 23.976: a clip starting 3600 real seconds in reads 00:59:56:10 (86314 frames at 24 per TC second),
    # and one starting at 86400 frames' time reads exactly one hour.
    assert format_timecode(0.0, NTSC_FILM, start_time=3600.0) == "00:59:56:10"
    assert format_timecode(0.0, NTSC_FILM, start_time=86400 / NTSC_FILM) == "01:00:00:00"
    assert format_timecode(1.0, NTSC_FILM, start_time=86400 / NTSC_FILM) == "01:00:00:23"
    # Start times that are not exact frame multiples (container rounding) snap to the nearest frame.
    assert format_timecode(0.0, 25, start_time=0.0199) == "00:00:00:00"
    assert format_timecode(0.0, 25, start_time=0.0201) == "00:00:00:01"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (1799, "00:00:59;29"),
        (1800, "00:01:00;02"),  # ;00 and ;01 do not exist at minute 1
        (3598, "00:02:00;02"),
        (17981, "00:09:59;29"),
        (17982, "00:10:00;00"),  # every tenth minute keeps ;00
        (17982 + 1800, "00:11:00;02"),
        (107892, "01:00:00;00"),  # one hour of 29.97 drop-frame is 107892 frames
    ],
)
def test_drop_frame_at_29_97(frame: int, expected: str) -> None:
    assert format_timecode(frame / NTSC_VIDEO, NTSC_VIDEO) == expected


def test_drop_frame_options_and_59_94() -> None:
    assert format_timecode(1800 / NTSC_VIDEO, NTSC_VIDEO, drop_frame=False) == "00:01:00:00"
    assert format_timecode(0.0, NTSC_VIDEO, start_time=3600.0) == "01:00:00;00"
    assert format_timecode(3600 / (60000 / 1001), 60000 / 1001) == "00:01:00;04"
    assert format_timecode(1.0, 30, drop_frame=True) == "00:00:01;00"
    with pytest.raises(ValueError, match="drop-frame"):
        format_timecode(1.0, 25, drop_frame=True)
    with pytest.raises(ValueError, match="frame rate"):
        format_timecode(1.0, 0)


# --- pure helpers: envelope pyramid, ruler ticks, tile layout -------------------------------------------


def test_envelope_slice_matches_brute_force_min_max() -> None:
    rate = 8000
    rng = np.random.default_rng(7)
    samples = (rng.standard_normal(rate * 30) * np.linspace(0.01, 0.9, rate * 30)).astype(np.float32)
    pyramid = EnvelopePyramid.build(samples, rate)
    assert [level[0] for level in pyramid.levels][:3] == [16, 64, 256]
    for _ in range(40):
        t0 = float(rng.uniform(0, 29))
        t1 = float(rng.uniform(t0 + 1e-3, 30))
        pixels = int(rng.integers(50, 2000))
        wave = pyramid.slice(t0, t1, pixels)
        assert wave.points <= 2 * pixels + 4
        if wave.is_line:
            assert wave.bucket == 1
            first = math.floor(t0 * rate)
            np.testing.assert_array_equal(wave.lo, samples[first : first + wave.lo.size])
            continue
        assert wave.bucket >= (t1 - t0) * rate / pixels  # at most one bucket per pixel
        # Buckets are aligned to absolute samples: the drawn range is whole buckets around [t0, t1].
        start = math.floor(t0 * rate) // wave.bucket * wave.bucket
        covered = samples[start : start + wave.bucket * wave.lo.size]
        assert wave.hi is not None
        assert float(wave.hi.max()) == float(covered.max())
        assert float(wave.lo.min()) == float(covered.min())
        np.testing.assert_array_less(wave.lo - 1e-12, wave.hi + 1e-12)
        first_bucket = samples[start : start + wave.bucket]
        assert float(wave.hi[0]) == float(first_bucket.max())


def test_envelope_accepts_stereo_and_integers_and_rejects_junk() -> None:
    stereo = np.stack([np.ones(100, np.float32), -np.ones(100, np.float32)])
    assert np.allclose(EnvelopePyramid.build(stereo, 100).samples, 0.0)
    ints = EnvelopePyramid.build(np.array([0, 16384, -32768], np.int16), 100)
    assert ints.samples.tolist() == [0.0, 0.5, -1.0]
    stereo_ints = EnvelopePyramid.build(np.array([[16384, 0], [16384, -32768]], np.int16), 100)
    assert stereo_ints.samples.tolist() == [0.5, -0.5]
    with pytest.raises(ValueError, match="1-D"):
        EnvelopePyramid.build(np.zeros((2, 2, 2)), 100)
    with pytest.raises(ValueError, match="sample rate"):
        EnvelopePyramid.build(np.zeros(10), 0)


def test_ruler_ticks_adapt_to_zoom_and_sit_on_round_timecode() -> None:
    width = 1000
    wide = timecode_ticks(0.0, 600.0, width, 25)
    close = timecode_ticks(10.0, 10.4, width, 25)
    for ticks, span in ((wide, 600.0), (close, 0.4)):
        labelled = [t for t in ticks if t.label]
        assert 2 <= len(labelled) <= width / 100 + 1
        spacing = (labelled[1].t - labelled[0].t) * width / span
        assert spacing >= 100  # labels never collide
        for tick in ticks:
            assert abs(tick.t * 25 - round(tick.t * 25)) < 1e-6  # on frame boundaries
    assert all(t.label.endswith(":00:00") for t in wide if t.label)  # whole minutes when zoomed out
    # 25 fps: label steps are whole divisors of a timecode second (1 or 5 frames), never 2.
    assert [t.label for t in close if t.label][:2] == ["00:00:10:00", "00:00:10:05"]
    closest = [t.label for t in timecode_ticks(10.0, 10.16, width, 25) if t.label]
    assert closest == ["00:00:10:00", "00:00:10:01", "00:00:10:02", "00:00:10:03", "00:00:10:04"]
    # With a start time the labels stay round in timecode, not in clip seconds.
    shifted = [t for t in timecode_ticks(0.0, 10.0, width, 25, start_time=3600.52) if t.label]
    assert shifted[0].label == "01:00:02:00" and abs(shifted[0].t - 1.48) < 1e-9  # 2 s steps here
    # Drop-frame: ticks chosen on the labels, so a minute tick reads ;02 and not a skipped ;00.
    df = [t.label for t in timecode_ticks(55.0, 65.0, width, NTSC_VIDEO) if t.label]
    assert "00:01:00;02" in df
    seconds = [t for t in seconds_ticks(0.0, 2.0, width) if t.label]
    assert seconds[0].label == "0.0s" and seconds[1].label == "0.2s"
    assert [t.label for t in seconds_ticks(0.0, 600.0, width) if t.label][1] == "1:00"


def test_tile_layout_reuses_pictures_across_zoom() -> None:
    frame = 1 / 25
    for span in (0.05, 0.3, 2.0, 37.0, 600.0):
        layout = tile_layout(0.0, span, 1000, 54, 16 / 9, 25, 600.0)
        assert layout is not None
        assert 0.5 < layout.crop <= 1.0
        ratio = layout.step / frame
        # A power-of-two number of frames per tile (or frames split into whole tiles).
        assert (
            abs(math.log2(ratio) - round(math.log2(ratio))) < 1e-9 or abs(1 / ratio - round(1 / ratio)) < 1e-9
        )
        assert layout.count <= 2 * 1000 / (54 * 16 / 9) + 2


# --- the widget -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("timeline")
    return make_video(
        folder / "clip.mp4",
        fps=FPS,
        duration=CLIP_SECONDS,
        size=(96, 54),
        audio=AudioSpec(beeps=(0.5, 2.0), beep_length=0.1),
        gop=12,
    )


@pytest.fixture
def timeline(qtbot) -> TimelineWidget:
    widget = TimelineWidget()
    qtbot.addWidget(widget)
    widget.resize(1000, 400)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def loaded(timeline: TimelineWidget, clip_path: Path, qtbot) -> TimelineWidget:
    info = probe(clip_path)
    audio, rate = read_audio_mono(info, 44100)
    cache = ThumbnailCache(info, height=48)
    timeline.set_clip(info, cache, audio, rate)
    qtbot.waitUntil(lambda: not timeline.is_busy(), timeout=10_000)
    return timeline


def _lane_point(widget: TimelineWidget, lane: str, t: float, y_fraction: float = 0.6) -> QPoint:
    return widget.lane_view(lane).local_point(t, y_fraction).toPoint()


def _drag(viewport, start: QPoint, end: QPoint, steps: int = 4) -> None:
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        QTest.mouseMove(viewport, start + (end - start) * (i / steps))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_empty_timeline_is_inert(timeline: TimelineWidget, qtbot) -> None:
    assert timeline.clip() is None
    with qtbot.assertNotEmitted(timeline.selection_changed):
        timeline.set_selection(1.0, 2.0)
    timeline.set_playhead(3.0)
    assert timeline.playhead() == 0.0
    assert not timeline.zoom_in_button.isEnabled()
    assert timeline.lane_state(ORIGINAL_LANE).mute  # the original lane starts muted
    assert not timeline.lane_state(GENERATED_LANE).mute


def test_clip_shows_lanes_and_lazy_thumbnails(loaded: TimelineWidget, qtbot) -> None:
    timeline = loaded
    assert timeline.visible_range() == (0.0, pytest.approx(CLIP_SECONDS, abs=0.05))
    strip = timeline.thumbnail_strip
    assert strip.tile_count() > 0
    qtbot.waitUntil(lambda: strip.shown_count() == strip.tile_count(), timeout=10_000)
    assert timeline.drawn_points(ORIGINAL_LANE) > 0  # the clip's own audio is drawn
    assert timeline.drawn_points(GENERATED_LANE) == 0
    assert timeline.lane_header(ORIGINAL_LANE).mute_button.isEnabled()
    assert timeline.counter.text() == "00:00:00:00"

    # Zooming asks for new pictures, which arrive from the pool.
    timeline.set_visible_range(1.0, 1.5)
    assert strip.layout_now() is not None and strip.layout_now().step < 0.5
    qtbot.waitUntil(lambda: strip.shown_count() == strip.tile_count(), timeout=10_000)

    # Zoomed out to a second or more per thumbnail, only keyframes are decoded.
    timeline.resize(timeline.minimumWidth(), timeline.height())
    timeline.fit()
    layout = strip.layout_now()
    cache = strip.source()
    assert layout is not None and cache is not None and layout.step >= cache.keyframe_spacing
    qtbot.waitUntil(lambda: strip.shown_count() == strip.tile_count(), timeout=10_000)
    assert cache.peek(layout.step, layout.step) is not None  # cached as a keyframe picture

    timeline.set_generated(np.zeros(int(CLIP_SECONDS * 44100), np.float32), 44100)
    assert timeline.drawn_points(GENERATED_LANE) > 0
    timeline.clear()
    assert timeline.clip() is None and timeline.drawn_points(ORIGINAL_LANE) == 0
    assert strip.tile_count() == 0


def test_clip_without_audio_disables_the_original_lane(timeline: TimelineWidget, tmp_path: Path) -> None:
    path = make_video(tmp_path / "silent.mp4", fps=24, duration=1.0)
    info = probe(path)
    timeline.set_clip(info, None, None, 44100)
    header = timeline.lane_header(ORIGINAL_LANE)
    assert not header.mute_button.isEnabled() and not header.gain_slider.isEnabled()
    assert timeline.lane_header(GENERATED_LANE).solo_button.isEnabled()
    assert timeline.thumbnail_strip.tile_count() == 0


def test_drag_selects_and_snaps_to_frames(loaded: TimelineWidget, qtbot) -> None:
    timeline = loaded
    viewport = timeline.lane_view(GENERATED_LANE).viewport()
    changes: list[object] = []
    timeline.selection_changed.connect(changes.append)
    _drag(
        viewport, _lane_point(timeline, GENERATED_LANE, 0.513), _lane_point(timeline, GENERATED_LANE, 1.731)
    )
    selection = timeline.selection()
    assert selection is not None
    for edge, wanted in zip(selection, (0.513, 1.731), strict=True):
        assert abs(edge * FPS - round(edge * FPS)) < 1e-9  # on a frame
        assert abs(edge - wanted) <= 0.5 / FPS + timeline.lane_view(GENERATED_LANE).seconds_per_pixel()
    assert changes and changes[-1] == selection

    # Dragging right to left selects the same way; the original lane selects too.
    _drag(
        timeline.lane_view(ORIGINAL_LANE).viewport(),
        _lane_point(timeline, ORIGINAL_LANE, 3.0),
        _lane_point(timeline, ORIGINAL_LANE, 2.2),
    )
    lo, hi = timeline.selection()
    assert lo == pytest.approx(2.2, abs=0.03) and hi == pytest.approx(3.0, abs=0.03)

    # A click on an empty spot clears the selection and puts the playhead there.
    with qtbot.waitSignal(timeline.playhead_dragged) as moved:
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=_lane_point(timeline, GENERATED_LANE, 1.0))
    assert timeline.selection() is None and changes[-1] is None
    assert moved.args[0] == pytest.approx(1.0, abs=0.5 / FPS)


def test_selection_snaps_to_the_model_grid(loaded: TimelineWidget) -> None:
    timeline = loaded
    timeline.set_snap("grid")
    assert timeline.snap() == "grid" and timeline.snap_combo.currentData() == "grid"
    viewport = timeline.lane_view(GENERATED_LANE).viewport()
    _drag(viewport, _lane_point(timeline, GENERATED_LANE, 0.7), _lane_point(timeline, GENERATED_LANE, 2.0))
    assert timeline.selection() == (pytest.approx(GRID_SECONDS), pytest.approx(3 * GRID_SECONDS))
    # The clip's end is a snap target even though 4.0 s is not on the grid.
    _drag(viewport, _lane_point(timeline, GENERATED_LANE, 3.3), _lane_point(timeline, GENERATED_LANE, 3.97))
    assert timeline.selection() == (pytest.approx(5 * GRID_SECONDS), pytest.approx(CLIP_SECONDS, abs=1e-6))

    timeline.set_snap("off")
    assert timeline.snap_time(1.2345) == 1.2345
    with pytest.raises(ValueError, match="snap mode"):
        timeline.set_snap("bars")
    # The programmatic selection is clamped and ordered but not snapped.
    timeline.set_selection(3.5, -1.0)
    assert timeline.selection() == (0.0, 3.5)
    timeline.setFocus()
    QTest.keyClick(timeline, Qt.Key.Key_Escape)
    assert timeline.selection() is None


def test_scrubbing_on_the_ruler_and_picture_emits_snapped_times(loaded: TimelineWidget, qtbot) -> None:
    timeline = loaded
    times: list[float] = []
    events: list[str] = []
    timeline.playhead_dragged.connect(times.append)
    timeline.scrub_started.connect(lambda: events.append("start"))
    timeline.scrub_finished.connect(lambda: events.append("finish"))
    ruler = timeline.ruler
    y = ruler.height() // 2
    start = QPoint(round(ruler.time_to_x(0.33)), y)
    end = QPoint(round(ruler.time_to_x(2.47)), y)
    _drag(ruler, start, end, steps=6)
    assert events == ["start", "finish"]
    assert len(times) >= 3 and times == sorted(times)
    assert all(abs(t * FPS - round(t * FPS)) < 1e-9 for t in times)
    assert times[0] == pytest.approx(0.32) and times[-1] == pytest.approx(2.48)
    assert timeline.playhead() == times[-1]
    assert timeline.counter.text() == format_timecode(times[-1], FPS)

    # The picture strip scrubs too.
    times.clear()
    strip = timeline.thumbnail_strip
    _drag(strip.viewport(), strip.local_point(1.003).toPoint(), strip.local_point(1.61).toPoint())
    assert times[0] == pytest.approx(1.0) and times[-1] == pytest.approx(1.6)
    assert events == ["start", "finish", "start", "finish"]


def test_zoom_pan_fit_and_limits(loaded: TimelineWidget, qtbot) -> None:
    timeline = loaded
    timeline.set_playhead(1.0)
    timeline.zoom_in()
    t0, t1 = timeline.visible_range()
    assert t1 - t0 == pytest.approx(CLIP_SECONDS / 2)
    assert t0 <= 1.0 <= t1
    # The anchor (the playhead) keeps its place on screen.
    assert (1.0 - t0) / (t1 - t0) == pytest.approx(1.0 / CLIP_SECONDS)
    timeline.zoom_out()
    assert timeline.visible_range() == (0.0, pytest.approx(CLIP_SECONDS))

    timeline.setFocus()
    QTest.keyClick(timeline, Qt.Key.Key_Plus)
    QTest.keyClick(timeline, Qt.Key.Key_Plus)
    assert timeline.visible_range()[1] - timeline.visible_range()[0] == pytest.approx(CLIP_SECONDS / 4)
    QTest.keyClick(timeline, Qt.Key.Key_Minus)
    assert timeline.visible_range()[1] - timeline.visible_range()[0] == pytest.approx(CLIP_SECONDS / 2)

    for _ in range(20):
        timeline.zoom_in()
    t0, t1 = timeline.visible_range()
    assert t1 - t0 == pytest.approx(MIN_VISIBLE_FRAMES / FPS)  # a few frames at most
    timeline.fit()
    assert timeline.visible_range() == (0.0, pytest.approx(CLIP_SECONDS))
    for _ in range(5):
        timeline.zoom_out()
    assert timeline.visible_range() == (0.0, pytest.approx(CLIP_SECONDS))  # never past the clip

    # The wheel zooms around the pointer; the time under it stays under it.
    viewport = timeline.lane_view(GENERATED_LANE).viewport()
    x = timeline.time_to_pixel(3.0)
    _wheel(viewport, QPointF(x, 20), QPoint(0, 240))
    t0, t1 = timeline.visible_range()
    assert t1 - t0 == pytest.approx(CLIP_SECONDS / 1.25**2)
    assert timeline.pixel_to_time(x) == pytest.approx(3.0, abs=1e-6)
    # Shift+wheel and horizontal wheels pan, the scrollbar follows; panning stops at the clip's end.
    _wheel(viewport, QPointF(x, 20), QPoint(0, -120), Qt.KeyboardModifier.ShiftModifier)
    assert timeline.visible_range()[0] > t0
    _wheel(viewport, QPointF(x, 20), QPoint(-12000, 0))
    assert timeline.visible_range()[1] == pytest.approx(CLIP_SECONDS)
    assert timeline.scrollbar.value() == timeline.scrollbar.maximum()
    timeline.scrollbar.setValue(0)
    assert timeline.visible_range()[0] == 0.0

    # A middle-button drag pans by exactly the distance dragged.
    t0, t1 = timeline.visible_range()
    start = _lane_point(timeline, ORIGINAL_LANE, t0 + (t1 - t0) * 0.6)
    end = start - QPoint(100, 0)
    original = timeline.lane_view(ORIGINAL_LANE)
    QTest.mousePress(original.viewport(), Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(original.viewport(), end)
    QTest.mouseRelease(original.viewport(), Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, end)
    assert timeline.visible_range()[0] == pytest.approx(t0 + 100 * original.seconds_per_pixel())
    assert timeline.selection() is None  # panning never selects


def _wheel(target, position: QPointF, angle: QPoint, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    event = QWheelEvent(
        position,
        target.mapToGlobal(position),
        QPoint(0, 0),
        angle,
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(target, event)


def test_closing_while_pictures_decode_leaves_nothing_running(
    timeline: TimelineWidget, clip_path: Path
) -> None:
    info = probe(clip_path)
    timeline.set_clip(info, ThumbnailCache(info, height=48), None, 44100)
    for k in range(5):  # each view asks for new pictures
        timeline.set_visible_range(0.3 * k, 0.3 * k + 0.5)
    timeline.close()  # waits for the picture being decoded and drops the rest
    assert not timeline.thumbnail_strip.pending()


def test_follow_pages_the_view_during_playback(loaded: TimelineWidget) -> None:
    timeline = loaded
    timeline.set_visible_range(0.0, 1.0)
    assert timeline.follow()
    timeline.set_playhead(0.9)
    assert timeline.visible_range() == (0.0, pytest.approx(1.0))
    timeline.set_playhead(1.2)
    t0, t1 = timeline.visible_range()
    assert t0 < 1.2 < t1 and t1 - t0 == pytest.approx(1.0)
    timeline.set_follow(False)
    assert not timeline.follow_button.isChecked()
    timeline.set_playhead(3.5)
    assert timeline.visible_range() == (t0, t1)


def test_ten_minute_waveform_stays_within_two_points_per_pixel(timeline: TimelineWidget, qtbot) -> None:
    rate = 44100
    info = _fake_clip_info(duration=600.0)
    # A decaying tone every second: tiled so that making 26 million samples is cheap.
    t = np.arange(rate, dtype=np.float32) / rate
    second = (np.sin(2 * np.pi * 220 * t) * np.exp(-6 * t)).astype(np.float32)
    samples = np.tile(second, 600)
    samples[rate * 300 + 100] = 1.0  # one spike halfway that must survive every zoom level
    timeline.set_clip(info, None, None, rate)
    timeline.set_generated(samples, rate)  # long: the envelope is built on the worker pool
    qtbot.waitUntil(lambda: timeline.drawn_points(GENERATED_LANE) > 0, timeout=20_000)

    view = timeline.lane_view(GENERATED_LANE)
    bound = 2 * timeline.width()
    spans = [600.0, 120.0, 10.0, 1.0, MIN_VISIBLE_FRAMES / FPS]
    for span in spans:
        timeline.set_visible_range(300.0 - span / 2, 300.0 + span / 2)
        points = timeline.drawn_points(GENERATED_LANE)
        print(f"span {span:g} s: {points} points drawn, widget {timeline.width()} px")
        assert 0 < points <= bound, (span, points)
        assert points <= 2 * view.pixel_width() + 4
        if span >= 1:  # every view this wide holds a whole tone burst: its trough is drawn
            assert view.wave_item.value_range()[0] == pytest.approx(samples.min(), abs=1e-3)
    timeline.fit()
    assert view.wave_item.value_range()[1] == 1.0  # the spike is still drawn


def _fake_clip_info(duration: float):
    """A ClipInfo for a long clip without writing one (only the timing fields matter to the timeline)."""
    from vaura_core.media import ClipInfo, Orientation

    return ClipInfo(
        path=Path("long.mp4"),
        size_bytes=0,
        container="mov,mp4,m4a,3gp,3g2,mj2",
        bit_rate=None,
        video_stream=0,
        video_codec="h264",
        pixel_format="yuv420p",
        width=1920,
        height=1080,
        sample_aspect_ratio=Fraction(1),
        rotation=0,
        mirrored=False,
        orientation=Orientation(),
        display_width=1920,
        display_height=1080,
        start_time=0.0,
        start_pts=0,
        time_base=Fraction(1, 12800),
        duration=duration,
        frame_rate=FPS,
        variable_frame_rate=False,
        frame_count=round(duration * FPS),
    )


def test_regions_render_and_report_clicks(loaded: TimelineWidget, qtbot) -> None:
    timeline = loaded
    regions = [
        RegionView("r1", 0.0, 1.28, colour=0, label="Take 1"),
        RegionView("r2", 1.28, 2.56, colour=3, label="Take 4", active=True),
    ]
    timeline.set_regions(regions)
    assert timeline.regions() == regions
    view = timeline.lane_view(GENERATED_LANE)
    image = view.grab().toImage()
    for region in regions:
        x = round(view.time_to_x((region.start + region.end) / 2))
        bar = image.pixelColor(x, 8)  # the label bar along the top
        assert _near(
            bar, _over(take_colour(region.colour), 235 if region.active else 190, theme.LANE_BACKGROUND_ALT)
        )
    outside = image.pixelColor(round(view.time_to_x(3.5)), 8)
    assert _near(outside, theme.LANE_BACKGROUND_ALT)

    viewport = view.viewport()
    with qtbot.waitSignal(timeline.region_clicked) as clicked:
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=_lane_point(timeline, GENERATED_LANE, 1.9))
    assert clicked.args == ["r2"]
    with qtbot.waitSignal(timeline.region_double_clicked) as double:
        QTest.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=_lane_point(timeline, GENERATED_LANE, 0.4))
    assert double.args == ["r1"]

    timeline.set_audition("r1")
    image = view.grab().toImage()
    edge = image.pixelColor(round(view.time_to_x(0.6)), view.viewport().height() - 1)
    assert _near(edge, theme.AUDITION)  # the auditioned region has a bright border
    with pytest.raises(ValueError, match="ends"):
        RegionView("bad", 2.0, 1.0, 0, "")


def _over(colour: QColor, alpha: int, background: QColor) -> QColor:
    a = alpha / 255
    return QColor(
        *(
            round(a * c + (1 - a) * b)
            for c, b in zip(colour.getRgb()[:3], background.getRgb()[:3], strict=True)
        )
    )


def _near(actual: QColor, expected: QColor, tolerance: int = 12) -> bool:
    return all(
        abs(a - e) <= tolerance for a, e in zip(actual.getRgb()[:3], expected.getRgb()[:3], strict=True)
    )


def test_lane_controls_emit_and_undo_state_does_not(loaded: TimelineWidget, qtbot) -> None:
    timeline = loaded
    header = timeline.lane_header(GENERATED_LANE)
    with qtbot.waitSignal(timeline.lane_mute_changed) as muted:
        QTest.mouseClick(header.mute_button, Qt.MouseButton.LeftButton)
    assert muted.args == [GENERATED_LANE, True]
    with qtbot.waitSignal(timeline.lane_solo_changed) as soloed:
        QTest.mouseClick(timeline.lane_header(ORIGINAL_LANE).solo_button, Qt.MouseButton.LeftButton)
    assert soloed.args == [ORIGINAL_LANE, True]
    with qtbot.waitSignal(timeline.lane_gain_changed) as gained:
        header.gain_slider.setValue(-12)  # half decibels
    assert gained.args[0] == GENERATED_LANE and gained.args[1] == pytest.approx(10 ** (-6 / 20))
    assert header.gain_label.text() == "-6.0 dB"
    with qtbot.waitSignal(timeline.lane_gain_changed) as silenced:
        header.gain_slider.setValue(header.gain_slider.minimum())
    assert silenced.args[1] == 0.0 and header.gain_label.text() == "-∞ dB"

    with (
        qtbot.assertNotEmitted(timeline.lane_gain_changed),
        qtbot.assertNotEmitted(timeline.lane_mute_changed),
        qtbot.assertNotEmitted(timeline.lane_solo_changed),
    ):
        timeline.set_lane_state(GENERATED_LANE, 0.5, False, True)
    state = timeline.lane_state(GENERATED_LANE)
    assert state.gain == pytest.approx(0.5, rel=0.03) and not state.mute and state.solo
    with pytest.raises(ValueError, match="unknown lane"):
        timeline.set_lane_state("music", 1.0, False, False)


def test_every_control_has_a_tooltip(loaded: TimelineWidget) -> None:
    from PySide6.QtWidgets import QAbstractButton, QAbstractSlider, QComboBox

    controls = loaded.findChildren(QAbstractButton) + loaded.findChildren(QAbstractSlider)
    controls += loaded.findChildren(QComboBox)
    controls = [c for c in controls if c.isVisibleTo(loaded)]  # not the views' hidden scroll bars
    assert len(controls) >= 10
    assert [c for c in controls if not c.toolTip()] == []
    for view in (
        loaded.ruler,
        loaded.thumbnail_strip,
        *(loaded.lane_view(lane) for lane in (ORIGINAL_LANE, GENERATED_LANE)),
    ):
        assert view.toolTip()

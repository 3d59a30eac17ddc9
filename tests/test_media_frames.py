"""Model frames by presentation time, model segments, preview pictures and thumbnails."""

from __future__ import annotations

import dataclasses
import math
import struct
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.media_factory import CODES, make_video, read_index
from vaura_core.media import (
    FrameReader,
    MediaError,
    ThumbnailCache,
    default_short_side,
    frame_at,
    iter_model_frames,
    model_frame_count,
    model_segments,
    probe,
    segment_count,
)
from vaura_core.media.geometry import centre_crop, parse_display_matrix, short_side_size
from vaura_core.model.config import preset

NTSC_FILM = Fraction(24000, 1001)
WHITE = 240  # marker pixels read back brighter than this, index colours never do (max 224 + noise)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("frame_clips")


def expected_indices(source_times: list[float], out_times: list[float]) -> list[int]:
    """The by-time rule, written independently: the last source frame with time <= t."""
    chosen = []
    for t in out_times:
        shown = [i for i, s in enumerate(source_times) if s <= t + 1e-6]
        chosen.append(shown[-1] if shown else 0)
    return chosen


def read_all(chunks: list[np.ndarray]) -> list[int]:
    return [read_index(frame) for chunk in chunks for frame in chunk]


# --- selection by presentation time ---------------------------------------------------------


@pytest.mark.parametrize("fps", [NTSC_FILM, 25, 30, 60, 12])
def test_constant_rates_are_resampled_by_time(clips: Path, fps: Fraction | int) -> None:
    n = math.ceil(2 * float(fps))
    path = make_video(clips / f"cfr_{float(fps):.3f}.mp4", fps=fps, n_frames=n)
    chunks = list(iter_model_frames(path, size=32))
    info = probe(path)
    count = math.ceil(info.duration * 25 - 1e-9)
    assert [len(c) for c in chunks] == [16] * (count // 16) + ([count % 16] if count % 16 else [])
    assert all(c.shape[1:] == (32, 32, 3) and c.dtype == np.uint8 for c in chunks)
    source = [i / float(fps) for i in range(n)]
    assert read_all(chunks) == [i % CODES for i in expected_indices(source, [k / 25 for k in range(count)])]


def test_variable_rate_and_b_frames(clips: Path) -> None:
    rng = np.random.default_rng(7)
    times = [float(t) for t in np.cumsum(np.r_[0.0, rng.uniform(0.01, 0.09, 59)]).round(4)]
    path = make_video(clips / "vfr_b.mp4", times=times, b_frames=2)
    info = probe(path)
    assert info.variable_frame_rate
    got = read_all(list(iter_model_frames(path, size=32, chunk=7)))
    out_times = [k / 25 for k in range(model_frame_count(info.duration, 25))]
    assert got == expected_indices(times, out_times)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    gaps=st.lists(st.sampled_from([0.011, 0.023, 0.04, 0.057, 0.1]), min_size=3, max_size=30),
    start=st.floats(0.0, 0.5),
)
def test_any_timing_any_start(tmp_path: Path, gaps: list[float], start: float) -> None:
    times = [0.0, *np.cumsum(gaps).round(4).tolist()]
    path = make_video(tmp_path / "any.mkv", times=times)
    info = probe(path)
    if start >= info.duration:
        return
    got = read_all(list(iter_model_frames(path, size=32, start=start)))
    count = model_frame_count(info.duration - start, 25)
    assert got == expected_indices(times, [start + k / 25 for k in range(count)])


def test_sub_range_and_frame_count(clips: Path) -> None:
    path = make_video(clips / "range.mp4", fps=30, n_frames=90)
    got = read_all(list(iter_model_frames(path, size=32, start=0.5, end=1.3)))
    assert len(got) == 20  # ceil(0.8 x 25)
    assert got == expected_indices([i / 30 for i in range(90)], [0.5 + k / 25 for k in range(20)])
    # Past the end the last frame stays on screen.
    tail = read_all(list(iter_model_frames(path, size=32, start=2.9, end=3.2)))
    assert tail == expected_indices([i / 30 for i in range(90)], [2.9 + k / 25 for k in range(8)])
    assert tail[-5:] == [89] * 5
    with pytest.raises(ValueError, match="start"):
        iter_model_frames(path, start=5.0)


def test_seeking_long_gop(clips: Path) -> None:
    path = make_video(clips / "gop.mp4", duration=8.0, gop=100)
    got = read_all(list(iter_model_frames(path, size=32, start=6.1, end=6.5)))
    assert got == [round(6.1 * 25) + k for k in range(10)]


def test_first_frame_not_at_zero(clips: Path) -> None:
    path = make_video(clips / "late.mkv", n_frames=30, start=3.0)
    got = read_all(list(iter_model_frames(path, size=32)))
    assert got == list(range(30))


def test_half_second_and_odd_size(clips: Path) -> None:
    path = make_video(clips / "odd.mkv", fps=30, n_frames=15, size=(97, 55), codec="mpeg4")
    chunks = list(iter_model_frames(path))
    assert [c.shape for c in chunks] == [(13, 224, 224, 3)]  # ceil(0.5 x 25)
    assert read_all(chunks) == expected_indices([i / 30 for i in range(15)], [k / 25 for k in range(13)])


# --- geometry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rotation", "corner"), [(0, "top_left"), (90, "bottom_left"), (-90, "top_right"), (180, "bottom_right")]
)
def test_rotation_is_applied_like_a_player(clips: Path, rotation: int, corner: str) -> None:
    # The marker is the stored top-left corner; a counter-clockwise quarter turn puts it at the
    # bottom left (ffmpeg's autorotate: transpose=cclock), a clockwise one at the top right.
    path = make_video(clips / f"rot_{rotation}.mp4", n_frames=4, rotation=rotation, pattern="marker")
    picture = frame_at(path, 0.0)
    info = probe(path)
    assert picture.shape == (info.display_height, info.display_width, 3)
    h, w = picture.shape[:2]
    corners = {
        "top_left": picture[2, 2],
        "top_right": picture[2, w - 3],
        "bottom_left": picture[h - 3, 2],
        "bottom_right": picture[h - 3, w - 3],
    }
    assert {name for name, px in corners.items() if px.min() > WHITE} == {corner}
    # The centre crop keeps part of the marker, in the same corner.
    crop = next(iter_model_frames(path))[0]
    assert read_index(crop) == 0
    rows, cols = np.nonzero(crop.min(axis=2) > WHITE)
    assert rows.size > 0
    vertical = "top" if rows.mean() < 112 else "bottom"
    horizontal = "left" if cols.mean() < 112 else "right"
    assert f"{vertical}_{horizontal}" == corner


def test_display_matrix_parsing_covers_all_eight_orientations() -> None:
    picture = np.arange(12).reshape(3, 4)
    unit = 1 << 16

    def matrix(a: int, b: int, c: int, d: int) -> bytes:
        return struct.pack("=9i", a * unit, b * unit, 0, c * unit, d * unit, 0, 0, 0, 1 << 30)

    cases = {  # (a, b, c, d): (rotation, mirrored, displayed picture)
        (1, 0, 0, 1): (0, False, picture),
        (0, -1, 1, 0): (90, False, np.rot90(picture, 1)),
        (-1, 0, 0, -1): (180, False, np.rot90(picture, 2)),
        (0, 1, -1, 0): (-90, False, np.rot90(picture, -1)),
        (-1, 0, 0, 1): (180, True, picture[:, ::-1]),
        (1, 0, 0, -1): (0, True, picture[::-1]),
        (0, 1, 1, 0): (-90, True, picture.T),
        (0, -1, -1, 0): (90, True, picture.T[::-1, ::-1]),
    }
    for entries, (rotation, mirrored, shown) in cases.items():
        orientation, got_rotation, got_mirrored = parse_display_matrix(matrix(*entries))
        assert (got_rotation, got_mirrored) == (rotation, mirrored), entries
        np.testing.assert_array_equal(orientation.apply(picture[..., None])[..., 0], shown)


def test_sizes_follow_torchvision_conventions() -> None:
    assert default_short_side(224) == 256 and default_short_side(32) == 37
    assert short_side_size(1920, 1080, 256) == (455, 256)  # int(256 * 1920 / 1080)
    assert short_side_size(1080, 1920, 256) == (256, 455)
    picture = np.arange(5 * 8).reshape(5, 8, 1)
    np.testing.assert_array_equal(centre_crop(picture, 3), picture[1:4, 2:5])  # round(2.5) == 2


def test_scaling_is_antialiased_bilinear(clips: Path) -> None:
    # Fine stripes must average to grey when shrunk, as torchvision's antialiased Resize does;
    # a plain bilinear sampler would alias them into bands.
    import av

    stripes = np.zeros((256, 512, 3), np.uint8)
    stripes[:, ::2] = 255
    path = clips / "stripes.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 512, 256, "yuv444p"
        stream.options = {"preset": "ultrafast", "qp": "0"}
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(stripes, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    crop = next(iter_model_frames(path, size=16, short_side=32))[0].astype(float)
    assert np.abs(crop - 127.5).max() < 12


# --- model segments -------------------------------------------------------------------------


def test_model_segments_layout_normalisation_and_padding(clips: Path) -> None:
    cfg = preset("test")
    size = cfg.visual.img_size
    path = make_video(clips / "segments.mp4", n_frames=40)  # 40 frames at 25 fps: 2.5 segments
    frames = np.concatenate(list(iter_model_frames(path, size=size)))
    assert segment_count(path, 25, 16) == 3 and segment_count(path, 25, 16, pad=False) == 2
    (window,) = list(model_segments(path, cfg))
    assert window.shape == (3, 3, 16, size, size)
    assert window.dtype.is_floating_point and window.min() >= -1 and window.max() <= 1
    expected = (frames.astype(np.float32) / 255 - 0.5) / 0.5
    got = window.permute(0, 2, 3, 4, 1).reshape(-1, size, size, 3).numpy()
    np.testing.assert_allclose(got[:40], expected, atol=1e-6)
    np.testing.assert_array_equal(got[40:], np.repeat(got[39:40], 8, axis=0))  # last frame repeated
    unpadded = list(model_segments(path, cfg, pad=False, batch=1))
    assert [t.shape[0] for t in unpadded] == [1, 1]
    (second,) = list(model_segments(path, cfg, start_segment=1, n_segments=1))
    np.testing.assert_array_equal(second.numpy(), window[1:2].numpy())
    with pytest.raises(ValueError, match="segments"):
        list(model_segments(path, cfg, start_segment=1, n_segments=5))


# --- streaming ------------------------------------------------------------------------------


def test_long_clip_streams_in_bounded_memory(clips: Path) -> None:
    path = make_video(clips / "forty.mp4", duration=40.0)
    frames = iter_model_frames(path, chunk=16)
    tracemalloc.start()
    try:
        first = next(frames)
        _, after_first = tracemalloc.get_traced_memory()
        count, picks = len(first), [read_index(first[0])]
        for chunk in frames:
            count += len(chunk)
            picks.append(read_index(chunk[0]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole = 1000 * 224 * 224 * 3
    assert count == 1000
    assert picks == [(16 * i) % CODES for i in range(63)]
    assert after_first < 16 * 1024 * 1024  # the first chunk did not decode the clip ahead
    assert peak < whole / 10  # about two chunks (2.4 MB each) plus decoder-side numpy


def test_truncation_found_while_decoding(clips: Path) -> None:
    path = make_video(clips / "two_seconds.mp4", duration=2.0)
    promised = dataclasses.replace(probe(path), duration=6.0)  # a header that lies
    with pytest.raises(MediaError, match="truncated"):
        list(iter_model_frames(promised, size=32))


# --- preview and thumbnails -----------------------------------------------------------------


def test_frame_reader_random_and_sequential_access(clips: Path) -> None:
    path = make_video(clips / "scrub.mp4", duration=6.0, gop=30)
    with FrameReader(path, max_size=32) as reader:
        assert reader.output_size() == (32, 24)
        for t in [0.0, 0.05, 0.5, 0.51, 3.0, 1.0, 5.99, 2.2, 2.3, 4.9, 0.0]:
            picture = reader.read(t)
            assert picture.shape == (24, 32, 3)
            assert read_index(picture) == int(t * 25 + 1e-6) % CODES, t
            assert reader.frame_time(t) == pytest.approx(int(t * 25 + 1e-6) / 25)
        assert read_index(reader.read(-3.0)) == 0
        assert read_index(reader.read(100.0)) == 149
        assert reader.read(1.0, height=12).shape == (12, 16, 3)
    assert frame_at(path, 2.0).shape == (48, 64, 3)


def test_thumbnails_exact_keyframes_and_cache(clips: Path) -> None:
    path = make_video(clips / "thumbs.mp4", duration=8.0, gop=25)  # a keyframe every second
    with ThumbnailCache(path, height=24, max_entries=4) as thumbs:
        zoomed_in = thumbs.get(3.37)
        assert zoomed_in.shape == (24, thumbs.thumbnail_width(), 3) == (24, 32, 3)
        assert read_index(zoomed_in) == 84  # the frame on screen at 3.37 s
        assert thumbs.get(3.37) is zoomed_in and thumbs.decoded == 1
        zoomed_out = thumbs.get(5.9, spacing=2.0)  # quantised to 4.0 s, then its keyframe
        assert read_index(zoomed_out) == 100
        assert read_index(thumbs.get(6.5, spacing=1.5)) == 150  # 6.0 s: a keyframe itself
        strip = thumbs.strip(0.0, 8.0, 4)
        assert [read_index(t) for t in strip] == [0, 50, 100, 150]
        assert thumbs.peek(3.37) is None  # evicted: only 4 entries are kept
        assert thumbs.peek(6.0, spacing=2.0) is not None
        taller = thumbs.get(1.0, height=48)
        assert taller.shape == (48, 64, 3)

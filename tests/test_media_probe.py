"""probe(), the MediaError contract for unusable files, and the clip's own audio."""

from __future__ import annotations

import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.media_factory import (
    AudioSpec,
    make_audio_only,
    make_oversized_y4m,
    make_png,
    make_random_bytes,
    make_truncated,
    make_video,
)
from vaura_core.errors import VauraError
from vaura_core.media import (
    NO_AUDIO_RATE,
    MediaError,
    ThumbnailCache,
    audio_envelope,
    frame_at,
    iter_model_frames,
    probe,
    read_audio_mono,
)

NTSC_FILM = Fraction(24000, 1001)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("probe_clips")


# --- timing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("fps", "n_frames"), [(NTSC_FILM, 48), (25, 50), (30, 60), (60, 120)])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_constant_rate_clips(clips: Path, fps: Fraction | int, n_frames: int, suffix: str) -> None:
    path = make_video(clips / f"cfr_{float(fps):.3f}{suffix}", fps=fps, n_frames=n_frames)
    info = probe(path)
    assert info.duration == pytest.approx(n_frames / float(fps), abs=1e-3)
    assert info.frame_rate == pytest.approx(float(fps), rel=1e-3)
    assert info.frame_count == n_frames
    assert not info.variable_frame_rate
    assert info.start_time == 0.0
    assert info.video_codec == "h264"
    assert (info.width, info.height) == (64, 48) == (info.display_width, info.display_height)
    assert info.rotation == 0 and not info.mirrored
    assert info.size_bytes == path.stat().st_size
    assert info.bit_rate is None or info.bit_rate > 0
    assert info.frame_count / info.duration == pytest.approx(float(fps), rel=1e-3)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate(clips: Path, suffix: str) -> None:
    rng = np.random.default_rng(1)
    times = np.cumsum(np.r_[0.0, rng.choice([0.02, 0.04, 0.07], 39)])
    info = probe(make_video(clips / f"vfr{suffix}", times=times))
    assert info.variable_frame_rate
    # The container decides how long the last frame lasts (Matroska: the nominal 1/25 s, MP4: an
    # average interval); the duration runs from the first timestamp to that end.
    assert times[-1] + 0.015 < info.duration < times[-1] + 0.075


def test_coarse_clock_is_not_mistaken_for_variable_rate(clips: Path) -> None:
    # Matroska stores 29.97 fps on a 1 ms clock as 33/34 ms steps.
    info = probe(make_video(clips / "ntsc.mkv", fps=Fraction(30000, 1001), n_frames=60))
    assert not info.variable_frame_rate


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_first_frame_not_at_zero(clips: Path, suffix: str) -> None:
    info = probe(make_video(clips / f"late{suffix}", n_frames=25, start=2.0))
    assert info.start_time == pytest.approx(2.0, abs=1e-3)
    assert info.duration == pytest.approx(1.0, abs=1e-3)


def test_half_second_and_forty_second_clips(clips: Path) -> None:
    short = probe(make_video(clips / "short.mp4", fps=30, n_frames=15))
    assert short.duration == pytest.approx(0.5, abs=1e-3)
    assert short.frame_count == 15
    path = make_video(clips / "long.mkv", duration=40.0)
    began = time.perf_counter()
    info = probe(path)
    elapsed = time.perf_counter() - began
    assert info.duration == pytest.approx(40.0, abs=1e-3)
    assert info.frame_count == 1000
    assert elapsed < 2.0  # header, one frame and a few packets at each end, not 1000 frames


def test_odd_sizes(clips: Path) -> None:
    info = probe(make_video(clips / "odd.mkv", n_frames=10, size=(97, 55), codec="mpeg4"))
    assert (info.width, info.height, info.display_width, info.display_height) == (97, 55, 97, 55)


@pytest.mark.parametrize(
    ("rotation", "display", "swapped"), [(90, (48, 64), True), (-90, (48, 64), True), (180, (64, 48), False)]
)
def test_rotation_from_display_matrix(
    clips: Path, rotation: int, display: tuple[int, int], swapped: bool
) -> None:
    info = probe(make_video(clips / f"rot{rotation}.mp4", n_frames=5, rotation=rotation))
    assert info.rotation == rotation
    assert (info.width, info.height) == (64, 48)
    assert (info.display_width, info.display_height) == display
    assert info.orientation.swaps_axes is swapped
    assert not info.mirrored


def test_audio_tracks_listed(clips: Path) -> None:
    path = make_video(clips / "with_audio.mp4", duration=1.0, audio=AudioSpec(sample_rate=48000, channels=1))
    (track,) = probe(path).audio_tracks
    assert (track.codec, track.sample_rate, track.channels) == ("aac", 48000, 1)
    assert track.duration == pytest.approx(1.0, abs=0.03)
    silent = probe(make_video(clips / "silent.mp4", duration=1.0))
    assert silent.audio_tracks == () and not silent.has_audio


# --- unusable files -------------------------------------------------------------------------


def _broken(kind: str, folder: Path) -> tuple[Path, str]:
    """A bad input of the given kind and a word its message must contain."""
    folder.mkdir(exist_ok=True)
    if kind == "empty":
        (p := folder / "empty.mp4").touch()
        return p, "empty"
    if kind == "random":
        return make_random_bytes(folder / "noise.mp4"), "not a video"
    if kind == "truncated":  # index at the end, so half a file has none
        return make_truncated(make_video(folder / "whole.mp4", duration=4.0), folder / "cut.mp4"), "truncated"
    if kind == "truncated_faststart":  # index first: the header promises frames that are missing
        whole = make_video(folder / "whole_fs.mp4", duration=4.0, options={"movflags": "faststart"})
        return make_truncated(whole, folder / "cut_fs.mp4"), "truncated"
    if kind == "audio_only_wav":
        return make_audio_only(folder / "voice.wav"), "only audio"
    if kind == "audio_only_m4a":
        return make_audio_only(folder / "voice.m4a"), "only audio"
    if kind == "png":
        return make_png(folder / "still.png"), "still image"
    if kind == "folder":
        (p := folder / "clips.mp4").mkdir(exist_ok=True)
        return p, "folder"
    if kind == "missing":
        return folder / "nowhere.mp4", "not found"
    if kind == "oversized":
        return make_oversized_y4m(folder / "giant.y4m"), "too large"
    raise AssertionError(kind)


BROKEN = [
    "empty",
    "random",
    "truncated",
    "truncated_faststart",
    "audio_only_wav",
    "audio_only_m4a",
    "png",
    "folder",
    "missing",
    "oversized",
]


@pytest.mark.parametrize("kind", BROKEN)
def test_unusable_files_raise_media_error_naming_the_file(clips: Path, kind: str) -> None:
    path, words = _broken(kind, clips / "broken")
    with pytest.raises(MediaError) as caught:
        probe(path)
    message = str(caught.value)
    assert message.startswith(f"{path.name}: ")
    assert words in message
    assert isinstance(caught.value, VauraError)
    assert caught.value.path == path


@pytest.mark.parametrize("kind", BROKEN)
def test_every_entry_point_rejects_unusable_files(clips: Path, kind: str) -> None:
    path, _ = _broken(kind, clips / "broken")
    calls = [
        lambda: next(iter_model_frames(path)),
        lambda: frame_at(path, 0.5),
        lambda: read_audio_mono(path),
        lambda: ThumbnailCache(path).get(0.0),
    ]
    for call in calls:
        with pytest.raises(MediaError, match=path.name):
            call()


def test_iter_model_frames_rejects_before_iterating(clips: Path) -> None:
    path, _ = _broken("png", clips / "broken")
    with pytest.raises(MediaError):
        iter_model_frames(path)  # no next(): the check is eager, decoding is lazy


def test_single_frame_video_is_a_still_image(clips: Path) -> None:
    with pytest.raises(MediaError, match="still image"):
        probe(make_video(clips / "one.mp4", n_frames=1))


def test_corrupt_middle_is_skipped_or_reported(clips: Path) -> None:
    whole = make_video(clips / "noisy.mp4", duration=4.0, gop=10)
    data = bytearray(whole.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = np.random.default_rng(3).bytes(400)
    damaged = clips / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    try:
        frames = sum(len(c) for c in iter_model_frames(damaged))
    except MediaError as exc:  # refusing is fine; any other exception type is not
        message = str(exc)
    else:
        assert frames == 100  # damaged packets skipped, the timeline is complete
        return
    assert message.startswith(damaged.name)


# --- the clip's own audio -------------------------------------------------------------------


def _onset(samples: np.ndarray, rate: int) -> float:
    level = np.abs(samples)
    return float(np.argmax(level > 0.3 * level.max())) / rate


@pytest.mark.parametrize(
    ("video_start", "audio_start", "codec", "suffix"),
    [
        (0.0, 0.0, "aac", ".mp4"),
        (0.32, 0.0, "aac", ".mp4"),
        (0.0, 0.5, "aac", ".mp4"),
        (0.2, 0.0, "pcm_s16le", ".mov"),
    ],
)
def test_audio_is_aligned_to_first_video_frame(
    clips: Path, video_start: float, audio_start: float, codec: str, suffix: str
) -> None:
    beep = 1.25  # container clock
    spec = AudioSpec(codec=codec, start=audio_start, beeps=(beep,), duration=2.5)
    path = make_video(
        clips / f"beep_{video_start}_{audio_start}{suffix}", duration=3.0, start=video_start, audio=spec
    )
    info = probe(path)
    assert info.start_time == pytest.approx(video_start, abs=1e-3)
    expected = beep - info.start_time
    for rate in (None, 16000):
        samples, got_rate = read_audio_mono(path, rate)
        assert got_rate == (rate or 44100)
        assert samples.dtype == np.float32 and samples.ndim == 1
        assert len(samples) == round(info.duration * got_rate)
        assert _onset(samples, got_rate) == pytest.approx(expected, abs=1e-3)
        if audio_start > video_start:  # nothing before the audio begins
            lead = round((audio_start - video_start) * got_rate)
            assert not samples[: lead - 16].any()
    window, rate = read_audio_mono(path, 44100, start=expected - 0.2, end=expected + 0.3)
    assert len(window) == round(0.5 * rate)
    assert _onset(window, rate) == pytest.approx(0.2, abs=1e-3)


def test_stereo_is_averaged_to_mono(clips: Path) -> None:
    path = make_video(clips / "stereo.mov", duration=1.0, audio=AudioSpec(codec="pcm_s16le", beeps=(0.5,)))
    samples, _ = read_audio_mono(path)
    peak = np.abs(samples).max()
    assert peak == pytest.approx(0.8, abs=0.01)  # same signal in both channels: mean, not sum


def test_no_audio_gives_empty_result(clips: Path) -> None:
    path = make_video(clips / "mute.mp4", duration=1.0)
    samples, rate = read_audio_mono(path)
    assert samples.size == 0 and samples.dtype == np.float32 and rate == NO_AUDIO_RATE
    assert read_audio_mono(path, 16000)[1] == 16000


def test_missing_audio_track_is_reported(clips: Path) -> None:
    path = make_video(clips / "one_track.mp4", duration=1.0, audio=AudioSpec())
    with pytest.raises(MediaError, match="no audio track 1"):
        read_audio_mono(path, track=1)


def test_audio_envelope_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(1003).astype(np.float32)
    lows, highs = audio_envelope(signal, 100)
    assert len(lows) == len(highs) == 11
    for i in range(11):
        part = signal[i * 100 : (i + 1) * 100]
        assert lows[i] == part.min() and highs[i] == part.max()
    empty_low, empty_high = audio_envelope(np.zeros(0, np.float32), 64)
    assert empty_low.size == empty_high.size == 0
    with pytest.raises(ValueError, match="bucket"):
        audio_envelope(signal, 0)


def test_media_package_imports_no_gui_or_torch() -> None:
    code = (
        "import sys, vaura_core.media; "
        "bad = [m for m in ('torch', 'PySide6', 'pyqtgraph', 'sounddevice') if m in sys.modules]; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_text_file_is_not_a_video(tmp_path):
    from vaura_core.media import MediaError, probe

    notes = tmp_path / "notes.txt"
    notes.write_text("shot list\n" * 200)
    with pytest.raises(MediaError, match=r"notes\.txt: is a text file"):
        probe(notes)

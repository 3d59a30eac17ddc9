"""MP4/MOV export: packet-exact video copy and audio/video sync, measured on the decoded output."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vaura_core.errors import Cancelled, VauraError
from vaura_core.export import mux_video
from vaura_core.export.cut import PacketInfo, plan_cut
from vaura_core.export.mux import GENERATED_TITLE, ORIGINAL_TITLE, _movie_timescale

RATE = 44100
FPS = 25
TICKS_PER_FRAME = 512  # video time base 1/12800, the one FFmpeg picks for 25 fps MP4
SIZE = 32


@dataclass(frozen=True)
class FlashClip:
    path: Path
    flash_time: Fraction  # seconds from the first shown frame to the white frame
    duration: Fraction  # seconds of shown video


def make_flash_clip(
    path: Path,
    *,
    first_pts_s: Fraction = Fraction(0),
    bframes: int = 2,
    frames: int = 40,
    flash: int = 20,
    with_audio: bool = False,
    container: str | None = None,
) -> FlashClip:
    """Black H.264 frames with one white frame at index `flash` (counted from the first encoded frame).

    `first_pts_s` > 0 gives a clip that starts late (an empty edit in MP4); < 0 gives frames before
    time 0, which the MP4 edit list hides, so the first shown frame is the one at time 0.
    """
    time_base = Fraction(1, FPS * TICKS_PER_FRAME)
    first = round(first_pts_s / time_base)
    with av.open(str(path), "w", format=container) as media:
        video = media.add_stream(
            "libx264", rate=FPS, options={"bf": str(bframes), "g": "12", "preset": "veryfast"}
        )
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        video.time_base = time_base
        video.codec_context.time_base = time_base
        sound = media.add_stream("aac", rate=RATE, layout="mono") if with_audio else None
        for index in range(frames):
            rgb = np.full((SIZE, SIZE, 3), 255 if index == flash else 0, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = first + index * TICKS_PER_FRAME
            frame.time_base = time_base
            for packet in video.encode(frame):
                media.mux(packet)
        for packet in video.encode():
            media.mux(packet)
        if sound is not None:
            t = np.arange(round(frames / FPS * RATE)) / RATE
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate = RATE
            frame.pts = round(first_pts_s * RATE)
            for packet in [*sound.encode(frame), *sound.encode()]:
                media.mux(packet)
    hidden = max(0, -first // TICKS_PER_FRAME)  # frames before time 0
    return FlashClip(path, Fraction(flash - hidden, FPS), Fraction(frames - hidden, FPS))


def beep_track(clip: FlashClip, at: Fraction) -> tuple[np.ndarray, int]:
    """Audio for the clip with a short 2 kHz beep starting at `at` seconds; returns (audio, start sample)."""
    audio = np.zeros(round(clip.duration * RATE), dtype=np.float32)
    start = round(at * RATE)
    length = 220
    n = np.arange(length)
    audio[start : start + length] = 0.5 * np.sin(2 * np.pi * 2000 * n / RATE) * np.hanning(length)
    return audio, start


def video_packets(path: Path) -> tuple[Fraction, list[tuple[bytes, int, int | None, bool, bool]]]:
    with av.open(str(path)) as media:
        stream = media.streams.video[0]
        rows = [(bytes(p), p.pts, p.dts, p.is_keyframe, p.is_discard) for p in media.demux(stream) if p.size]
        return stream.time_base, rows


def shown_frames(path: Path) -> list[tuple[Fraction, bool]]:
    """(presentation time, is white) of every decoded video frame."""
    with av.open(str(path)) as media:
        return [
            (Fraction(f.pts) * f.time_base, f.to_ndarray(format="gray").mean() > 128)
            for f in media.decode(video=0)
        ]


def decoded_audio(path: Path, index: int = 0) -> tuple[Fraction, np.ndarray]:
    """(time of the first decoded sample, mono samples) of audio stream `index`, checked to be gapless."""
    with av.open(str(path)) as media:
        stream = media.streams.audio[index]
        start, chunks, expected = None, [], None
        for frame in media.decode(stream):
            when = Fraction(frame.pts) * frame.time_base
            if start is None:
                start = expected = when
            assert when == expected, "decoded audio frames are not contiguous"
            data = frame.to_ndarray()
            channels = len(frame.layout.channels)
            chunks.append(data[0] if frame.format.is_planar else data.reshape(-1, channels)[:, 0])
            expected += Fraction(frame.samples, frame.sample_rate)
    return start, np.concatenate(chunks).astype(np.float64)


def measure_sync(path: Path, beep: np.ndarray) -> tuple[Fraction, float]:
    """(flash time, beep time in samples), both measured from the output's first shown frame."""
    frames = shown_frames(path)
    first_shown = min(t for t, _ in frames)
    flash = [t for t, white in frames if white]
    assert len(flash) == 1
    audio_start, audio = decoded_audio(path)
    # The beep's position by cross-correlation with the known waveform: exact for PCM, and robust
    # to AAC's pre-echo, which moves the first loud sample but not the correlation peak.
    correlation = np.correlate(audio, beep, mode="valid")
    found = int(np.argmax(correlation))
    beep_samples = float((audio_start - first_shown) * RATE) + found
    return flash[0] - first_shown, beep_samples


def folder_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


CLIPS = {
    "no-bframes": {"bframes": 0},
    "bframes": {"bframes": 2},
    "late-start-1.6s": {"first_pts_s": Fraction(8, 5)},
    "edit-list-hides-5-frames": {"first_pts_s": Fraction(-5, FPS)},
}
TARGETS = [("mp4", "aac"), ("mov", "pcm_s24le"), ("mov", "pcm_s16le"), ("mov", "aac")]


@pytest.mark.parametrize(("suffix", "codec"), TARGETS)
@pytest.mark.parametrize("variant", list(CLIPS))
def test_beep_stays_on_flash(tmp_path: Path, variant: str, suffix: str, codec: str) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", **CLIPS[variant])
    audio, beep_at = beep_track(clip, clip.flash_time)
    out = tmp_path / f"out.{suffix}"
    result = mux_video(clip.path, out, audio, RATE, audio_codec=codec)

    flash, beep = measure_sync(out, audio[beep_at : beep_at + 220])
    assert flash == clip.flash_time  # the picture timeline is untouched
    # Measured with FFmpeg 8.1 (av 18.1): the error is 0 samples for PCM and for AAC.
    assert abs(beep - float(flash * RATE)) <= 1.0
    assert result.video_packets == len(video_packets(clip.path)[1])


def test_beep_stays_on_flash_from_matroska_source(tmp_path: Path) -> None:
    # Matroska stores no dts and uses a 1/1000 time base, which MP4 rescales to 1/16000.
    clip = make_flash_clip(tmp_path / "source.mkv", first_pts_s=Fraction(8, 5), container="matroska")
    audio, beep_at = beep_track(clip, clip.flash_time)
    out = tmp_path / "out.mp4"
    mux_video(clip.path, out, audio, RATE)
    flash, beep = measure_sync(out, audio[beep_at : beep_at + 220])
    assert flash == clip.flash_time
    assert abs(beep - float(flash * RATE)) <= 1.0
    source_tb, source_rows = video_packets(clip.path)
    out_tb, out_rows = video_packets(out)
    assert [row[0] for row in out_rows] == [row[0] for row in source_rows]
    assert [row[1] * out_tb for row in out_rows] == [row[1] * source_tb for row in source_rows]


def test_aac_decoded_content_matches(tmp_path: Path) -> None:
    """Beyond the peak position, the AAC track is the audio we gave, not a shifted or damaged copy."""
    clip = make_flash_clip(tmp_path / "source.mp4", first_pts_s=Fraction(8, 5))
    t = np.arange(round(clip.duration * RATE)) / RATE
    audio = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = tmp_path / "out.mp4"
    mux_video(clip.path, out, audio, RATE)
    start, decoded = decoded_audio(out)
    first_shown = min(t for t, _ in shown_frames(out))
    offset = int((first_shown - start) * RATE)  # AAC's priming plays before the first frame here
    body = decoded[offset : offset + audio.size]
    assert np.sqrt(np.mean((body[2048:-2048] - audio[2048:-2048]) ** 2)) < 0.01


@pytest.mark.parametrize("variant", list(CLIPS))
@pytest.mark.parametrize("suffix", ["mp4", "mov"])
def test_video_packets_copied_exactly(tmp_path: Path, variant: str, suffix: str) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", **CLIPS[variant])
    out = tmp_path / f"out.{suffix}"
    mux_video(clip.path, out, np.zeros(RATE, dtype=np.float32), RATE)
    source_tb, source_rows = video_packets(clip.path)
    out_tb, out_rows = video_packets(out)
    assert out_tb == source_tb
    assert out_rows == source_rows  # bytes, pts, dts, keyframe and discard flags


def test_fixture_has_bframes_and_edit_list(tmp_path: Path) -> None:
    """The clips really exercise what the sync tests claim to cover."""
    _, rows = video_packets(make_flash_clip(tmp_path / "b.mp4").path)
    assert any(pts != dts for _, pts, dts, _, _ in rows)  # reordered frames
    _, rows = video_packets(make_flash_clip(tmp_path / "e.mp4", first_pts_s=Fraction(-5, FPS)).path)
    assert sum(discard for *_, discard in rows) >= 5
    with av.open(str(make_flash_clip(tmp_path / "l.mp4", first_pts_s=Fraction(8, 5)).path)) as media:
        assert media.streams.video[0].start_time * media.streams.video[0].time_base == Fraction(8, 5)


def test_keep_original_audio_adds_second_track(tmp_path: Path) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", with_audio=True)
    audio, _ = beep_track(clip, clip.flash_time)
    out = tmp_path / "out.mp4"
    result = mux_video(clip.path, out, audio, RATE, keep_original_audio=True)
    assert result.original_audio_kept
    with av.open(str(out)) as media:
        generated, original = media.streams.audio
        assert generated.metadata.get("title", generated.metadata.get("handler_name")) == GENERATED_TITLE
        assert ORIGINAL_TITLE in (original.metadata.get("title"), original.metadata.get("handler_name"))
        assert generated.disposition & av.stream.Disposition.default
        assert not original.disposition & av.stream.Disposition.default
        copied = [bytes(p) for p in media.demux(original) if p.size]
    with av.open(str(clip.path)) as media:
        source = [bytes(p) for p in media.demux(media.streams.audio[0]) if p.size]
    assert copied == source


def test_without_keep_original_audio_only_generated_track(tmp_path: Path) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", with_audio=True)
    out = tmp_path / "out.mov"
    result = mux_video(clip.path, out, np.zeros(RATE, np.float32), RATE)
    assert not result.original_audio_kept
    with av.open(str(out)) as media:
        assert len(media.streams.audio) == 1
        assert media.streams.audio[0].codec_context.name == "pcm_s24le"


def test_range_export_starts_at_keyframe_and_keeps_sync(tmp_path: Path) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", frames=60, flash=30)
    audio, beep_at = beep_track(clip, clip.flash_time)
    out = tmp_path / "out.mov"
    result = mux_video(clip.path, out, audio, RATE, start=0.9, end=1.7)

    time_base, rows = video_packets(clip.path)
    keyframes = [pts * time_base for _, pts, _, key, _ in rows if key and pts * time_base <= Fraction(9, 10)]
    assert result.start == pytest.approx(float(max(keyframes)))
    assert result.start < 0.9 and result.end >= 1.7

    out_tb, out_rows = video_packets(out)
    assert out_tb == time_base
    cut = max(i for i, (_, pts, _, key, _) in enumerate(rows) if key and pts * time_base <= Fraction(9, 10))
    cut_pts = rows[cut][1]
    expected = [(b, pts - cut_pts, dts - cut_pts, key) for b, pts, dts, key, _ in rows[cut:]]
    assert [row[:4] for row in out_rows] == expected[: len(out_rows)]
    assert out_rows[0][3]  # starts on a keyframe
    wanted = [row for row in rows[cut:] if row[1] * time_base < Fraction(17, 10)]
    assert len(out_rows) >= len(wanted)

    flash, beep = measure_sync(out, audio[beep_at : beep_at + 220])
    assert flash == clip.flash_time - cut_pts * time_base
    assert abs(beep - float(flash * RATE)) <= 1.0
    shown = [t for t, _ in shown_frames(out)]
    last_shown = max(shown) - min(shown) + cut_pts * time_base  # in the source's timeline
    assert Fraction(17, 10) - Fraction(1, FPS) <= last_shown <= Fraction(17, 10) + Fraction(2, FPS)


def test_range_outside_video_is_refused(tmp_path: Path) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", frames=10, flash=3)
    with pytest.raises(VauraError, match=r"invalid export range"):
        mux_video(clip.path, tmp_path / "out.mp4", np.zeros(RATE, np.float32), RATE, start=5.0)


def test_cancel_leaves_existing_file(tmp_path: Path) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", frames=60, flash=3)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous export")
    cancel = threading.Event()
    calls: list[float] = []

    def on_progress(fraction: float) -> None:
        calls.append(fraction)
        cancel.set()  # the user presses Cancel as soon as the copy shows progress

    with pytest.raises(Cancelled, match=r"out\.mp4: export cancelled"):
        mux_video(clip.path, out, np.zeros(RATE * 3, np.float32), RATE, progress=on_progress, cancel=cancel)
    assert calls and calls[-1] < 1.0
    assert out.read_bytes() == b"previous export"
    assert folder_names(tmp_path) == ["out.mp4", "source.mp4"]


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vaura_core.export.mux as mux

    clip = make_flash_clip(tmp_path / "source.mp4", frames=20, flash=3)

    def broken(*args: object, **kwargs: object) -> None:
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(mux, "_copy_streams", broken)
    with pytest.raises(VauraError, match=r"out\.mov: could not write the MOV file"):
        mux_video(clip.path, tmp_path / "out.mov", np.zeros(RATE, np.float32), RATE)
    assert folder_names(tmp_path) == ["source.mp4"]


def test_progress_reaches_one(tmp_path: Path) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", frames=40, flash=3)
    seen: list[float] = []
    mux_video(clip.path, tmp_path / "o.mp4", np.zeros(RATE, np.float32), RATE, progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_stereo_audio(tmp_path: Path) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", frames=10, flash=3)
    stereo = np.zeros((RATE // 2, 2), np.float32)
    mux_video(clip.path, tmp_path / "o.mov", stereo, RATE, audio_codec="pcm_f32le")
    with av.open(str(tmp_path / "o.mov")) as media:
        assert len(media.streams.audio[0].layout.channels) == 2


def test_audio_longer_than_video_is_trimmed(tmp_path: Path) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", frames=25, flash=3)  # 1 s
    mux_video(
        clip.path, tmp_path / "o.mov", np.full(RATE * 3, 0.1, np.float32), RATE, audio_codec="pcm_s16le"
    )
    _, decoded = decoded_audio(tmp_path / "o.mov")
    assert decoded.size == RATE


@pytest.mark.parametrize(
    ("dest", "kwargs", "message"),
    [
        ("out.avi", {}, r"unsupported video file type '\.avi'"),
        ("out.mp4", {"audio_codec": "pcm_s16le"}, r"PCM audio in MP4"),
        ("out.mov", {"audio_codec": "mp3"}, r"unsupported audio codec 'mp3'"),
    ],
)
def test_bad_arguments(tmp_path: Path, dest: str, kwargs: dict[str, str], message: str) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", frames=5, flash=1)
    with pytest.raises(VauraError, match=message):
        mux_video(clip.path, tmp_path / dest, np.zeros(RATE, np.float32), RATE, **kwargs)


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(VauraError, match=r"missing\.mp4: the video file does not exist"):
        mux_video(tmp_path / "missing.mp4", tmp_path / "o.mp4", np.zeros(10, np.float32), RATE)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(VauraError, match=r"junk\.mp4: cannot read the video"):
        mux_video(junk, tmp_path / "o.mp4", np.zeros(10, np.float32), RATE)
    sound_only = tmp_path / "sound.m4a"
    with av.open(str(sound_only), "w", format="mp4") as media:
        stream = media.add_stream("aac", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode()]:
            media.mux(packet)
    with pytest.raises(VauraError, match=r"sound\.m4a: the file has no video stream"):
        mux_video(sound_only, tmp_path / "o.mp4", np.zeros(10, np.float32), RATE)
    assert not (tmp_path / "o.mp4").exists()


def test_video_codec_the_container_cannot_hold(tmp_path: Path) -> None:
    source = tmp_path / "source.webm"
    with av.open(str(source), "w") as media:
        stream = media.add_stream("libvpx", rate=FPS)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((SIZE, SIZE, 3), np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                media.mux(packet)
        for packet in stream.encode():
            media.mux(packet)
    with pytest.raises(VauraError, match=r"o\.mp4: could not write the MP4 file .*source codecs: video vp8"):
        mux_video(source, tmp_path / "o.mp4", np.zeros(RATE, np.float32), RATE)
    assert folder_names(tmp_path) == ["source.webm"]


def test_bad_audio(tmp_path: Path) -> None:
    clip = make_flash_clip(tmp_path / "source.mp4", frames=5, flash=1)
    with pytest.raises(VauraError, match="NaN"):
        mux_video(clip.path, tmp_path / "o.mp4", np.full(100, np.nan, np.float32), RATE)
    with pytest.raises(VauraError, match="mono or stereo"):
        mux_video(clip.path, tmp_path / "o.mp4", np.zeros((100, 3), np.float32), RATE)


def test_movie_timescale_is_exact_for_every_track() -> None:
    assert _movie_timescale(12800, 44100) == 5644800
    assert _movie_timescale(90000, 48000, 44100) == 35280000
    # Too large for the 32-bit field: fall back to the generated audio's rate.
    assert _movie_timescale(1_000_003, 999_983, 44100) == 44100


def _packets(rows: list[tuple[int, bool]], *, duration: int = 1, discard_below: int = 0) -> list[PacketInfo]:
    """Packets in decode order from (pts, keyframe) pairs; pts under `discard_below` are edit-list hidden."""
    return [PacketInfo(pts, duration, key, pts < discard_below) for pts, key in rows]


def test_cut_drops_open_gop_leading_pictures() -> None:
    # Decode order of an open GOP: I(4) is followed by B(2), B(3), which reference the previous GOP.
    rows = [(0, True), (1, False), (4, True), (2, False), (3, False), (5, False), (8, True), (6, False)]
    plan = plan_cut(_packets(rows), Fraction(1), 4.5, 6.0)
    kept = [i for i, (pts, _) in enumerate(rows) if plan.keeps(i, pts)]
    assert kept == [2, 5]  # I(4) and P(5); B(2), B(3) cannot be decoded without the previous GOP
    assert (plan.shift, plan.start, plan.end) == (4, Fraction(4), Fraction(6))


def test_cut_keeps_references_shown_after_the_end() -> None:
    # Decode order with B-frames: P(3) comes before B(1), B(2) that need it.
    rows = [(0, True), (3, False), (1, False), (2, False), (6, False), (4, False), (5, False)]
    plan = plan_cut(_packets(rows), Fraction(1, 10), 0.0, 0.25)
    kept = [i for i, (pts, _) in enumerate(rows) if plan.keeps(i, pts)]
    assert kept == [0, 1, 2, 3]
    assert plan.end == Fraction(4, 10)  # P(3) is shown until 0.4 s: honest about the overrun
    assert plan.shift == 0


def test_cut_whole_clip_and_edit_list_origin() -> None:
    rows = [(-2, True), (-1, False), (0, False), (1, False)]
    plan = plan_cut(_packets(rows, duration=0, discard_below=0), Fraction(1, 25), None, None)
    assert plan.whole and plan.origin == 0 and plan.shift == 0
    assert plan.end == Fraction(2, 25)  # frame duration guessed from the pts steps when the file gave none
    # A range starting in the first GOP keeps the hidden lead-in, exactly like a whole-clip copy.
    ranged = plan_cut(_packets(rows, discard_below=0), Fraction(1, 25), 0.0, 0.04)
    assert (ranged.first_index, ranged.shift, ranged.start) == (0, 0, 0)


@pytest.mark.parametrize(("start", "end"), [(-0.1, None), (0.5, 0.2), (4.0, None), (0.0, 0.0)])
def test_cut_rejects_ranges_outside_the_video(start: float | None, end: float | None) -> None:
    with pytest.raises(ValueError, match="invalid export range"):
        plan_cut(_packets([(0, True), (1, False), (2, False)]), Fraction(1), start, end)

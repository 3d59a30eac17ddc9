"""Small synthetic media files for tests, written with PyAV (no ffmpeg binary needed).

Pictures carry their frame index as a colour (`index_colour` / `read_index`), so a test can tell
which source frame ended up in an output picture even after scaling, cropping and lossy coding.
216 codes are available; longer clips repeat them (index modulo 216).

    make_video(tmp_path / "a.mp4", fps=Fraction(24000, 1001), duration=2.0)
    make_video(path, times=[0, 0.05, 0.07, ...])              # variable frame rate
    make_video(path, rotation=90, pattern="marker")           # display matrix side data
    make_video(path, audio=AudioSpec(beeps=(1.0,)))           # AAC track with a beep
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer

# Six well separated levels per channel survive YUV 4:2:0, x264 and swscale with room to spare.
LEVELS = (24, 64, 104, 144, 184, 224)
CODES = len(LEVELS) ** 3  # 216
VFR_TICKS = Fraction(1, 90000)


def index_colour(index: int) -> tuple[int, int, int]:
    i = index % CODES
    return LEVELS[i // 36], LEVELS[(i // 6) % 6], LEVELS[i % 6]


def read_index(picture: np.ndarray) -> int:
    """The code painted by `frame_picture`, read from the middle of an RGB picture (any size)."""
    h, w = picture.shape[:2]
    centre = picture[h // 3 : max(h // 3 + 1, 2 * h // 3), w // 3 : max(w // 3 + 1, 2 * w // 3)]
    mean = centre.reshape(-1, 3).mean(axis=0)
    digits = [int(np.argmin([abs(m - level) for level in LEVELS])) for m in mean]
    return digits[0] * 36 + digits[1] * 6 + digits[2]


def frame_picture(index: int, width: int, height: int, pattern: str = "index") -> np.ndarray:
    """RGB picture for source frame `index`.

    "index": the index colour everywhere. "marker": the same with a white block on the top-left
    quarter (a quarter of each side), which shows where the stored top-left corner is displayed.
    """
    picture = np.empty((height, width, 3), np.uint8)
    picture[:] = index_colour(index)
    if pattern == "marker":
        picture[: max(1, height // 4), : max(1, width // 4)] = 255
    elif pattern != "index":
        raise ValueError(f"unknown pattern {pattern!r}")
    return picture


@dataclass(frozen=True)
class AudioSpec:
    """An audio track: silence with short sine beeps at given container times."""

    sample_rate: int = 44100
    channels: int = 2
    codec: str = "aac"
    start: float = 0.0  # container time of the first sample
    duration: float | None = None  # default: as long as the video
    beeps: Sequence[float] = ()  # container times where beeps begin
    beep_length: float = 0.01
    frequency: float = 1000.0
    amplitude: float = 0.8

    def samples(self, duration: float) -> np.ndarray:
        n = round(duration * self.sample_rate)
        signal = np.zeros((self.channels, n), np.float32)
        burst_n = round(self.beep_length * self.sample_rate)
        burst = self.amplitude * np.sin(2 * np.pi * self.frequency * np.arange(burst_n) / self.sample_rate)
        for at in self.beeps:
            first = round((at - self.start) * self.sample_rate)
            signal[:, first : first + burst_n] = burst[: max(0, n - first)]
        return signal


def make_video(
    path: str | os.PathLike[str],
    *,
    fps: float | Fraction = 25,
    duration: float | None = None,
    n_frames: int | None = None,
    times: Sequence[float] | None = None,
    size: tuple[int, int] = (64, 48),
    start: float = 0.0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: float | None = None,
    pattern: str = "index",
    audio: AudioSpec | None = None,
    b_frames: int = 0,
    gop: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Write a clip whose frame i shows `frame_picture(i)`; returns the path.

    Timing: `times` (seconds, any spacing: variable frame rate) or `n_frames` / `duration` at
    `fps`; `start` shifts every timestamp (a first frame that is not at 0). `rotation` writes a
    display matrix (counter-clockwise degrees, as ffprobe and `VideoFrame.rotation` report it).
    `options` go to the muxer, e.g. {"movflags": "faststart"}.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(100000)
    if times is None:
        if n_frames is None:
            if duration is None:
                raise ValueError("give times, n_frames or duration")
            n_frames = max(1, round(duration * rate))
        tick = 1 / rate
        pts = [round(start / tick) + i for i in range(n_frames)]
    else:
        tick = VFR_TICKS
        pts = [round((start + t) / tick) for t in times]
    width, height = size
    with av.open(str(path), "w", options=options or {}) as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = tick
        if codec == "libx264":
            video.options = {"preset": "ultrafast" if not b_frames else "veryfast", "crf": "18"}
            video.codec_context.max_b_frames = b_frames
        if gop is not None:
            video.codec_context.gop_size = gop
        if rotation is not None:
            video.set_display_rotation(rotation)
        audio_stream = None
        if audio is not None:
            layout = "mono" if audio.channels == 1 else "stereo"
            audio_stream = container.add_stream(audio.codec, rate=audio.sample_rate, layout=layout)
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(frame_picture(i, width, height, pattern), format="rgb24")
            frame.pts, frame.time_base = p, tick
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio is not None and audio_stream is not None:
            # The last frame lasts one frame period (1/25 s for explicit times).
            last = 1 / rate if times is None else Fraction(1, 25)
            video_span = float((pts[-1] - pts[0]) * tick + last)
            _encode_audio(container, audio_stream, audio, audio.duration or video_span)
    return path


def _encode_audio(container: OutputContainer, stream: AudioStream, spec: AudioSpec, duration: float) -> None:
    signal = spec.samples(duration)
    # Packed s16 suits PCM encoders, planar float suits AAC; the encoder converts from either.
    fmt = "fltp" if spec.codec == "aac" else "s16"
    data = signal if fmt == "fltp" else (signal.T.reshape(1, -1) * 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono" if spec.channels == 1 else "stereo")
    frame.sample_rate = spec.sample_rate
    frame.pts, frame.time_base = round(spec.start * spec.sample_rate), Fraction(1, spec.sample_rate)
    container.mux(stream.encode(frame))
    container.mux(stream.encode())


def make_audio_only(path: str | os.PathLike[str], duration: float = 1.0, sample_rate: int = 8000) -> Path:
    path = Path(path)
    codec = "pcm_s16le" if path.suffix == ".wav" else "aac"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout="mono")
        _encode_audio(container, stream, AudioSpec(sample_rate, 1, codec, beeps=(0.1,)), duration)
    return path


def make_png(path: str | os.PathLike[str], size: tuple[int, int] = (32, 24)) -> Path:
    path = Path(path)
    width, height = size
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        frame = av.VideoFrame.from_ndarray(frame_picture(0, width, height), format="rgb24")
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def make_truncated(source: str | os.PathLike[str], dest: str | os.PathLike[str], keep: float = 0.5) -> Path:
    data = Path(source).read_bytes()
    dest = Path(dest)
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest


def make_random_bytes(path: str | os.PathLike[str], n: int = 8192, seed: int = 0) -> Path:
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).bytes(n))
    return path


def make_oversized_y4m(path: str | os.PathLike[str], width: int = 17000, height: int = 16) -> Path:
    """A YUV4MPEG header declaring a huge frame, followed by a few bytes (no real picture)."""
    path = Path(path)
    header = f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\nFRAME\n".encode()
    path.write_bytes(header + bytes(1024))
    return path

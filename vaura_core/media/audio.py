"""The clip's own audio as mono float, on the video's clock, and min/max envelopes for drawing it."""

from __future__ import annotations

import contextlib
import os
from typing import cast

import av.error
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

from vaura_core.media.errors import MediaError
from vaura_core.media.probe import ClipInfo, as_clip
from vaura_core.media.source import decode_frames, open_container

NO_AUDIO_RATE = 44100  # rate reported with the empty result of a clip without audio
# Jumps in audio timestamps larger than this are real gaps (dropped audio) and are kept as
# silence, so later sound stays in sync; smaller ones are timestamp rounding.
_GAP_TOLERANCE = 0.010
# Decoding starts this long before the wanted range when it seeks (audio seeking is coarse).
_SEEK_MARGIN = 0.5


def read_audio_mono(
    path: str | os.PathLike[str] | ClipInfo,
    sample_rate: int | None = None,
    track: int = 0,
    start: float = 0.0,
    end: float | None = None,
) -> tuple[np.ndarray, int]:
    """Audio track `track` of the clip as mono float32 samples and their sample rate.

    Sample 0 is the instant of the first video frame plus `start`; the result covers
    [start, end) seconds (`end` defaults to the video's duration), so it always holds
    round((end - start) x rate) samples: audio that starts later than the video is preceded
    by silence, audio that starts earlier is cut, and a track shorter than the range ends in
    silence. Channels are averaged. `sample_rate` resamples (swresample); None keeps the
    track's rate. A clip without audio gives an empty array (and `NO_AUDIO_RATE` unless a rate
    was asked for); `ClipInfo.audio_tracks` tells the two cases apart.
    """
    clip = as_clip(path)
    end = clip.duration if end is None else end
    if start < 0 or end < start:
        raise ValueError(f"invalid time range [{start}, {end})")
    if not clip.audio_tracks:
        return np.zeros(0, np.float32), sample_rate or NO_AUDIO_RATE
    if not 0 <= track < len(clip.audio_tracks):
        raise MediaError(clip.path, f"has no audio track {track} (it has {len(clip.audio_tracks)})")
    info = clip.audio_tracks[track]
    rate = sample_rate or info.sample_rate
    if rate <= 0:
        raise MediaError(clip.path, f"audio track {track} has no sample rate")
    out = np.zeros(round((end - start) * rate), np.float32)
    if out.size:
        _decode_into(clip, info.index, rate, start, out)
    return out, rate


def _decode_into(clip: ClipInfo, stream_index: int, rate: int, start: float, out: np.ndarray) -> None:
    with open_container(clip.path) as container:
        stream = container.streams[stream_index]
        if stream.codec_context is None:
            raise MediaError(clip.path, "the audio uses a codec this application cannot decode")
        origin = clip.start_time + start  # container time of out[0]
        if start > _SEEK_MARGIN and stream.time_base:
            # Unseekable files are decoded from the beginning instead.
            with contextlib.suppress(av.error.FFmpegError):
                container.seek(int((origin - _SEEK_MARGIN) / stream.time_base), stream=stream)
        resampler = AudioResampler(format="fltp", rate=rate)
        position: int | None = None  # index in `out` of the next resampled sample
        expected: float | None = None  # container time the next input frame should start at
        try:
            for decoded in decode_frames(container, stream, clip.path):
                frame = cast(AudioFrame, decoded)
                jumped = expected is None or (
                    frame.time is not None and abs(frame.time - expected) > _GAP_TOLERANCE
                )
                if frame.time is not None and jumped:
                    # First frame, or a real gap/overlap: place by timestamp.
                    position = round((frame.time - origin) * rate)
                elif position is None:
                    position = 0
                if frame.sample_rate:
                    expected = (frame.time if frame.time is not None else expected or 0.0) + (
                        frame.samples / frame.sample_rate
                    )
                position = _write(out, position, resampler.resample(frame))
                if position >= out.size:
                    return
            if position is not None:
                _write(out, position, resampler.resample(None))
        except (av.error.FFmpegError, ValueError) as exc:
            # ValueError: the resampler refuses a mid-stream format change it cannot follow.
            raise MediaError(clip.path, f"the audio cannot be decoded ({exc})") from None


def _write(out: np.ndarray, position: int, frames: list[AudioFrame]) -> int:
    """Average channels of `frames` into `out` at `position`; returns the position after them."""
    for frame in frames:
        samples = frame.to_ndarray()  # planar float: (channels, n)
        mono = samples.mean(axis=0) if samples.shape[0] > 1 else samples[0]
        lo, hi = max(position, 0), min(position + mono.size, out.size)
        if hi > lo:
            out[lo:hi] = mono[lo - position : hi - position]
        position += mono.size
    return position


def audio_envelope(samples: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bucket minimum and maximum of a 1-D signal, for drawing a waveform at low zoom.

    Bucket i covers samples [i x bucket, (i + 1) x bucket); the last one may be shorter.
    """
    if bucket < 1:
        raise ValueError("bucket must be at least 1 sample")
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D signal, got shape {x.shape}")
    if x.size == 0:
        return x.copy(), x.copy()
    starts = np.arange(0, x.size, bucket)
    return np.minimum.reduceat(x, starts), np.maximum.reduceat(x, starts)

"""Put generated audio next to the original video in an MP4 or MOV file, without re-encoding the video.

The video stream is copied packet for packet (bytes, timestamps, keyframe flags, time base and
side data such as rotation). The generated audio is encoded as a new stream whose sample 0 is
presented together with the first video frame that is shown, whatever the source's start time,
B-frame delay or edit list.

Sync relies on three measured facts about FFmpeg's MP4/MOV muxer (FFmpeg 8.1 in av 18.1):
- A stream that starts later than 0 gets an empty edit, whose length is stored in the movie
  time scale, by default 1/1000 s: that rounds the audio's start by up to 1 ms (34 samples
  measured with a clip starting at 1.6 s). We set `movie_timescale` to a multiple of every
  track's time scale, which makes the edits exact.
- AAC's 1024 priming samples come out of the encoder as a packet at pts -1024. At a zero start
  the muxer hides them with the edit list; at a later start they sit in the empty time before
  the first sample. In both cases decoding puts sample 0 exactly at its timestamp.
- Packets hidden by a source edit list (pts before the first shown frame) carry the discard
  flag when demuxed; the first shown frame is the earliest one without it.

For a range export see `cut.py`: the output starts at the keyframe at or before the requested
start, and the audio starts there too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vaura_core.export.atomic import atomic_write_path
from vaura_core.export.cut import CutPlan, PacketInfo, plan_cut
from vaura_core.export.errors import ExportError
from vaura_core.export.samples import as_frames
from vaura_core.export.tasks import CancelToken, ProgressCallback, check_cancelled, report_progress

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
AUDIO_CODECS = ("aac", "pcm_s16le", "pcm_s24le", "pcm_f32le")
DEFAULT_AUDIO_CODEC = {"mp4": "aac", "mov": "pcm_s24le"}
GENERATED_TITLE = "VAURA generated audio"
ORIGINAL_TITLE = "Original audio"

_AAC_BITRATE_PER_CHANNEL = 160_000
_ENCODE_CHUNK = 1024 * 48  # about one second per encoder call, so cancel stays responsive
_MAX_TIMESCALE = 2**31 - 1  # the MP4 header field is 32-bit
_LAYOUTS = {1: "mono", 2: "stereo"}


@dataclass(frozen=True)
class MuxResult:
    path: Path
    container: str
    audio_codec: str
    video_packets: int
    start: float  # seconds after the source's first frame where the output begins
    end: float  # seconds after the source's first frame where the output ends
    original_audio_kept: bool


def mux_video(
    source_video: str | Path,
    dest: str | Path,
    audio: np.ndarray,
    sample_rate: int,
    *,
    container: str | None = None,
    audio_codec: str | None = None,
    keep_original_audio: bool = False,
    start: float | None = None,
    end: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> MuxResult:
    """Write `dest`: the source's video stream copied unchanged plus `audio` as a new audio track.

    `audio` ((frames,) or (frames, channels), float in [-1, 1], at most 2 channels) starts at the
    source's first shown video frame. `container` ("mp4" or "mov") defaults from the suffix of
    `dest`; `audio_codec` defaults to AAC for MP4 and 24-bit PCM for MOV (PCM is only offered in
    MOV, where players and editors expect it). `keep_original_audio` adds the source's first
    audio track, copied, as a second, non-default track. `start`/`end` (seconds after the first
    frame) export a range, which starts at the keyframe at or before `start`; `MuxResult.start`
    and `.end` say what was written. Audio beyond the video's end is left out. The file appears
    atomically; a set `cancel` token stops it with `Cancelled` and leaves any existing `dest` alone.
    """
    source_video, dest = Path(source_video), Path(dest)
    container = _container_for(dest, container)
    audio_codec = _codec_for(dest, container, audio_codec)
    frames = as_frames(audio, sample_rate, dest)
    if frames.shape[1] not in _LAYOUTS:
        raise ExportError(
            f"{dest}: the video export takes mono or stereo audio, not {frames.shape[1]} channels"
        )

    packets, video_time_base = _scan_video(source_video)
    try:
        plan = plan_cut(packets, video_time_base, start, end)
    except ValueError as error:
        raise ExportError(f"{source_video}: {error}") from error
    first_sample = round(plan.start * sample_rate)
    last_sample = min(frames.shape[0], round(plan.end * sample_rate))
    if last_sample <= first_sample:
        raise ExportError(f"{dest}: the audio ends before the exported part of the video begins")

    check_cancelled(cancel, dest)
    with atomic_write_path(dest) as temp:
        written, kept = _write(
            source_video,
            temp,
            dest,
            container,
            audio_codec,
            frames[first_sample:last_sample],
            sample_rate,
            plan,
            keep_original_audio,
            progress,
            cancel,
        )
    report_progress(progress, 1.0)
    return MuxResult(dest, container, audio_codec, written, float(plan.start), float(plan.end), kept)


def _container_for(dest: Path, container: str | None) -> str:
    if container is None:
        container = CONTAINERS.get(dest.suffix.lower())
        if container is None:
            raise ExportError(f"{dest}: unsupported video file type {dest.suffix!r} (use .mp4 or .mov)")
    if container not in ("mp4", "mov"):
        raise ExportError(f"{dest}: unsupported container {container!r} (use mp4 or mov)")
    return container


def _codec_for(dest: Path, container: str, codec: str | None) -> str:
    codec = codec or DEFAULT_AUDIO_CODEC[container]
    if codec not in AUDIO_CODECS:
        raise ExportError(f"{dest}: unsupported audio codec {codec!r} (use one of {', '.join(AUDIO_CODECS)})")
    if container == "mp4" and codec != "aac":
        raise ExportError(f"{dest}: PCM audio in MP4 is not widely playable; use AAC or a .mov file")
    return codec


def _open_source(source: Path) -> av.container.InputContainer:
    if not source.is_file():
        raise ExportError(f"{source}: the video file does not exist")
    try:
        return av.open(str(source))
    except (av.FFmpegError, OSError) as error:
        raise ExportError(f"{source}: cannot read the video ({error})") from error


def _scan_video(source: Path) -> tuple[list[PacketInfo], Fraction]:
    """Read (not decode) every packet of the video stream: timestamps, sizes and flags only."""
    with _open_source(source) as media:
        if not media.streams.video:
            raise ExportError(f"{source}: the file has no video stream")
        stream = media.streams.video[0]
        packets = []
        try:
            for packet in media.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker, not data
                    continue
                if packet.pts is None:
                    raise ExportError(
                        f"{source}: the video has no timestamps (a raw stream?); put it in MP4 or MKV first"
                    )
                packets.append(
                    PacketInfo(packet.pts, packet.duration or 0, packet.is_keyframe, packet.is_discard)
                )
        except av.FFmpegError as error:
            raise ExportError(f"{source}: the video is damaged ({error})") from error
        if not packets:
            raise ExportError(f"{source}: the video stream is empty")
        return packets, stream.time_base


def _movie_timescale(*time_scales: int) -> int:
    """A movie time scale in which every track's edit list start is exact (see the module docstring)."""
    scale = math.lcm(*time_scales)
    # Failing that, the audio rate alone still keeps the audio exact and the video within a sample.
    return scale if scale <= _MAX_TIMESCALE else time_scales[-1]


def _encoded_audio(
    stream: av.AudioStream, audio: np.ndarray, rate: int, first_pts: int
) -> Iterator[av.Packet]:
    """Encode `audio` (frames, channels) with sample 0 at `first_pts` (1/rate units), chunk by chunk."""
    layout = _LAYOUTS[audio.shape[1]]
    for begin in range(0, audio.shape[0], _ENCODE_CHUNK):
        planar = np.ascontiguousarray(audio[begin : begin + _ENCODE_CHUNK].T)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        frame.pts = first_pts + begin
        yield from stream.encode(frame)
    yield from stream.encode(None)


def _packet_seconds(packet: av.Packet) -> Fraction:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return Fraction(stamp or 0) * packet.time_base


def _write(
    source: Path,
    temp: Path,
    dest: Path,
    container: str,
    codec: str,
    audio: np.ndarray,
    rate: int,
    plan: CutPlan,
    keep_original_audio: bool,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> tuple[int, bool]:
    """Copy and encode into `temp`; returns (video packets written, original audio kept)."""
    with _open_source(source) as media:
        video_in = media.streams.video[0]
        audio_in = media.streams.audio[0] if keep_original_audio and media.streams.audio else None
        scales = [video_in.time_base.denominator, rate]
        if audio_in is not None:
            scales.insert(1, audio_in.time_base.denominator)
        options = {"movie_timescale": str(_movie_timescale(*scales))}
        try:
            with av.open(str(temp), "w", format=container, options=options) as out:
                return _copy_streams(
                    media, out, video_in, audio_in, codec, audio, rate, plan, dest, progress, cancel
                )
        except (av.FFmpegError, OSError, ValueError) as error:
            # ValueError: PyAV refusing a codec the container cannot hold, before FFmpeg is asked.
            reason = getattr(error, "strerror", None) or str(error)
            codecs = f"video {video_in.codec_context.name}"
            if audio_in is not None:
                codecs += f", original audio {audio_in.codec_context.name}"
            raise ExportError(
                f"{dest}: could not write the {container.upper()} file ({reason}); source codecs: {codecs}"
            ) from error


def _add_output_streams(
    media: av.container.InputContainer,
    out: av.container.OutputContainer,
    video_in: av.VideoStream,
    audio_in: av.AudioStream | None,
    codec: str,
    channels: int,
    rate: int,
) -> tuple[av.VideoStream, av.AudioStream, av.AudioStream | None]:
    """The copied video, the generated audio (the default track) and, if asked, the copied original."""
    video_out = out.add_stream_from_template(video_in)
    if "language" in video_in.metadata:
        video_out.metadata["language"] = video_in.metadata["language"]
    if "creation_time" in media.metadata:
        out.metadata["creation_time"] = media.metadata["creation_time"]

    # The encoder picks the audio time base (1/rate); forcing one breaks AAC durations (PyAV#1182).
    generated = out.add_stream(codec, rate=rate, layout=_LAYOUTS[channels])
    if codec == "aac":
        generated.bit_rate = _AAC_BITRATE_PER_CHANNEL * channels
    generated.metadata["title"] = GENERATED_TITLE
    generated.metadata["handler_name"] = GENERATED_TITLE
    generated.disposition = av.stream.Disposition.default

    original = None
    if audio_in is not None:
        original = out.add_stream_from_template(audio_in)
        original.metadata["title"] = ORIGINAL_TITLE
        original.metadata["handler_name"] = ORIGINAL_TITLE
        if "language" in audio_in.metadata:
            original.metadata["language"] = audio_in.metadata["language"]
        original.disposition = av.stream.Disposition(0)
    return video_out, generated, original


def _copy_streams(
    media: av.container.InputContainer,
    out: av.container.OutputContainer,
    video_in: av.VideoStream,
    audio_in: av.AudioStream | None,
    codec: str,
    audio: np.ndarray,
    rate: int,
    plan: CutPlan,
    dest: Path,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> tuple[int, bool]:
    video_out, generated, original = _add_output_streams(
        media, out, video_in, audio_in, codec, audio.shape[1], rate
    )

    # The cut moves to the source's first shown frame; sample 0 is presented exactly there.
    origin_seconds = Fraction(plan.origin) * video_in.time_base
    pending_audio = _encoded_audio(generated, audio, rate, round(origin_seconds * rate))
    next_audio = next(pending_audio, None)
    shift_seconds = Fraction(plan.shift) * video_in.time_base
    window = (origin_seconds + plan.start, origin_seconds + plan.end)  # in the source's timeline

    total = plan.last_index - plan.first_index + 1
    video_index = -1
    written = 0
    streams = [video_in] if audio_in is None else [video_in, audio_in]
    for packet in media.demux(streams):
        if packet.size == 0:
            continue
        if packet.stream is video_in:
            video_index += 1
            if not plan.keeps(video_index, packet.pts):
                if video_index > plan.last_index and audio_in is None:
                    break
                continue
            target = video_out
        else:
            if not (plan.whole or _overlaps(packet, window)):
                continue
            target = original
        _shift(packet, shift_seconds)
        # Interleave: everything of the generated track that plays before this packet goes first.
        while next_audio is not None and _packet_seconds(next_audio) <= _packet_seconds(packet):
            out.mux(next_audio)
            next_audio = next(pending_audio, None)
        packet.stream = target
        out.mux(packet)
        if target is video_out:
            written += 1
            if written % 16 == 0:
                check_cancelled(cancel, dest)
                report_progress(progress, 0.98 * written / total)
    while next_audio is not None:
        out.mux(next_audio)
        next_audio = next(pending_audio, None)
    check_cancelled(cancel, dest)
    return written, original is not None


def _overlaps(packet: av.Packet, window: tuple[Fraction, Fraction]) -> bool:
    """Whether an original-audio packet plays during the exported window (source timeline)."""
    if packet.pts is None:
        return False
    begin = Fraction(packet.pts) * packet.time_base
    finish = begin + Fraction(packet.duration or 0) * packet.time_base
    return finish > window[0] and begin < window[1]


def _shift(packet: av.Packet, seconds: Fraction) -> None:
    """Move a packet earlier by `seconds` (exact for video; rounded to a tick for other streams)."""
    if seconds == 0:
        return
    ticks = round(seconds / packet.time_base)
    if packet.pts is not None:
        packet.pts -= ticks
    if packet.dts is not None:
        packet.dts -= ticks

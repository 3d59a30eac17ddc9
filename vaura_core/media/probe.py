"""What a clip is: container, codecs, timing, size, orientation and audio tracks.

`probe` reads the container header, decodes the first video frame (proof that the video can be
decoded, and the carrier of the display matrix) and demuxes, without decoding, a few seconds of
packets for the frame-rate check. When the header has no video duration it demuxes the tail of
the file. It never decodes the whole clip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import statistics
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av.error
from av.container import InputContainer
from av.packet import Packet
from av.sidedata.sidedata import Type as SideDataType
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from vaura_core.media.errors import MediaError
from vaura_core.media.geometry import IDENTITY, Orientation, display_size, parse_display_matrix
from vaura_core.media.source import (
    check_frame_size,
    check_path,
    find_video_stream,
    open_container,
)

_HEAD_PACKETS = 240  # packets looked at for the frame-rate check (about 10 s at 24 fps)
_FIRST_FRAME_PACKETS = 600  # give up on a stream that yields no picture after this many packets
_VFR_RELATIVE_TOLERANCE = 0.005


@dataclass(frozen=True)
class AudioTrackInfo:
    """One audio stream of the clip."""

    index: int  # stream index in the container
    codec: str
    sample_rate: int
    channels: int
    duration: float | None  # seconds, when the container says
    start_time: float | None  # seconds, in the container's clock
    language: str | None = None


@dataclass(frozen=True)
class ClipInfo:
    """Everything the app needs to know about a clip before decoding it.

    Times are seconds. `start_time` is the presentation time of the first video frame in the
    container's clock; every other time in this package (`duration`, `iter_model_frames`,
    `frame_at`, `read_audio_mono`) is measured from that frame, so 0.0 is always the first picture.
    """

    path: Path
    size_bytes: int
    container: str  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    bit_rate: int | None  # bits per second of the whole file
    video_stream: int  # stream index of the video in the container
    video_codec: str
    pixel_format: str | None
    width: int  # stored (coded) picture size
    height: int
    sample_aspect_ratio: Fraction
    rotation: int  # counter-clockwise degrees as ffprobe reports them (-90: portrait phone clip)
    mirrored: bool
    orientation: Orientation  # how pictures are turned for display (rotation and mirroring)
    display_width: int  # what a player shows, after aspect ratio and rotation
    display_height: int
    start_time: float
    start_pts: int  # the same instant in `time_base` ticks
    time_base: Fraction
    duration: float  # from the first frame's time to the end of the last frame
    frame_rate: float  # average frames per second
    variable_frame_rate: bool
    frame_count: int  # exact where the container counts frames, else duration x rate
    audio_tracks: tuple[AudioTrackInfo, ...] = field(default_factory=tuple)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_tracks)

    @property
    def aspect_ratio(self) -> float:
        return self.display_width / self.display_height


def as_clip(source: str | os.PathLike[str] | ClipInfo) -> ClipInfo:
    """`source` itself if it is already probed, else `probe(source)`."""
    return source if isinstance(source, ClipInfo) else probe(source)


def probe(path: str | os.PathLike[str]) -> ClipInfo:
    """Describe the clip at `path`, or raise `MediaError` if it is not a usable video."""
    p = check_path(path)
    size_bytes = p.stat().st_size
    with open_container(p) as container:
        try:
            return _probe_open(p, size_bytes, container)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            # Anything PyAV refuses past the header (seeking in garbage, ...) is damage.
            reason = getattr(exc, "strerror", None) or exc
            raise MediaError(p, f"the file is truncated or corrupt ({reason})") from None


def _probe_open(path: Path, size_bytes: int, container: InputContainer) -> ClipInfo:
    stream = find_video_stream(container, path)
    time_base = stream.time_base or Fraction(1, 90000)
    head = _scan_head(container, stream, path)
    first = head.first_frame
    check_frame_size(path, first.width, first.height)
    if first.width < 1 or first.height < 1:
        raise MediaError(path, "the file is corrupt (its video frames have no size)")
    if head.reached_end and head.packet_count == 1:
        raise MediaError(path, "is a still image, not a video (it has a single frame)")

    start_pts = first.pts if first.pts is not None else (stream.start_time or 0)
    start_time = float(start_pts * time_base)
    intervals = _frame_intervals(head.packet_pts)
    frame_rate = _frame_rate(stream, intervals, time_base)
    end_pts = _end_pts(container, stream, head, int(start_pts), frame_rate, path)
    duration = float((end_pts - start_pts) * time_base)
    if duration <= 0:
        duration = 1.0 / frame_rate
    frame_count = stream.frames if stream.frames > 0 else max(1, round(duration * frame_rate))

    orientation, rotation, mirrored = _orientation(first)
    sar = stream.sample_aspect_ratio or Fraction(1)
    disp_w, disp_h = display_size(first.width, first.height, sar, orientation)
    return ClipInfo(
        path=path,
        size_bytes=size_bytes,
        container=container.format.name,
        bit_rate=container.bit_rate or None,
        video_stream=stream.index,
        video_codec=stream.codec_context.name,
        pixel_format=first.format.name if first.format else None,
        width=first.width,
        height=first.height,
        sample_aspect_ratio=Fraction(sar),
        rotation=rotation,
        mirrored=mirrored,
        orientation=orientation,
        display_width=disp_w,
        display_height=disp_h,
        start_time=start_time,
        start_pts=int(start_pts),
        time_base=Fraction(time_base),
        duration=duration,
        frame_rate=frame_rate,
        variable_frame_rate=_is_variable(intervals, time_base),
        frame_count=int(frame_count),
        audio_tracks=_audio_tracks(container),
    )


@dataclass
class _Head:
    first_frame: VideoFrame
    packet_pts: list[int]
    packet_count: int
    reached_end: bool
    max_end_pts: int | None  # largest pts + duration among the scanned packets


def _scan_head(container: InputContainer, stream: VideoStream, path: Path) -> _Head:
    """Decode the first frame and collect the timestamps of the first packets."""
    first: VideoFrame | None = None
    pts_seen: list[int] = []
    count = 0
    max_end: int | None = None
    reached_end = True
    for packet in container.demux(stream):
        if packet.size == 0:  # the flush packet at the end of the stream
            if first is None:
                first = _flush_first(stream)
            continue
        count += 1
        if packet.pts is not None:
            pts_seen.append(packet.pts)
            end = packet.pts + (packet.duration or 0)
            max_end = end if max_end is None else max(max_end, end)
        if first is None:
            first = _decode_first(packet)
            if first is None and count >= _FIRST_FRAME_PACKETS:
                break
        if first is not None and count >= _HEAD_PACKETS:
            reached_end = False
            break
    if first is None:
        raise MediaError(path, "the file is truncated or corrupt (could not decode any video frame)")
    return _Head(first, pts_seen, count, reached_end, max_end)


def _decode_first(packet: Packet) -> VideoFrame | None:
    try:
        frames = packet.decode()
    except av.error.FFmpegError:
        return None  # a damaged packet; the next keyframe may still decode
    return frames[0] if frames else None  # type: ignore[return-value]


def _flush_first(stream: VideoStream) -> VideoFrame | None:
    try:
        frames = stream.codec_context.decode(None)
    except av.error.FFmpegError:
        return None
    return frames[0] if frames else None  # type: ignore[return-value]


def _frame_intervals(pts: list[int]) -> list[int]:
    ordered = sorted(set(pts))
    return [b - a for a, b in itertools.pairwise(ordered)]


def _frame_rate(stream: VideoStream, intervals: list[int], time_base: Fraction) -> float:
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate and rate > 0:
            return float(rate)
    if intervals:
        return 1.0 / float(statistics.median(intervals) * time_base)
    return 25.0  # a single-packet stream has no rate of its own; any value gives one frame


def _is_variable(intervals: list[int], time_base: Fraction) -> bool:
    """Whether frame intervals differ by more than timestamp rounding allows."""
    if len(intervals) < 2:
        return False
    median = statistics.median(intervals)
    # Containers with coarse clocks (Matroska's 1 ms) store 29.97 fps as 33/34 ms steps.
    tick_slack = 1.5 if time_base >= Fraction(1, 10000) else 0.0
    tolerance = max(tick_slack, _VFR_RELATIVE_TOLERANCE * median)
    return any(abs(i - median) > tolerance for i in intervals)


def _end_pts(
    container: InputContainer, stream: VideoStream, head: _Head, start_pts: int, frame_rate: float, path: Path
) -> int:
    """The time just after the last frame, in stream ticks, from the packets that are really there.

    A header that promises more video than the file holds means the file was cut short.
    """
    time_base = stream.time_base or Fraction(1, 90000)
    nominal = max(1, round(1 / (frame_rate * time_base)))
    header_end = (stream.start_time or 0) + stream.duration if stream.duration else None
    if head.reached_end and head.packet_pts:
        data_end: int | None = max(head.max_end_pts or 0, max(head.packet_pts) + nominal)
    else:
        # Demux (not decode) the last packets: exact where the header has no or an estimated
        # duration (Matroska, MPEG-TS), and proof that the data reaches the promised end.
        target = header_end
        if target is None and container.duration:
            target = (stream.start_time or 0) + round(Fraction(container.duration, 1_000_000) / time_base)
        data_end = _tail_end_pts(container, stream, nominal, target)
    if header_end is not None:
        slack = round(truncation_slack(frame_rate) / time_base)
        if data_end is None or header_end - data_end > slack:
            promised = float((header_end - start_pts) * time_base)
            if data_end is None:
                where = f"its last part is missing ({promised:.2f} s expected)"
            else:
                stops = float((data_end - start_pts) * time_base)
                where = f"the video stops at {stops:.2f} s of {promised:.2f} s"
            raise MediaError(path, f"the file is truncated or corrupt ({where})")
    if data_end is not None:
        return data_end
    if header_end is not None:
        return header_end
    return max(head.packet_pts, default=start_pts) + nominal


def truncation_slack(frame_rate: float) -> float:
    """How far short of its promised end a video may stop before we call the file truncated.

    Container durations are not exact to the frame (rounding, edit lists, a missing last frame).
    """
    return 0.5 + 2.0 / frame_rate


def _tail_end_pts(
    container: InputContainer, stream: VideoStream, nominal: int, target: int | None
) -> int | None:
    if target is not None:
        time_base = stream.time_base or Fraction(1, 90000)
        # Any packet shortly before the end will do: no decoding, so no keyframe needed.
        with contextlib.suppress(av.error.FFmpegError):
            container.seek(max(0, target - round(1 / time_base)), stream=stream, any_frame=True)
    end: int | None = None
    with contextlib.suppress(av.error.FFmpegError):  # a damaged tail: keep what was read
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            packet_end = packet.pts + (packet.duration or nominal)
            end = packet_end if end is None else max(end, packet_end)
    return end


def _orientation(frame: VideoFrame) -> tuple[Orientation, int, bool]:
    for side_data in frame.side_data:
        if side_data.type == SideDataType.DISPLAYMATRIX:
            return parse_display_matrix(bytes(side_data))
    return IDENTITY, 0, False


def _audio_tracks(container: InputContainer) -> tuple[AudioTrackInfo, ...]:
    tracks = []
    for s in container.streams.audio:
        ctx = s.codec_context
        tb = s.time_base
        tracks.append(
            AudioTrackInfo(
                index=s.index,
                codec=ctx.name if ctx is not None else "unknown",
                sample_rate=int(ctx.sample_rate) if ctx is not None else 0,
                channels=int(ctx.channels) if ctx is not None else 0,
                duration=float(s.duration * tb) if s.duration and tb else None,
                start_time=float(s.start_time * tb) if s.start_time is not None and tb else None,
                language=s.language,
            )
        )
    return tuple(tracks)

"""Opening clips with PyAV, and turning every way that can fail into a `MediaError`.

Everything else in the package goes through these helpers, so a file that FFmpeg cannot read,
a folder, a still image or an audio-only file produces the same kind of message wherever it
is first touched.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import av.error
from av.codec.context import CodecContext
from av.container import InputContainer
from av.frame import Frame
from av.stream import Disposition, Stream
from av.video.stream import VideoStream

from vaura_core.media.errors import MediaError

MAX_SIDE = 16384  # larger frames are corrupt headers or would not fit in memory once decoded
# Demuxers that read single pictures (png_pipe, jpeg_pipe, webp_pipe, ... and image2 for files
# matched by extension). yuv4mpegpipe is a real video demuxer and does not end in "_pipe".
_IMAGE_DEMUXERS = ("image2",)
_MAX_BAD_PACKETS = 32  # consecutive undecodable packets before a clip counts as corrupt


def check_path(path: str | os.PathLike[str]) -> Path:
    """The path as a `Path` if it names a non-empty regular file we may read."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MediaError(p, "file not found") from None
    except PermissionError:
        raise MediaError(p, "cannot be read (permission denied)") from None
    except OSError as exc:
        raise MediaError(p, f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise MediaError(p, "is a folder, not a video file")
    if not stat.S_ISREG(st.st_mode):
        # FIFOs and devices could block forever inside FFmpeg.
        raise MediaError(p, "is not a regular file")
    if st.st_size == 0:
        raise MediaError(p, "file is empty")
    if not os.access(p, os.R_OK):
        raise MediaError(p, "cannot be read (permission denied)")
    return p


def _open_failure(path: Path, exc: Exception) -> MediaError:
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
        return MediaError(path, "cannot be read (permission denied)")
    kind = sniff_container(path)
    if kind is not None:
        return MediaError(
            path, f"the file is truncated or corrupt (it starts like {kind} but cannot be read)"
        )
    if isinstance(exc, av.error.InvalidDataError):
        return MediaError(path, "not a video file, or the file is corrupt (no known format found)")
    return MediaError(path, f"cannot be opened as a video ({_reason(exc)})")


def sniff_container(path: Path) -> str | None:
    """The container family a file's first bytes announce, if it is a common video one.

    Used only to word the message when FFmpeg refuses a file: a file that starts like an MP4
    but cannot be opened has lost its end (the index of a camera file is written last).
    """
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        return None
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "an MP4/QuickTime file"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "a Matroska/WebM file"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "an AVI file"
    return None


def _reason(exc: Exception) -> str:
    """FFmpeg's own words without PyAV's errno prefix and file name suffix."""
    strerror = getattr(exc, "strerror", None)
    return str(strerror or exc).strip() or type(exc).__name__


@contextmanager
def open_container(path: Path) -> Iterator[InputContainer]:
    """Open `path` for reading; FFmpeg failures become `MediaError`, and the container is always closed."""
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise _open_failure(path, exc) from None
    try:
        yield container
    finally:
        container.close()


# FFmpeg "plays" any text file as ANSI art through these demuxers; no camera or editor writes them.
_TEXT_ART_DEMUXERS = frozenset({"tty", "bin", "xbin", "adf", "idf"})


def is_still_image_format(container: InputContainer) -> bool:
    name = container.format.name
    return name in _IMAGE_DEMUXERS or name.endswith("_pipe")


def find_video_stream(container: InputContainer, path: Path) -> VideoStream:
    """The clip's main video stream, after checking that the file is a video we can decode."""
    candidates = [s for s in container.streams.video if not (s.disposition & Disposition.attached_pic)]
    if not candidates:
        if container.streams.audio:
            raise MediaError(path, "not a video file (no video stream found, it contains only audio)")
        if not container.streams.video and not any(s.type == "subtitle" for s in container.streams):
            raise MediaError(
                path, "the file is truncated or corrupt (no video or audio stream could be read)"
            )
        raise MediaError(path, "not a video file (no video stream found)")
    if is_still_image_format(container):
        raise MediaError(path, "is a still image, not a video")
    if container.format.name in _TEXT_ART_DEMUXERS:
        raise MediaError(path, "is a text file, not a video")
    # Prefer the stream the file marks as default, as players do.
    default = [s for s in candidates if s.disposition & Disposition.default]
    stream = (default or candidates)[0]
    if stream.codec_context is None:
        raise MediaError(path, "the video uses a codec this application cannot decode")
    width, height = stream.codec_context.width, stream.codec_context.height
    check_frame_size(path, width, height)
    return stream


def check_frame_size(path: Path, width: int, height: int) -> None:
    if width > MAX_SIDE or height > MAX_SIDE:
        raise MediaError(path, f"frame size {width}x{height} is too large (at most {MAX_SIDE} px per side)")


def decode_frames(container: InputContainer, stream: Stream, path: Path) -> Iterator[Frame]:
    """Decoded frames of `stream` in presentation order, from the container's current position.

    Like a player, a few damaged packets are skipped rather than fatal; a long run of them means
    the file is corrupt. Data that stops early (a truncated file) simply ends the iteration, and
    callers compare what they got with the duration they expected.
    """
    codec = stream.codec_context
    bad = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:
            # The demuxer cannot go on (cut-off or garbled data): hand out what the decoder holds.
            yield from _flush(codec)
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            bad += 1
            if bad >= _MAX_BAD_PACKETS:
                at = packet.pts * packet.time_base if packet.pts is not None and packet.time_base else None
                where = f" near {float(at):.2f} s" if at is not None else ""
                what = "video" if stream.type == "video" else "audio"
                raise MediaError(
                    path, f"the file is corrupt ({what} cannot be decoded{where}: {_reason(exc)})"
                ) from None
            continue
        if frames:
            bad = 0
        yield from frames


def _flush(codec: CodecContext) -> list[Frame]:
    try:
        return codec.decode(None)
    except av.error.FFmpegError:
        return []

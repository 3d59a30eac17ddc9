"""Media input with PyAV: probing clips, model frames, preview pictures, thumbnails and audio.

All times are seconds after the clip's first video frame. Any file that is not a usable video
raises `MediaError`, whose message names the file and the problem.

    clip = probe("shot.mov")                         # ClipInfo; quick, decodes one frame
    for chunk in iter_model_frames(clip):            # uint8 (n, 224, 224, 3) at 25 fps
        ...
    for window in model_segments(clip, cfg):         # float (4, 3, 16, S, S) in [-1, 1]
        ...
    picture = frame_at(clip, 12.5, max_size=640)     # or FrameReader(clip) for scrubbing
    thumbs = ThumbnailCache(clip, height=64)
    samples, rate = read_audio_mono(clip, 44100)
"""

from vaura_core.media.audio import NO_AUDIO_RATE, audio_envelope, read_audio_mono
from vaura_core.media.errors import MediaError
from vaura_core.media.frames import (
    default_short_side,
    iter_model_frames,
    model_frame_count,
    model_segments,
    segment_count,
    to_model_tensor,
)
from vaura_core.media.geometry import Orientation
from vaura_core.media.probe import AudioTrackInfo, ClipInfo, as_clip, probe
from vaura_core.media.reader import FrameReader, frame_at
from vaura_core.media.source import MAX_SIDE
from vaura_core.media.thumbnails import ThumbnailCache

__all__ = [
    "MAX_SIDE",
    "NO_AUDIO_RATE",
    "AudioTrackInfo",
    "ClipInfo",
    "FrameReader",
    "MediaError",
    "Orientation",
    "ThumbnailCache",
    "as_clip",
    "audio_envelope",
    "default_short_side",
    "frame_at",
    "iter_model_frames",
    "model_frame_count",
    "model_segments",
    "probe",
    "read_audio_mono",
    "segment_count",
    "to_model_tensor",
]

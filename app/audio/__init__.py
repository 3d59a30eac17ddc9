"""Audio output for the timeline: `Player` mixes the lanes and keeps the picture on the audio clock.

    from app.audio import LaneAudio, Player

    player = Player(window)
    player.set_lanes({"original": LaneAudio(clip_audio, mute=True), "generated": LaneAudio(track.audio)})
    player.position_changed.connect(timeline.set_playhead)
    player.play()

sounddevice (PortAudio) is loaded lazily by `Player`; importing this package never needs it.
"""

from app.audio.playback import (
    AUDITION_LANE,
    PAUSED,
    PLAYING,
    BlockMixer,
    LaneAudio,
    MixState,
    Overlay,
    Player,
    Renderer,
    Transport,
    audition_overlay,
    build_mix,
    lane_from_samples,
)

__all__ = [
    "AUDITION_LANE",
    "PAUSED",
    "PLAYING",
    "BlockMixer",
    "LaneAudio",
    "MixState",
    "Overlay",
    "Player",
    "Renderer",
    "Transport",
    "audition_overlay",
    "build_mix",
    "lane_from_samples",
]

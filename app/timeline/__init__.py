"""The Foley timeline: ruler, picture strip, original-audio lane and generated lane with regions.

Public API (stable; everything else in this package is an implementation detail):

    from app.timeline import TimelineWidget, RegionView, format_timecode

    timeline = TimelineWidget()
    timeline.set_clip(info, ThumbnailCache(info, height=64), original_samples, 44100)
    timeline.set_generated(track_samples, 44100)
    timeline.set_regions([RegionView("r1", 1.28, 2.56, colour=2, label="Take 3", active=True)])
    timeline.set_playhead(t)                 # 60 Hz during playback; set_follow(True) pages the view
    timeline.playhead_dragged.connect(...)   # scrubbing: scrub_started / playhead_dragged / scrub_finished
    timeline.selection_changed.connect(...)  # (start, end) or None
    timeline.lane_gain_changed.connect(...)  # lane is ORIGINAL_LANE ("original") or GENERATED_LANE

Times are seconds after the clip's first video frame, as everywhere in `vaura_core.media`. Colours of
regions come from `take_colour(index)`, which a takes panel can use too.
"""

from app.timeline.lanes import GENERATED as GENERATED_LANE
from app.timeline.lanes import ORIGINAL as ORIGINAL_LANE
from app.timeline.regions import RegionView
from app.timeline.snap import GRID_SECONDS, SNAP_MODES, SnapMode
from app.timeline.theme import TAKE_PALETTE, take_colour
from app.timeline.timecode import format_timecode
from app.timeline.widget import LaneState, TimelineWidget

__all__ = [
    "GENERATED_LANE",
    "GRID_SECONDS",
    "ORIGINAL_LANE",
    "SNAP_MODES",
    "TAKE_PALETTE",
    "LaneState",
    "RegionView",
    "SnapMode",
    "TimelineWidget",
    "format_timecode",
    "take_colour",
]

"""Time arithmetic shared by the engine: frames, 16-frame segments, codec tokens, samples.

Video segments are exact (16 frames at 25 fps = 0.64 s). Codec tokens are not (0.64 s = 55.125
tokens at 86.13 tokens/s), so every window's first token is rounded from its own start time: the
misalignment stays under half a token (5.8 ms) instead of drifting 1.5 ms per stride as the original
scripts' fixed 55-token stride does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vaura_core.model.config import VAuraConfig


@dataclass(frozen=True)
class Timeline:
    cfg: VAuraConfig

    @property
    def sample_rate(self) -> int:
        return self.cfg.codec.sample_rate

    @property
    def hop(self) -> int:
        return self.cfg.codec.hop_length

    @property
    def segment_seconds(self) -> float:
        return self.cfg.segment_seconds

    @property
    def window_tokens(self) -> int:
        return self.cfg.window_tokens

    def tokens_per_segment(self) -> float:
        return self.segment_seconds * self.sample_rate / self.hop

    def segment_token(self, segment: int) -> int:
        """First codec token of a window that starts at `segment`."""
        return round(segment * self.tokens_per_segment())

    def token_at(self, seconds: float) -> int:
        """The token whose span contains `seconds` (floor)."""
        return math.floor(seconds * self.sample_rate / self.hop + 1e-9)

    def tokens_for(self, seconds: float) -> int:
        """Tokens needed to cover `seconds` of audio (ceil)."""
        return math.ceil(seconds * self.sample_rate / self.hop - 1e-9)

    def samples_for(self, seconds: float) -> int:
        return round(seconds * self.sample_rate)

    def model_frames(self, seconds: float) -> int:
        return math.ceil(seconds * self.cfg.fps - 1e-9)

    def segments_for(self, seconds: float) -> int:
        """16-frame segments covering `seconds`, at least one window's worth."""
        segs = math.ceil(self.model_frames(seconds) / self.cfg.visual.frames)
        return max(segs, self.cfg.window_segments)


@dataclass(frozen=True)
class WindowPlan:
    """One generation window: video segments [segment, segment + window_segments) and its tokens."""

    segment: int
    token_start: int  # first token of the window
    prompt_from: int  # first token to generate (tokens [token_start, prompt_from) are the prompt)
    token_end: int  # one past the last token generated in this window

    @property
    def prompt_len(self) -> int:
        return self.prompt_from - self.token_start

    @property
    def n_tokens(self) -> int:
        return self.token_end - self.token_start


def plan_windows(
    tl: Timeline,
    start_token: int,
    end_token: int,
    n_segments: int,
    stride_segments: int = 1,
    *,
    fresh_segment: int | None = None,
) -> list[WindowPlan]:
    """Windows that generate tokens [start_token, end_token) continuing from what lies before.

    With `fresh_segment` nothing before is known: the first window starts at that segment with no
    prompt (its tokens before `start_token` are generated too) and the range starts there.

    Each window after the first keeps `window_tokens - stride` tokens of context as its prompt (166 for
    the default 0.64 s stride), as the original chunked generation does. Windows never run past the
    clip's (padded) segments; the last one may generate fewer new tokens.
    """
    if stride_segments < 1 or stride_segments >= tl.cfg.window_segments:
        raise ValueError(f"stride must be 1..{tl.cfg.window_segments - 1} segments")
    if not 0 <= start_token < end_token:
        raise ValueError("empty token range")
    last_segment = n_segments - tl.cfg.window_segments
    if last_segment < 0:
        raise ValueError("a clip needs at least one window of segments (pad it)")
    if end_token > tl.segment_token(last_segment) + tl.window_tokens:
        raise ValueError("token range runs past the clip's last window")
    keep = tl.window_tokens - round(stride_segments * tl.tokens_per_segment())
    plans: list[WindowPlan] = []
    pos = start_token
    if fresh_segment is not None:
        if not 0 <= fresh_segment <= last_segment or tl.segment_token(fresh_segment) > start_token:
            raise ValueError("fresh_segment must be a window start at or before the range")
        first = tl.segment_token(fresh_segment)
        end = min(first + tl.window_tokens, end_token)
        plans.append(WindowPlan(fresh_segment, first, first, end))
        pos = end
    while pos < end_token:
        # Earliest window start whose prompt (pos - token_start) is at most `keep` tokens long.
        seg = max(0, math.floor((pos - keep) / tl.tokens_per_segment()))
        while tl.segment_token(seg) < pos - keep:
            seg += 1
        seg = min(seg, last_segment)
        first = tl.segment_token(seg)
        if pos - first >= tl.window_tokens:
            raise ValueError("token range runs past the clip's last window")
        end = min(first + tl.window_tokens, end_token)
        plans.append(WindowPlan(seg, first, pos, end))
        pos = end
    return plans

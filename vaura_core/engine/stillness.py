"""Still pictures make no hits: impact cues only where the picture moves.

Why: a hit needs something moving into contact, but the event head reads a picture, not physics. On a
clip whose objects come to rest touching each other (a ball wedged against the wall on a hanging
object) it calls an impact in every segment of the still picture, and the transformer makes them
(docs/training-notes.md, twentieth session). So the largest change between consecutive model frames
is measured while the clip is encoded, and a frame gets impact cues only if some change within
BEFORE frames before it to AFTER frames after it exceeds STILL_CHANGE. Measured on eval-sync's clips
(seeds 7 to 131 of the training notes): where no object moves, the change (Foley World's camera noise
through H.264) stays below it in 98 % of 1410 frames of five sets (at most 0.165); within those frames
of each of the 2368 impacts of ten sets it is at least 0.157. Where noise alone exceeds the threshold
the cues are left as they are.
"""

from __future__ import annotations

import torch
from torch import Tensor

STILL_CHANGE = 0.1  # largest |difference| of normalised model pixels below which nothing moved
BEFORE, AFTER = 2, 1  # frames around a frame whose changes count for it


class FrameChanges:
    """Per frame, the largest change from the frame before, collected while a clip's segments are
    encoded batch by batch ((n, 3, F, S, S) model input, in order)."""

    def __init__(self) -> None:
        self._previous: Tensor | None = None
        self._parts: list[Tensor] = []

    def add(self, batch: Tensor) -> None:
        frames = batch.transpose(1, 2).reshape(-1, batch.shape[1], *batch.shape[-2:]).float()
        before = frames[:1] if self._previous is None else self._previous
        change = (frames - torch.cat([before, frames[:-1]])).abs().amax(dim=(1, 2, 3))
        if self._previous is None:
            change[0] = torch.inf  # nothing before the first frame: it counts as moving
        self._previous = frames[-1:]
        self._parts.append(change.cpu())

    def moving(self, n_frames: int) -> Tensor:
        """(n_frames,) bool: frames whose changes from BEFORE before to AFTER after exceed
        STILL_CHANGE (frames past the collected ones, a clip's padding, are still)."""
        change = torch.zeros(n_frames)
        seen = torch.cat(self._parts)[:n_frames] if self._parts else torch.zeros(0)
        change[: len(seen)] = seen
        big = (change > STILL_CHANGE).float()[None, None]
        # any over the window [f - BEFORE, f + AFTER]: a max-pool with the window's padding
        padded = torch.nn.functional.pad(big, (BEFORE, AFTER))
        return torch.nn.functional.max_pool1d(padded, BEFORE + AFTER + 1, stride=1)[0, 0] > 0

"""Impact cues read from several segmentations of a clip (`lm.impact_cue_views`).

The visual tower encodes 16-frame segments on their own, so a segment's first and last tokens see
their moment from one side only: run 24's event head calls about twice as many false alarms on a
segment's first token as inside it (training notes, nineteenth session). Encoding the clip a second
time with segments shifted by half a segment puts those tokens in the middle of a segment. The cue head is
linear, so averaging the views' features per token averages their cue logits; only the cues read
them: the transformer's video channel keeps the model's own segmentation, as trained.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from vaura_core.model.config import VAuraConfig

EDGE_WEIGHT = 0.25  # a token on its segment's edge, against 1 inside it


def token_weights(tokens: int) -> Tensor:
    """(tokens,) weight of each position of a segment's visual tokens in the average."""
    w = torch.ones(tokens)
    w[0] = w[-1] = EDGE_WEIGHT
    return w


def cue_views_for(cfg: VAuraConfig, encode: Callable[[Tensor], Tensor]) -> CueViews | None:
    """A collector for a model whose cues read several segmentations, None for any other."""
    return CueViews(cfg, encode) if cfg.lm.impact_cues and cfg.lm.impact_cue_views > 1 else None


class CueViews:
    """Collects the shifted segmentations while a clip's segments are encoded batch by batch.

    `add` takes each batch of consecutive (n, 3, F, S, S) segments in order; a shifted segment needs
    the frames of the next segment, so the last one of a batch waits for the next batch.
    """

    def __init__(self, cfg: VAuraConfig, encode: Callable[[Tensor], Tensor]) -> None:
        views = cfg.lm.impact_cue_views
        frames, tubelet = cfg.visual.frames, cfg.visual.tubelet
        self.tokens = frames // tubelet
        self.offsets = [v * frames // views for v in range(1, views)]  # in frames
        self.tubelet = tubelet
        self.encode = encode
        self._last: Tensor | None = None  # the previous batch's last segment
        self._parts: list[list[Tensor]] = [[] for _ in self.offsets]

    def add(self, batch: Tensor) -> None:
        if not self.offsets:
            return
        segs = batch if self._last is None else torch.cat([self._last[None], batch])
        self._last = batch[-1]
        if len(segs) < 2:
            return
        for parts, offset in zip(self._parts, self.offsets, strict=True):
            shifted = torch.cat([segs[:-1, :, offset:], segs[1:, :, :offset]], dim=2)  # along time
            parts.append(self.encode(shifted).float().cpu())

    def combine(self, features: Tensor) -> Tensor:
        """(segments, tokens, D) features of the model's own segmentation -> the cue features: per
        token, the weighted mean over the views that cover it (tokens no shifted view covers, at the
        clip's ends, keep their own)."""
        n_seg, tokens, dim = features.shape
        w = token_weights(tokens)
        own = features.reshape(-1, dim).float().cpu()  # the views are kept on the CPU
        total = own * w.repeat(n_seg)[:, None]
        weight = w.repeat(n_seg)[:, None].clone()
        for parts, offset in zip(self._parts, self.offsets, strict=True):
            if not parts:
                continue
            view = torch.cat(parts).reshape(-1, dim)
            start = offset // self.tubelet
            n = min(len(view), len(own) - start)
            if n <= 0:
                continue
            vw = w.repeat(len(view) // tokens)[:n, None]
            total[start : start + n] += vw * view[:n]
            weight[start : start + n] += vw
        return (total / weight).reshape(n_seg, tokens, dim).to(features.device, features.dtype)

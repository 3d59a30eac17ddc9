"""Visual features of whole clips, computed once per (clip file, model) and reused by every request."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from vaura_core.engine.cue_views import cue_views_for
from vaura_core.engine.engine import ClipFeatures, Progress
from vaura_core.engine.stillness import FrameChanges
from vaura_core.engine.timeline import Timeline
from vaura_core.errors import Cancelled
from vaura_core.generation.generate import CancelToken
from vaura_core.media.frames import model_segments
from vaura_core.media.probe import ClipInfo, as_clip
from vaura_core.model.vaura import VAura


def compute_clip_features(
    model: VAura,
    clip: ClipInfo | str | os.PathLike[str],
    *,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
    timings: dict[str, float] | None = None,
) -> ClipFeatures:
    """Encode every 16-frame segment of the clip, a window's worth at a time (bounded memory).

    Clips shorter than one window are padded with segments of their last frame held still, so the
    model sees a static picture after the end (whose audio is trimmed away). `timings`, when given,
    receives the seconds spent waiting for decoded video ("decode": frames are decoded on a thread
    while the previous window is encoded) and encoding it ("features").
    """
    info = as_clip(clip)
    cfg = model.cfg
    tl = Timeline(cfg)
    needed = tl.segments_for(info.duration)
    parts: list[torch.Tensor] = []
    done = 0
    last: torch.Tensor | None = None
    clock = {"decode": 0.0, "features": 0.0}
    segments = model_segments(info, cfg)
    views = cue_views_for(cfg, model.encode_segments)
    changes = FrameChanges() if cfg.lm.impact_cues else None  # where the cues may call hits
    try:
        # The next window's frames decode on a thread while this one is encoded (PyAV and the
        # encoder's kernels release the GIL); "decode" is then only the time spent waiting for them.
        with ThreadPoolExecutor(1, thread_name_prefix="vaura-frames") as reader:
            ahead = reader.submit(next, segments, None)
            while True:
                t0 = time.perf_counter()
                batch = ahead.result()
                t1 = time.perf_counter()
                clock["decode"] += t1 - t0
                if batch is None:
                    break
                if cancel is not None and cancel.is_cancelled():
                    raise Cancelled("feature extraction cancelled")
                ahead = reader.submit(next, segments, None)
                parts.append(model.encode_segments(batch).float().cpu())
                if views is not None:
                    views.add(batch)
                if changes is not None:
                    changes.add(batch)
                clock["features"] += time.perf_counter() - t1
                last = batch[-1]
                done += batch.shape[0]
                if progress is not None:
                    progress(Progress(min(1.0, done / needed), None, "analysing video"))
    finally:
        segments.close()  # once the reader has stopped: a generator must not run in two threads
    if last is None:
        raise ValueError(f"{info.path.name}: no video frames to analyse")
    if done < needed:
        t1 = time.perf_counter()
        still = last[:, -1:].expand_as(last).contiguous()[None]
        pad = model.encode_segments(still).float().cpu()
        parts.append(pad.expand(needed - done, *pad.shape[1:]))
        if views is not None:
            views.add(still)  # the views across the clip's last frame
        clock["features"] += time.perf_counter() - t1
    if timings is not None:
        for key, value in clock.items():
            timings[key] = timings.get(key, 0.0) + value
    features = torch.cat(parts)[:needed].contiguous()
    cues = None if views is None else views.combine(features)
    moving = None
    if changes is not None:  # per frame, shaped as the tokens' frames
        moving = changes.moving(needed * cfg.visual.frames).reshape(*features.shape[:2], cfg.visual.tubelet)
    return ClipFeatures(features, info.duration, cues, moving)


class FeatureCache:
    """In-memory LRU of clip features keyed by file identity (path, size, mtime) and model name."""

    def __init__(self, max_clips: int = 8) -> None:
        self.max_clips = max_clips
        self._items: OrderedDict[tuple, ClipFeatures] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0  # how many times features were actually computed (for tests and logs)

    @staticmethod
    def key(path: str | os.PathLike[str], model_name: str) -> tuple:
        p = Path(path).resolve()
        st = p.stat()
        return (str(p), st.st_size, st.st_mtime_ns, model_name)

    def get(
        self,
        model: VAura,
        model_name: str,
        clip: ClipInfo | str | os.PathLike[str],
        **kwargs,
    ) -> ClipFeatures:
        info = as_clip(clip)
        key = self.key(info.path, model_name)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        feats = compute_clip_features(model, info, **kwargs)
        with self._lock:
            self.computed += 1
            self._items[key] = feats
            while len(self._items) > self.max_clips:
                self._items.popitem(last=False)
        return feats

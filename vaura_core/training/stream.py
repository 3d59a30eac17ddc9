"""Fresh Foley World windows for the transformer stage, rendered and encoded while it trains.

Why: with a fixed set of clips (120 in the first runs) the small transformer memorised the audio token
sequences and ignored the video (docs/training-notes.md). When every clip is new and seen about once,
the only way to predict when the next sound starts, and what it sounds like, is to look.

Determinism: clip i of the stream is Foley World scene `seeds[i]`; at step k the clips
[hi - buffer, hi) are available, hi = initial + floor(k * clips_per_step), and the batch is drawn from
their windows by a generator seeded with (seed, k). Worker processes render and encode ahead in that
order and the trainer waits for a clip only when they fall behind, so the machine's speed changes the
wall time, never the batches.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaura_core.errors import VauraError
from vaura_core.model.codec import Codec
from vaura_core.model.config import VAuraConfig
from vaura_core.training.data import ClipData, WindowSet, padded_audio, render_clip


@dataclass(frozen=True)
class StreamSettings:
    clips_per_step: float = 0.5  # new clips per training step: each window is drawn ~1.2 times at batch 8
    buffer_clips: int = 32  # clips the batches are drawn from
    initial_clips: int = 16  # rendered before the first step
    workers: int = 1  # rendering processes; 0 renders in the training process (tests)
    prefetch: int = 8  # clips rendered ahead of need


# One encoded clip: the clip (frames and labels; audio dropped once encoded) and its codes (Q, T).
EncodedClip = tuple[ClipData, np.ndarray]

_WORKER: dict[str, Any] = {}


def _exit_with_parent(parent: int) -> None:
    # A trainer killed outright (SIGKILL, SIGTERM) cannot shut its pool down: do not outlive it.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _init_worker(
    cfg: VAuraConfig,
    codec_state: dict[str, Tensor] | None,
    duration: float,
    threads: int,
    parent: int | None,
) -> None:
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    codec = None if codec_state is None else Codec.from_state_dict(cfg.codec, codec_state)
    _WORKER.update(cfg=cfg, duration=duration, codec=codec)


def _encoded_clip(seed: int) -> EncodedClip:
    cfg: VAuraConfig = _WORKER["cfg"]
    clip = render_clip(seed, cfg, _WORKER["duration"], motion=True)
    wave = torch.from_numpy(padded_audio(cfg, clip))
    if _WORKER["codec"] is None:  # frames and labels only: placeholder codes of the right shape
        codes = np.zeros((cfg.n_codebooks, len(wave) // cfg.codec.hop_length), dtype=np.int16)
    else:
        with torch.inference_mode():
            codes = _WORKER["codec"].encode(wave, cfg.codec.sample_rate)[0].to(torch.int16).numpy()
    return replace(clip, audio=np.zeros(0, dtype=np.float32)), codes


class ClipStream:
    """Training batches from a stream of fresh clips (see the module docstring). Close it when done."""

    def __init__(
        self,
        cfg: VAuraConfig,
        codec_state: dict[str, Tensor] | None,
        seeds: Sequence[int],
        duration: float,
        settings: StreamSettings | None = None,
        *,
        phased: bool = False,
    ) -> None:
        """`codec_state` None: no audio codes (all zero), for training that needs frames and labels.
        `phased`: the labels name the impact's frame inside its token (`data.token_labels`)."""
        s = settings or StreamSettings()
        if not s.clips_per_step > 0 or s.buffer_clips < 1 or not 1 <= s.initial_clips <= s.buffer_clips:
            raise ValueError(f"bad stream settings {s}")
        self.cfg, self.settings, self.seeds, self.phased = cfg, s, list(seeds), phased
        self._clips: dict[int, EncodedClip] = {}
        self._pending: dict[int, Future[EncodedClip]] = {}
        self._window_set: tuple[tuple[int, int], WindowSet] | None = None
        state = None if codec_state is None else {k: v.cpu() for k, v in codec_state.items()}
        self._pool: ProcessPoolExecutor | None = None
        if s.workers > 0:
            self._pool = ProcessPoolExecutor(
                max_workers=s.workers,
                mp_context=multiprocessing.get_context("spawn"),  # fork after torch threads can hang
                initializer=_init_worker,
                initargs=(cfg, state, float(duration), 1, os.getpid()),
            )
        else:
            _init_worker(cfg, state, float(duration), torch.get_num_threads(), None)

    # --- which clips ---------------------------------------------------------------------
    def available(self, step: int) -> tuple[int, int]:
        """The clip indices [lo, hi) step `step` draws from."""
        s = self.settings
        hi = s.initial_clips + math.floor(step * s.clips_per_step + 1e-9)
        if hi > len(self.seeds):
            raise VauraError(f"the clip stream has {len(self.seeds)} scenes; step {step} needs {hi}")
        return max(0, hi - s.buffer_clips), hi

    def clips_used(self, steps: int) -> int:
        """Distinct clips a run of `steps` steps renders."""
        return self.available(max(0, steps - 1))[1]

    def _seed(self, i: int) -> int:
        return int(self.seeds[i])

    def _fill(self, lo: int, hi: int) -> None:
        for i in [i for i in self._clips if i < lo]:
            del self._clips[i]
        ahead = min(len(self.seeds), hi + self.settings.prefetch)
        if self._pool is not None:
            for i in range(lo, ahead):
                if i not in self._clips and i not in self._pending:
                    self._pending[i] = self._pool.submit(_encoded_clip, self._seed(i))
        for i in range(lo, hi):
            if i in self._clips:
                continue
            future = self._pending.pop(i, None)
            try:
                self._clips[i] = future.result() if future is not None else _encoded_clip(self._seed(i))
            except Exception as exc:  # a worker's error arrives here: name the scene
                raise VauraError(f"rendering Foley World scene {self._seed(i)} failed: {exc}") from exc

    def window_set(self, step: int) -> WindowSet:
        """The windows of every clip available at `step` (rebuilt only when the range moves)."""
        lo, hi = self.available(step)
        if self._window_set is None or self._window_set[0] != (lo, hi):
            self._fill(lo, hi)
            clips = [self._clips[i] for i in range(lo, hi)]
            codes = [torch.from_numpy(c.astype(np.int64)) for _, c in clips]
            data = WindowSet(self.cfg, [c for c, _ in clips], codes, phased=self.phased)
            self._window_set = ((lo, hi), data)
        return self._window_set[1]

    # --- the batch source protocol (see lm_train) -------------------------------------------
    has_labels = True

    def label_counts(self) -> Tensor:
        """Label frequencies of the first step's clips: a fixed basis for the event loss weights."""
        return self.window_set(0).label_counts()

    def step_batch(self, step: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        """Frames, codes and token labels of step `step` (uniform over the available windows)."""
        data = self.window_set(step)
        indices = self._indices(data, step, batch_size, seed)
        frames, codes = data.batch(indices)
        return frames, codes, data.token_labels(indices)

    has_motion = True

    def step_motion(self, step: int, batch_size: int, seed: int) -> Tensor:
        """The motion targets of `step_batch`'s windows (`motion.motion_targets`)."""
        data = self.window_set(step)
        return data.token_motion(self._indices(data, step, batch_size, seed))

    @staticmethod
    def _indices(data: WindowSet, step: int, batch_size: int, seed: int) -> list[int]:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        return torch.randint(len(data), (batch_size,), generator=g).tolist()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()

    def __enter__(self) -> ClipStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

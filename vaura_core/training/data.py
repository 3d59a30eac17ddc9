"""Training data from Foley World: model-ready frames and 44.1 kHz audio, cached per clip on disk.

Frames go through the same geometry as inference (`vaura_core.media.frames`): short side scaled to
round(size * 256 / 224) with antialiased bilinear filtering, then a centre crop of `size`. Clips are
rendered once and stored as `clip-<seed>-<size>px-v<CACHE_VERSION>.npz` in a cache folder, so a restarted
run reuses them (the frames' size is in the name: a run with another tower input size renders its own).

A training window is what the engine feeds the model: `window_segments` 16-frame segments starting at
segment s, and the codec tokens from `Timeline.segment_token(s)` on (the rounding included), so the
audio/video alignment seen in training is exactly the one seen when generating.

Each clip also keeps per-frame event labels from its scene (`FrameEvents`): which material's impact
starts on a frame, and whether a sustained sound is active. `WindowSet.token_labels` turns them into
one label per visual token for the auxiliary event loss of the visual tower (see `lm_train`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vaura_core.errors import VauraError
from vaura_core.foley_world.materials import MATERIALS
from vaura_core.media.frames import default_short_side
from vaura_core.media.geometry import centre_crop
from vaura_core.model.config import VAuraConfig
from vaura_core.training.motion import motion_targets

if TYPE_CHECKING:
    from vaura_core.foley_world.scene import Scene

log = logging.getLogger(__name__)

RENDER_SIZE = 128  # the `vaura foley-world` picture size; training sees the same source pictures
# Bump when the cached clip format changes: the version is in the file name, so an older cache is
# rendered again instead of being read without the fields it lacks.
CACHE_VERSION = 2
# Event label k (1..M) is material MATERIAL_CLASSES[k - 1]; 0 is "no impact starts here".
MATERIAL_CLASSES: tuple[str, ...] = tuple(sorted(MATERIALS))
N_EVENT_CLASSES = len(MATERIAL_CLASSES) + 1


def event_class_count(tubelet: int, phased: bool) -> int:
    """Classes of the token labels: "none" and each material, or each (material, frame) when phased."""
    return len(event_class_names(tubelet, phased))


def event_class_names(tubelet: int, phased: bool) -> list[str]:
    """The label classes in order, e.g. "none", "drum", ... or "none", "drum@0", ..., "drum@1", ..."""
    if not phased:
        return ["none", *MATERIAL_CLASSES]
    return ["none", *(f"{m}@{f}" for f in range(tubelet) for m in MATERIAL_CLASSES)]


def material_of(labels: np.ndarray) -> np.ndarray:
    """Token labels, phased or not -> material labels (0 none, k material k)."""
    labels = np.asarray(labels)
    return np.where(labels > 0, (labels - 1) % len(MATERIAL_CLASSES) + 1, 0)


@dataclass(frozen=True)
class FrameEvents:
    """Per-frame sound events of a clip, each an (n_frames,) array.

    `impact`: int64, 0 or the class (1..M) of the loudest impact starting on the frame; `strength`:
    float32, that impact's strength (0 where none), kept so tokens spanning several frames can pick
    the loudest; `sustained`: bool, a sliding or rolling sound is active on the frame.
    """

    impact: np.ndarray
    strength: np.ndarray
    sustained: np.ndarray


@dataclass(frozen=True)
class ClipData:
    """One rendered clip: uint8 (n_frames, S, S, 3) frames at the model's crop size, float32 audio.

    `events` is None only for hand-made clips; rendered clips always carry their labels.
    """

    seed: int
    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int
    events: FrameEvents | None = None
    # (n_frames // tubelet, patches, channels) `motion.motion_targets`: the training streams' clips only.
    motion: np.ndarray | None = None


def frame_events(events: Sequence[dict[str, Any]], n_frames: int) -> FrameEvents:
    """Foley World `scene.events` -> per-frame labels (events past the last frame are dropped)."""
    impact = np.zeros(n_frames, dtype=np.int64)
    strength = np.zeros(n_frames, dtype=np.float32)
    sustained = np.zeros(n_frames, dtype=bool)
    for e in events:
        start = int(e["frame"])
        if not 0 <= start < n_frames:
            continue
        if e["kind"] == "impact":
            # A two-object collision is two events on one frame: the louder one names the frame
            # (on a tie the first listed, so the labels do not depend on float noise).
            if impact[start] == 0 or float(e["strength"]) > strength[start]:
                impact[start] = MATERIAL_CLASSES.index(e["material"]) + 1
                strength[start] = float(e["strength"])
        else:
            end = int(e.get("end_frame", start + 1))
            sustained[start : max(start + 1, min(end, n_frames))] = True
    return FrameEvents(impact, strength, sustained)


def impact_starts(clip: ClipData, fps: int) -> np.ndarray:
    """int64 (n, 2) rows (start sample, material class) of the clip's impacts: a sound starts on the
    exact frame of contact, so the frame's time is the sound's."""
    if clip.events is None:
        return np.zeros((0, 2), dtype=np.int64)
    frames = np.flatnonzero(clip.events.impact)
    starts = np.round(frames * clip.sample_rate / fps).astype(np.int64)
    return np.stack([starts, clip.events.impact[frames]], axis=1)


def token_labels(events: FrameEvents, tubelet: int, phased: bool = False) -> np.ndarray:
    """Per-frame labels -> int64 (n_frames // tubelet,): one per run of `tubelet` frames (a visual token).

    A token is labelled with the loudest impact starting on any of its frames (on a tie the earliest
    frame), 0 if none; trailing frames that fill no whole token are dropped. `phased` also names
    the frame: material k starting on the token's frame f is k + f * M (M materials), so a head
    trained on it must tell where inside the token the sound starts, not only that it does.
    """
    n = len(events.impact) // tubelet * tubelet
    labels = events.impact[:n].reshape(-1, tubelet)
    # Frames without an impact rank below every impact, even one of strength 0.
    rank = np.where(labels > 0, events.strength[:n].reshape(-1, tubelet), -1.0)
    pick = rank.argmax(axis=1)
    picked = labels[np.arange(len(labels)), pick]
    if phased:
        picked = np.where(picked > 0, picked + pick * len(MATERIAL_CLASSES), 0)
    return picked


def model_frames(pictures: np.ndarray, size: int) -> np.ndarray:
    """uint8 (n, H, W, 3) pictures -> uint8 (n, size, size, 3): scale the short side, centre crop."""
    _n, height, width, _ = pictures.shape
    short = default_short_side(size)
    if width <= height:
        new_w, new_h = short, max(short, int(short * height / width))
    else:
        new_w, new_h = max(short, int(short * width / height)), short
    x = torch.from_numpy(np.ascontiguousarray(pictures)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    scaled = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(centre_crop(scaled.transpose(1, 2, 0, 3), size).transpose(2, 0, 1, 3))


def render_scene(seed: int, cfg: VAuraConfig, duration: float) -> Scene:
    """Simulate Foley World scene `seed` at the model's fps and sample rate (pictures of RENDER_SIZE)."""
    from vaura_core.foley_world.scene import generate_scene

    return generate_scene(
        seed, duration=duration, fps=cfg.fps, size=RENDER_SIZE, sample_rate=cfg.codec.sample_rate
    )


def clip_of_scene(scene: Scene, seed: int, cfg: VAuraConfig, *, motion: bool = False) -> ClipData:
    """A rendered scene shrunk for the model, with its per-frame event labels (and with `motion`, the
    tower's motion targets: only the training streams use them)."""
    frames = model_frames(np.stack(list(scene.frames())), cfg.visual.img_size)
    return ClipData(
        seed,
        frames,
        np.asarray(scene.audio, dtype=np.float32),
        cfg.codec.sample_rate,
        frame_events(scene.events, len(frames)),
        motion_targets(scene, len(frames), cfg.visual) if motion else None,
    )


def render_clip(seed: int, cfg: VAuraConfig, duration: float, *, motion: bool = False) -> ClipData:
    """Simulate and render Foley World scene `seed` (at the model's fps) and shrink it for the model."""
    return clip_of_scene(render_scene(seed, cfg, duration), seed, cfg, motion=motion)


def _cache_path(cache_dir: Path, seed: int, size: int) -> Path:
    return cache_dir / f"clip-{seed}-{size}px-v{CACHE_VERSION}.npz"


def _save_clip(path: Path, clip: ClipData) -> None:
    if clip.events is None:
        raise ValueError("only clips with event labels are cached")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                frames=clip.frames,
                audio=clip.audio,
                sample_rate=clip.sample_rate,
                impact=clip.events.impact,
                strength=clip.events.strength,
                sustained=clip.events.sustained,
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_clip(path: Path, seed: int) -> ClipData:
    try:
        with np.load(path) as z:
            events = FrameEvents(z["impact"], z["strength"], z["sustained"])
            return ClipData(seed, z["frames"], z["audio"], int(z["sample_rate"]), events)
    except (OSError, ValueError, KeyError) as exc:
        raise VauraError(f"{path}: damaged training clip cache ({exc}); delete it to render again") from None


def _render_to_cache(args: tuple[int, VAuraConfig, float, str]) -> str:
    seed, cfg, duration, cache_dir = args
    path = _cache_path(Path(cache_dir), seed, cfg.visual.img_size)
    if not path.exists():
        torch.set_num_threads(1)
        _save_clip(path, render_clip(seed, cfg, duration))
    return str(path)


def build_clips(
    seeds: Sequence[int],
    cfg: VAuraConfig,
    duration: float,
    cache_dir: Path,
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[ClipData]:
    """Render (or reuse from `cache_dir`) one clip per seed; returned in `seeds` order."""
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VauraError(f"cannot create the training cache {cache_dir}: {exc.strerror or exc}") from None
    jobs = [(int(s), cfg, float(duration), str(cache_dir)) for s in seeds]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for i, _ in enumerate(pool.map(_render_to_cache, jobs), start=1):
                if progress is not None:
                    progress(i, len(jobs))
    else:
        for i, job in enumerate(jobs, start=1):
            _render_to_cache(job)
            if progress is not None:
                progress(i, len(jobs))
    size = cfg.visual.img_size
    return [_load_clip(_cache_path(cache_dir, int(s), size), int(s)) for s in seeds]


# --- windows ------------------------------------------------------------------------------------
def window_segments_of(cfg: VAuraConfig, n_frames: int) -> list[int]:
    """Every first segment of a whole window inside a clip of `n_frames` frames."""
    n_segments = n_frames // cfg.visual.frames
    return list(range(n_segments - cfg.window_segments + 1))


def segment_token(cfg: VAuraConfig, segment: int) -> int:
    """First codec token of a window starting at `segment` (as `Timeline.segment_token`)."""
    per_segment = cfg.segment_seconds * cfg.codec.sample_rate / cfg.codec.hop_length
    return round(segment * per_segment)


def clip_token_count(cfg: VAuraConfig, n_frames: int) -> int:
    """Tokens to encode so that every window of the clip has its full `window_tokens`."""
    last = window_segments_of(cfg, n_frames)[-1]
    return segment_token(cfg, last) + cfg.window_tokens


def padded_audio(cfg: VAuraConfig, clip: ClipData) -> np.ndarray:
    """The clip's audio zero-padded (or cut) to whole tokens covering every window."""
    n = clip_token_count(cfg, len(clip.frames)) * cfg.codec.hop_length
    out = np.zeros(n, dtype=np.float32)
    m = min(n, len(clip.audio))
    out[:m] = clip.audio[:m]
    return out


@dataclass(frozen=True)
class WindowRef:
    clip: int  # index into the clip list
    segment: int  # first segment of the window


class WindowSet:
    """All training windows of a set of clips: frames uint8 per clip, codes (Q, T) per clip, and (when
    every clip has event labels) one impact label per visual token of each clip."""

    def __init__(
        self,
        cfg: VAuraConfig,
        clips: Sequence[ClipData],
        codes: Sequence[torch.Tensor],
        *,
        phased: bool = False,
    ) -> None:
        """`phased`: token labels name the impact's frame inside the token too (`token_labels`)."""
        if len(clips) != len(codes):
            raise ValueError("one code tensor per clip is needed")
        self.cfg = cfg
        self.n_classes = event_class_count(cfg.visual.tubelet, phased)
        self.frames = [torch.from_numpy(c.frames) for c in clips]
        self.codes = [c.long() for c in codes]
        self.refs = [
            WindowRef(i, s) for i, c in enumerate(clips) for s in window_segments_of(cfg, len(c.frames))
        ]
        # Windows start on segment boundaries and segments hold whole tokens, so a window's token
        # labels are a slice of its clip's: computed once here.
        events = [c.events for c in clips if c.events is not None]
        self.labels: list[torch.Tensor] | None = None
        if clips and len(events) == len(clips):
            self.labels = [torch.from_numpy(token_labels(e, cfg.visual.tubelet, phased)) for e in events]
        self.motion: list[torch.Tensor] | None = None
        if clips and all(c.motion is not None for c in clips):
            self.motion = [torch.from_numpy(c.motion) for c in clips]  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def _token_slice(self, per_clip: list[torch.Tensor], ref: WindowRef) -> torch.Tensor:
        per_segment = self.cfg.visual.tokens_per_segment
        t0 = ref.segment * per_segment
        return per_clip[ref.clip][t0 : t0 + self.cfg.window_segments * per_segment]

    def _label_slice(self, ref: WindowRef) -> torch.Tensor:
        if self.labels is None:
            raise ValueError("these clips have no event labels (hand-made clips without `events`)")
        return self._token_slice(self.labels, ref)

    @property
    def has_motion(self) -> bool:
        return self.motion is not None

    def token_motion(self, indices: Sequence[int]) -> torch.Tensor:
        """Motion targets (B, window tokens, patches, channels) of the windows, as `token_labels`."""
        if self.motion is None:
            raise ValueError("these clips have no motion targets (only freshly rendered clips have them)")
        return torch.stack([self._token_slice(self.motion, self.refs[i]) for i in indices])

    def token_labels(self, indices: Sequence[int]) -> torch.Tensor:
        """Impact labels (B, window_segments * tokens_per_segment) long, in the visual tokens' order.

        Token j of segment s covers window frames s * frames + j * tubelet .. + tubelet - 1.
        """
        return torch.stack([self._label_slice(self.refs[i]) for i in indices])

    def label_counts(self) -> torch.Tensor:
        """(n_classes,) token counts over every window: the label frequencies training sees."""
        counts = torch.zeros(self.n_classes, dtype=torch.long)
        for ref in self.refs:
            counts += torch.bincount(self._label_slice(ref), minlength=self.n_classes)
        return counts

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (B, S, 3, F, H, W) float32 in [-1, 1] and codes (B, Q, window_tokens) long."""
        cfg = self.cfg
        n_f, segs, n_t = cfg.visual.frames, cfg.window_segments, cfg.window_tokens
        frames, codes = [], []
        for i in indices:
            ref = self.refs[i]
            f0 = ref.segment * n_f
            clip_frames = self.frames[ref.clip][f0 : f0 + segs * n_f]  # (S*F, H, W, 3)
            frames.append(clip_frames.reshape(segs, n_f, *clip_frames.shape[1:]))
            t0 = segment_token(cfg, ref.segment)
            codes.append(self.codes[ref.clip][:, t0 : t0 + n_t])
        x = torch.stack(frames).permute(0, 1, 5, 2, 3, 4).float().div_(127.5).sub_(1.0)
        return x.contiguous(), torch.stack(codes)

    def step_batch(self, step: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """Frames, codes and (if labelled) token labels of training step `step`: shuffled epochs."""
        indices = self.step_indices(step, batch_size, seed)
        frames, codes = self.batch(indices)
        return frames, codes, self.token_labels(indices) if self.has_labels else None

    def step_indices(self, step: int, batch_size: int, seed: int) -> list[int]:
        return EpochSampler(len(self), batch_size, seed).indices(step)

    def step_motion(self, step: int, batch_size: int, seed: int) -> Tensor:
        """The motion targets of `step_batch`'s windows."""
        return self.token_motion(self.step_indices(step, batch_size, seed))


class EpochSampler:
    """Deterministic shuffled batches: epoch e is a permutation drawn from (seed, e)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError("need at least one item and a positive batch size")
        self.n, self.batch_size, self.seed = n, batch_size, seed

    def indices(self, step: int) -> list[int]:
        """The batch of training step `step` (any step can be asked for: resuming needs no replay)."""
        per_epoch = max(1, self.n // self.batch_size)
        epoch, k = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.n, generator=g)
        if self.n < self.batch_size:  # tiny sets: repeat items to fill the batch
            order = order.repeat(-(-self.batch_size // self.n))
        return order[k * self.batch_size : (k + 1) * self.batch_size].tolist()

"""Audio-visual alignment of generated Foley, measured against Foley World's ground-truth events.

Protocol (shared/reference/sync-metrics.md, section 0):
- Onsets: `evaluation.onsets.detect_onsets` (librosa's spectral flux, peak-picked, 50 ms suppression;
  peaks whose analysis window runs past the end of the audio are dropped: there the spectral flux sees
  the cut-off of a still-sounding track, not an event).
- Reference: the clip's event times, events less than 50 ms after the first of a group being one onset
  (a two-object collision; a slide starting one frame after the impact that set it off): the
  suppression above cannot resolve them, from any audio.
- Matching: mir_eval's one-to-one matching within +/-50 ms and +/-100 ms; precision, recall and F1 are
  pooled over all clips (matched, detected and reference counts are summed). Timing errors are over the
  +/-100 ms matches, so the worst error is not capped by the stricter window.
- Material: for each matched reference onset that has an impact, the power spectrum of the 80 ms after
  the detected onset minus the 80 ms before it (what the new sound added) is split into the four
  materials' bands (drum < 250 Hz <= wood < 1400 Hz <= metal < 3300 Hz <= glass, from the Foley World
  voices); the band with the most energy is the prediction, correct if any impact at that onset has
  that material.
- Control: the same clip scored against audio generated from another clip's video (a model that ignores
  the picture scores about as well here as on its own video). Detector sanity: the ground-truth audio
  through the same pipeline. Codec ceiling: the ground-truth audio encoded and decoded by the model's
  codec, which bounds what any generated token sequence can score.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vaura_core.engine.chains import DEFAULT_CHAINS
from vaura_core.evaluation.onsets import NMS_SECONDS, detect_onsets

log = logging.getLogger(__name__)

WINDOWS = (0.05, 0.1)
SPECTRUM_SECONDS = 0.08
MATERIAL_BANDS: dict[str, tuple[float, float]] = {
    "drum": (40.0, 250.0),
    "wood": (250.0, 1400.0),
    "metal": (1400.0, 3300.0),
    "glass": (3300.0, 11000.0),
}
TARGETS = {"f1_50": 0.85, "control_f1_50_max": 0.35, "material_accuracy": 0.8, "detector_f1_50": 0.98}


# --- material -----------------------------------------------------------------------------------
def classify_material(audio: np.ndarray, sample_rate: int, t: float) -> str:
    """The material whose band gained the most energy at time `t` (see module docstring)."""
    n = round(SPECTRUM_SECONDS * sample_rate)
    i = round(t * sample_rate)
    x = np.asarray(audio, dtype=np.float64)

    def power(a: int) -> np.ndarray:
        seg = np.zeros(n)
        lo, hi = max(a, 0), min(a + n, len(x))
        if hi > lo:
            seg[lo - a : hi - a] = x[lo:hi]
        return np.abs(np.fft.rfft(seg * np.hanning(n))) ** 2

    gain = np.maximum(power(i) - power(i - n), 0.0)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    energy = {m: float(gain[(freqs >= lo) & (freqs < hi)].sum()) for m, (lo, hi) in MATERIAL_BANDS.items()}
    return max(energy, key=lambda m: energy[m])


# --- scoring ------------------------------------------------------------------------------------
@dataclass
class ClipScore:
    """Raw counts of one clip, pooled by `pool_scores`."""

    n_ref: int
    n_est: int
    matched: dict[str, int]  # window in ms (as text) -> matched pairs
    errors_ms: list[float]  # signed (detected - reference) of the +/-100 ms matches
    material_total: int
    material_correct: int


def reference_onsets(events: Sequence[dict[str, Any]]) -> tuple[np.ndarray, list[set[str]]]:
    """Onset times (see the module docstring: events within 50 ms of a group's first are one onset),
    and for each the materials of its impacts (empty for sustained sounds only)."""
    times: list[float] = []
    materials: list[set[str]] = []
    for e in sorted(events, key=lambda e: float(e["time"])):
        t = float(e["time"])
        if not times or t - times[-1] >= NMS_SECONDS - 1e-9:
            times.append(t)
            materials.append(set())
        if e["kind"] == "impact":
            materials[-1].add(e["material"])
    return np.array(times), materials


def score_clip(audio: np.ndarray, sample_rate: int, events: Sequence[dict[str, Any]]) -> ClipScore:
    import mir_eval

    ref, impact_materials = reference_onsets(events)
    est = detect_onsets(audio, sample_rate)
    matched = {}
    for w in WINDOWS:
        matched[str(round(w * 1000))] = (
            len(mir_eval.util.match_events(ref, est, w)) if len(ref) and len(est) else 0
        )
    pairs = mir_eval.util.match_events(ref, est, max(WINDOWS)) if len(ref) and len(est) else []
    errors = [float((est[j] - ref[i]) * 1000) for i, j in pairs]
    total = correct = 0
    for i, j in pairs:
        if impact_materials[i]:
            total += 1
            correct += classify_material(audio, sample_rate, float(est[j])) in impact_materials[i]
    return ClipScore(len(ref), len(est), matched, errors, total, correct)


def pool_scores(scores: Sequence[ClipScore]) -> dict[str, float]:
    """Micro-averaged precision / recall / F1 per window, timing errors and material accuracy."""
    n_ref = sum(s.n_ref for s in scores)
    n_est = sum(s.n_est for s in scores)
    out: dict[str, float] = {"reference_onsets": n_ref, "detected_onsets": n_est}
    for w in WINDOWS:
        key = str(round(w * 1000))
        tp = sum(s.matched[key] for s in scores)
        p = tp / n_est if n_est else 0.0
        r = tp / n_ref if n_ref else 0.0
        out[f"precision_{key}"] = p
        out[f"recall_{key}"] = r
        out[f"f1_{key}"] = 2 * p * r / (p + r) if p + r else 0.0
    errors = np.array([e for s in scores for e in s.errors_ms])
    out["mean_abs_error_ms"] = float(np.abs(errors).mean()) if errors.size else float("nan")
    out["max_abs_error_ms"] = float(np.abs(errors).max()) if errors.size else float("nan")
    out["mean_signed_error_ms"] = float(errors.mean()) if errors.size else float("nan")
    m_total = sum(s.material_total for s in scores)
    out["material_onsets"] = m_total
    out["material_accuracy"] = sum(s.material_correct for s in scores) / m_total if m_total else 0.0
    return out


# --- end to end ---------------------------------------------------------------------------------
def codec_round_trip(model: Any, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """`audio` encoded to tokens and decoded again by `model`'s codec, at the codec's rate and length."""
    import torch

    codec = model.audio_encoder
    wave = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    with torch.inference_mode():
        codes = codec.encode(wave.to(codec.device), sample_rate)
        out = codec.decode(codes)[0].float().cpu().numpy()
    n = round(len(audio) * codec.sample_rate / sample_rate)
    return out[:n]


@dataclass
class SyncReport:
    model: str
    count: int
    duration: float
    seed: int
    scene_seeds: list[int]
    sampling: dict[str, Any]
    chains: int
    candidates: int
    generated: dict[str, float]
    control: dict[str, float]
    ground_truth: dict[str, float]
    codec_ceiling: dict[str, float]
    seconds: float
    targets: dict[str, float]
    passed: dict[str, bool]
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_targets(gen: dict[str, float], ctl: dict[str, float], gt: dict[str, float]) -> dict[str, bool]:
    return {
        "f1_50": gen["f1_50"] >= TARGETS["f1_50"],
        "control_f1_50_max": ctl["f1_50"] <= TARGETS["control_f1_50_max"],
        "material_accuracy": gen["material_accuracy"] >= TARGETS["material_accuracy"],
        "detector_f1_50": gt["f1_50"] >= TARGETS["detector_f1_50"],
    }


def evaluate_sync(
    model: Any,
    model_name: str,
    count: int,
    seed: int,
    *,
    duration: float = 10.0,
    params: Any = None,
    chains: int = DEFAULT_CHAINS,
    candidates: int | None = None,
    work_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> SyncReport:
    """Render `count` fresh Foley World clips (those of `vaura foley-world --seed S --count N`), generate
    audio for each from its own video and from the next clip's video, and score all against the events.
    `chains` and `candidates` as `Engine.generate` (chains 1: sequential windows, as the original;
    candidates None: the model's default); the control picks its candidates by the other clip's picture."""
    from vaura_core.engine.candidates import effective_candidates
    from vaura_core.engine.engine import Engine
    from vaura_core.engine.features import compute_clip_features
    from vaura_core.foley_world.scene import SceneSpec, build_scene
    from vaura_core.foley_world.writer import clip_seed, write_clip
    from vaura_core.generation.sampling import SamplingParams

    if count < 2:
        raise ValueError("the control needs at least 2 clips")
    params = params or SamplingParams()
    candidates = effective_candidates(model.cfg, candidates)
    engine = Engine(model, model_name)
    sr = model.cfg.codec.sample_rate
    t0 = time.perf_counter()
    seeds = [clip_seed(seed, i) for i in range(count)]
    with tempfile.TemporaryDirectory(prefix="vaura-eval-sync-", dir=work_dir) as tmp:
        scenes, feats = [], []
        for i, s in enumerate(seeds):
            scene = build_scene(SceneSpec(s, duration))
            path = Path(tmp) / f"clip_{i:05d}.mp4"
            write_clip(scene, path, path.with_suffix(".json"))
            feats.append(compute_clip_features(model, path))
            scenes.append(scene)
            if progress:
                progress(f"clip {i + 1}/{count}: features")
    gen_scores, ctl_scores, gt_scores, rt_scores = [], [], [], []
    for i, scene in enumerate(scenes):
        gt_scores.append(score_clip(scene.audio, scene.spec.sample_rate, scene.events))
        rt_scores.append(
            score_clip(codec_round_trip(model, scene.audio, scene.spec.sample_rate), sr, scene.events)
        )
        own = engine.generate(feats[i], params, [seed * 1000 + i], chains=chains, candidates=candidates)[
            0
        ].audio
        gen_scores.append(score_clip(own, sr, scene.events))
        other = feats[(i + 1) % count]
        ctl = engine.generate(other, params, [seed * 1000 + i], chains=chains, candidates=candidates)[0].audio
        ctl_scores.append(score_clip(ctl, sr, scene.events))
        if progress:
            progress(f"clip {i + 1}/{count}: generated and scored")
    gen, ctl, gt = pool_scores(gen_scores), pool_scores(ctl_scores), pool_scores(gt_scores)
    return SyncReport(
        model=model_name,
        count=count,
        duration=duration,
        seed=seed,
        scene_seeds=seeds,
        sampling=params.to_dict(),
        chains=chains,
        candidates=candidates,
        generated=gen,
        control=ctl,
        ground_truth=gt,
        codec_ceiling=pool_scores(rt_scores),
        seconds=time.perf_counter() - t0,
        targets=dict(TARGETS),
        passed=check_targets(gen, ctl, gt),
    )

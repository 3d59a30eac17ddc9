"""Best of several candidates: each stretch of a take is sampled K times, and the candidate whose hits
land on the impacts the model sees is kept.

Why: the transformer now and then puts a hit a step or a frame off its cue, drops one or adds one,
while the event head's own calls (its impact probability per video frame, what the cues carry) say
where the hits belong. The candidates of a stretch differ only in their sampling seed and run as one
batch (for a small model a step's cost grows far less than its rows). Each is decoded, its onsets
detected (`engine.onset_flux`: the alignment protocol's recipe without its slow imports), and the one
whose onsets agree best with the predicted hits (F1 within +/-50 ms) is kept; on a tie the lower
index wins, so candidate 0, sampled with the take's own seed, is what a single candidate gives.
Measured in docs/training-notes.md (twentieth session). A model without impact cues has nothing to
choose by and generates one candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from vaura_core.model.config import VAuraConfig
    from vaura_core.model.vaura import VAura

# The default where the model has impact cues: generating the 10 s demo clip takes 2.7-2.9 times as
# long as with one candidate (audio ready in 1.2-1.3 s on this CPU, docs/benchmarks.md); a first test
# on six clip sets gave three most of what four gain (training notes, twentieth session).
DEFAULT_CANDIDATES = 3
MAX_CANDIDATES = 8  # what requests, commands and project files accept
HIT_PROBABILITY = 0.3  # a frame whose impact probability peaks at or above this is a predicted hit
MATCH_SECONDS = 0.05  # the alignment protocol's strict window


def default_candidates(cfg: VAuraConfig) -> int:
    """Candidates per stretch when a request names none: DEFAULT_CANDIDATES with impact cues, else 1."""
    return DEFAULT_CANDIDATES if cfg.lm.impact_cues else 1


def effective_candidates(cfg: VAuraConfig, requested: int | None) -> int:
    """How many candidates a request for `requested` (None: the model's default) generates."""
    if requested is None:
        return default_candidates(cfg)
    if not 1 <= requested <= MAX_CANDIDATES:
        raise ValueError(f"candidates must be 1 to {MAX_CANDIDATES}, got {requested}")
    return requested if cfg.lm.impact_cues else 1


def candidate_seed(seed: int, index: int) -> int:
    """Sampling seed of candidate `index` of a take seeded `seed` (candidate 0: the seed itself)."""
    if index == 0:
        return int(seed)
    return (int(seed) * 0xC2B2AE3D + index * 0x27D4EB2F + 0x165667B1) % (2**63)


def frame_hit_probability(
    model: VAura, features: torch.Tensor, moving: torch.Tensor | None = None
) -> np.ndarray:
    """(frames,) probability, per video frame of the clip, that an impact starts on it: the cue head's
    (sharpened) class probabilities read from `features` (segments, tokens, D), summed over materials,
    zero where `moving` (segments, tokens, tubelet) is false, as the cues."""
    import torch

    lm = model.sampler
    tubelet = model.cfg.visual.tubelet
    weight = lm.cue_head.weight
    with torch.inference_mode():
        probs = lm.impact_probs(features.to(weight.device, weight.dtype), moving)
    return probs.float().reshape(-1, tubelet, probs.shape[-1] // tubelet).sum(-1).reshape(-1).cpu().numpy()


def predicted_hits(frame_prob: np.ndarray, fps: float) -> np.ndarray:
    """Times (s) of the frames where the impact probability peaks at or above HIT_PROBABILITY."""
    p = np.asarray(frame_prob, dtype=np.float64)
    if p.size == 0:
        return np.zeros(0)
    left = np.concatenate([[-np.inf], p[:-1]])
    right = np.concatenate([p[1:], [-np.inf]])
    peaks = np.flatnonzero((p >= HIT_PROBABILITY) & (p >= left) & (p > right))
    return peaks / float(fps)


def matches(a: np.ndarray, b: np.ndarray, window: float) -> int:
    """Most one-to-one pairs of sorted times a and b within `window` of each other (on a line,
    pairing in time order is optimal)."""
    i = j = count = 0
    while i < len(a) and j < len(b):
        if abs(a[i] - b[j]) <= window + 1e-9:
            count, i, j = count + 1, i + 1, j + 1
        elif a[i] < b[j]:
            i += 1
        else:
            j += 1
    return count


def agreement(hits: np.ndarray, onsets: np.ndarray) -> float:
    """F1 of onsets against predicted hits within +/-MATCH_SECONDS (1 when both are empty)."""
    if len(hits) == 0 and len(onsets) == 0:
        return 1.0
    return 2.0 * matches(np.sort(hits), np.sort(onsets), MATCH_SECONDS) / (len(hits) + len(onsets))


def best_candidate(
    audio: np.ndarray, sample_rate: int, audio_start: float, hits: np.ndarray, lo: float, hi: float
) -> int:
    """Index of the row of `audio` (candidates, samples), starting at `audio_start` s, whose onsets in
    [lo, hi) s agree best with the predicted `hits` there (the first of equals)."""
    from vaura_core.engine.onset_flux import onset_times  # torch: kept out of the commands' start

    inside = hits[(hits >= lo) & (hits < hi)]
    scores = []
    for row in audio:
        onsets = onset_times(row, sample_rate) + audio_start
        scores.append(agreement(inside, onsets[(onsets >= lo) & (onsets < hi)]))
    return int(np.argmax(scores))


def best_rows(
    audio: np.ndarray,
    candidates: int,
    sample_rate: int,
    audio_start: float,
    hits: np.ndarray,
    lo: float,
    hi: float,
) -> np.ndarray:
    """For rows of `audio` grouped take by take (`candidates` rows each), the index of each take's
    best row (`best_candidate`)."""
    return np.array(
        [
            first + best_candidate(audio[first : first + candidates], sample_rate, audio_start, hits, lo, hi)
            for first in range(0, len(audio), candidates)
        ]
    )

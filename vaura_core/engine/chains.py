"""Parallel chains: a long range generated as K independent stretches decoded side by side.

Sequential generation is one chain: every window continues from the one before, so a 10 s clip is
966 decode steps in a row. With K chains the range is cut at segment boundaries; each stretch starts
with a fresh window and continues sequentially, and the K stretches advance together as one batch
(for a small model a step's cost grows far less than its rows), so the 10 s clip takes about a third
of the steps with K = 4.
A stretch's fresh start does not hear the audio before it, and its first 0.6 s or so are poorly timed
(measured with a one-segment overlap, onsets within 0.4 s after the switch: recall 0.33 and precision
0.25, against about 0.5 elsewhere). So each stretch runs OVERLAP_SEGMENTS (1.28 s) into the next, and
each take switches to the next stretch in the second half of that overlap, with a short crossfade at
the quietest moment there (`seam_cuts`): a hit then sounds once, from the stretch that made it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from vaura_core.engine.splice import splice
from vaura_core.engine.timeline import Timeline

# Segments each stretch runs into the next: the first lets the next stretch's fresh start settle, the
# second is where the take switches.
OVERLAP_SEGMENTS = 2
CHAIN_SEED_STRIDE = 100_003  # window j of chain k draws with window index j + k * this
MAX_CHAINS = 64  # what requests, commands and project files accept (a clip gets fewer if it is short)
# The default for new generations: the 10 s demo clip's audio is ready about 1.6x as fast as with one
# chain, alignment within the spread of sampling seeds (docs/benchmarks.md). A clip shorter than two
# windows stays one chain.
DEFAULT_CHAINS = 4


@dataclass(frozen=True)
class Chain:
    """One stretch: a fresh window at `segment`, tokens [token_start, token_end) generated."""

    segment: int
    token_start: int
    token_end: int


def plan_chains(tl: Timeline, first_segment: int, n_tokens: int, n_segments: int, chains: int) -> list[Chain]:
    """At most `chains` stretches covering tokens [segment_token(first_segment), n_tokens).

    Every stretch spans at least one window of segments (fewer, longer chains otherwise) and starts
    where a whole window of video exists. Chain k ends OVERLAP_SEGMENTS into chain k + 1.
    """
    if not 1 <= chains <= MAX_CHAINS:
        raise ValueError(f"chains must be 1 to {MAX_CHAINS}, got {chains}")
    w = tl.cfg.window_segments
    last_start = n_segments - w
    span = max(1, -(-(n_tokens - tl.segment_token(first_segment)) // round(tl.tokens_per_segment())))
    k = max(1, min(chains, span // w))
    starts = sorted({min(first_segment + round(i * span / k), last_start) for i in range(k)})
    out = []
    for i, seg in enumerate(starts):
        end = n_tokens if i + 1 == len(starts) else tl.segment_token(starts[i + 1] + OVERLAP_SEGMENTS)
        out.append(Chain(seg, tl.segment_token(seg), min(end, n_tokens)))
    return out


SEAM_FADE_SECONDS = 0.08  # crossfade at a seam: short enough not to double a hit, long enough not to click
_SEAM_FRAME_SECONDS = 0.005  # resolution of the search for the quietest moment


def seam_fade(tl: Timeline) -> int:
    """Samples of the crossfade at a seam."""
    return max(2, round(SEAM_FADE_SECONDS * tl.sample_rate))


def seam_span(tl: Timeline, prev: Chain, nxt: Chain) -> tuple[int, int]:
    """Samples [lo, hi) where two chains may switch: the second half of their overlap, after the
    fresh start of `nxt` has settled, and away from the decoder's edge at the end of `prev`."""
    a, b = nxt.token_start * tl.hop, prev.token_end * tl.hop
    margin = (b - a) // 16
    return a + (b - a) // 2 + margin, b - margin


def heard_from(tl: Timeline, chains: list[Chain]) -> list[int]:
    """For each chain, the first of its tokens (counted from its `token_start`) whose audio the joined
    track can use: a later chain is heard only from its seam's span on (`seam_span`, where the cut's
    crossfade starts at the earliest), so the overlap's first half need not be decoded at all."""
    spans = [seam_span(tl, prev, nxt) for prev, nxt in itertools.pairwise(chains)]
    return [0] + [lo // tl.hop - nxt.token_start for (lo, _), nxt in zip(spans, chains[1:], strict=True)]


def kept_ranges(tl: Timeline, chains: list[Chain], start: float, end: float) -> list[tuple[float, float]]:
    """For each chain, the seconds [lo, hi) of [start, end) the joined take mostly hears from it: the
    seams fall inside `seam_span`, so each boundary is that span's middle."""
    bounds = [start]
    for prev, nxt in itertools.pairwise(chains):
        lo, hi = seam_span(tl, prev, nxt)
        bounds.append((lo + hi) / 2 / tl.sample_rate)
    bounds.append(end)
    return list(itertools.pairwise(bounds))


def seam_cuts(
    tl: Timeline, prev: Chain, nxt: Chain, prev_wav: np.ndarray, next_wav: np.ndarray
) -> np.ndarray:
    """For each row, the sample (absolute) where the take switches from `prev` to `nxt`.

    prev_wav / next_wav: (B, samples) audio of each chain from its first token. The cut is the centre
    of the crossfade-long stretch, within `seam_span`, where the two together are quietest: a hit
    of either then sounds once, from the chain that made it, and the switch cuts no loud sound.
    """
    lo, hi = seam_span(tl, prev, nxt)
    fade = seam_fade(tl)
    if hi - lo < fade:  # `plan_chains` overlaps stretches by whole segments: a bug if this happens
        raise ValueError(f"chains {prev} and {nxt} overlap too little to switch between them")
    p = prev_wav[:, lo - prev.token_start * tl.hop : hi - prev.token_start * tl.hop].astype(np.float64)
    n = next_wav[:, lo - nxt.token_start * tl.hop : hi - nxt.token_start * tl.hop].astype(np.float64)
    energy = np.cumsum(np.pad(p**2 + n**2, ((0, 0), (1, 0))), axis=1)
    starts = np.arange(0, hi - lo - fade + 1, max(1, round(_SEAM_FRAME_SECONDS * tl.sample_rate)))
    windowed = energy[:, starts + fade] - energy[:, starts]  # energy of [s, s + fade) per row
    return lo + starts[np.argmin(windowed, axis=1)] + fade // 2


def join_audio(
    tl: Timeline, chains: list[Chain], audio: list[np.ndarray], n_samples: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One (B, n_samples) track from each chain's (B, samples) audio starting at its first token,
    and the cut of every seam (`seam_cuts`: (B,) samples each)."""
    batch = audio[0].shape[0]
    out = np.zeros((batch, n_samples), dtype=np.float32)
    fade = seam_fade(tl)
    cuts: list[np.ndarray] = []
    for i, (chain, wav) in enumerate(zip(chains, audio, strict=True)):
        start = chain.token_start * tl.hop
        end = min(n_samples, start + wav.shape[1])
        if i == 0:
            out[:, start:end] = wav[:, : end - start]
            continue
        seam = seam_cuts(tl, chains[i - 1], chain, audio[i - 1], wav)
        cuts.append(seam)
        for row, cut in enumerate(seam):  # this chain from the crossfade before its cut on
            at = int(cut) - fade // 2
            out[row] = splice(out[row], wav[row, at - start : end - start], at, fade_in=fade, fade_out=0)
    return out, cuts


def join_codes(
    tl: Timeline, chains: list[Chain], codes: list[np.ndarray], cuts: list[np.ndarray]
) -> np.ndarray:
    """(B, Q, T) tokens of the joined track: each row takes each chain's own tokens from the token
    holding its seam's cut (`join_audio`) on."""
    out = codes[0].copy()
    for i in range(1, len(chains)):
        for row, cut in enumerate(cuts[i - 1]):
            switch = int(cut) // tl.hop
            out[row, :, switch : chains[i].token_end] = codes[i][row, :, switch : chains[i].token_end]
    return out

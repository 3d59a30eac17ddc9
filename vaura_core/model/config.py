"""One configuration dataclass for every V-AURA variant, with named presets.

The `vaura` preset holds the released sizes (spec: shared/reference/vaura.md, section 11).
Small presets keep the same code paths for fast tests.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

Index = TypeVar("Index")  # an int, or an integer array or tensor


@dataclass(frozen=True)
class VisualConfig:
    """Segment AVCLIP video tower (Motionformer ViT with divided space-time attention)."""

    img_size: int = 224
    patch_size: int = 16
    frames: int = 16  # frames per segment
    tubelet: int = 2  # frames per temporal patch
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    eps: float = 1e-6

    @property
    def tokens_per_segment(self) -> int:
        return self.frames // self.tubelet

    @property
    def patches_per_frame(self) -> int:
        return (self.img_size // self.patch_size) ** 2


@dataclass(frozen=True)
class CodecConfig:
    """Keyword arguments of `dac.DAC` (descript-audio-codec 1.0.0), 44 kHz defaults."""

    sample_rate: int = 44100
    encoder_dim: int = 64
    encoder_rates: tuple[int, ...] = (2, 4, 8, 8)
    decoder_dim: int = 1536
    decoder_rates: tuple[int, ...] = (8, 8, 4, 2)
    n_codebooks: int = 9
    codebook_size: int = 1024
    codebook_dim: int = 8
    latent: int | None = None  # None: DAC's default, encoder_dim * 2 ** len(encoder_rates)

    @property
    def latent_dim(self) -> int:
        return self.latent if self.latent is not None else self.encoder_dim * 2 ** len(self.encoder_rates)

    @property
    def hop_length(self) -> int:
        hop = 1
        for r in self.encoder_rates:
            hop *= r
        return hop

    @property
    def frame_rate(self) -> float:
        """Codec tokens per second (86.13 for the 44.1 kHz model)."""
        return self.sample_rate / self.hop_length

    def dac_kwargs(self) -> dict[str, Any]:
        return {
            "encoder_dim": self.encoder_dim,
            "encoder_rates": list(self.encoder_rates),
            "latent_dim": self.latent_dim,
            "decoder_dim": self.decoder_dim,
            "decoder_rates": list(self.decoder_rates),
            "n_codebooks": self.n_codebooks,
            "codebook_size": self.codebook_size,
            "codebook_dim": self.codebook_dim,
            "sample_rate": self.sample_rate,
        }


@dataclass(frozen=True)
class LMConfig:
    """The Llama-style fusion transformer ("sampler" in the checkpoint)."""

    n_layer: int = 24
    n_head: int = 16
    video_dim: int = 512  # visual MLP output; fused channels = video_dim + codec latent
    block_size: int = 256  # RoPE table length, longest sequence
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    multiple_of: int = 256
    video_tokens: int = 32  # visual tokens per window (4 segments x 8)
    tokens_per_video_token: int = 7  # sequence positions per visual token
    # Visual tokens a position looks ahead. The original (0) gives position p token p // 7, so an
    # impact in a tubelet's first frame is seen only after the position that must predict its onset;
    # 1 gives each position the tubelet its next audio token falls in. Checkpoints without it are 0.
    video_lookahead: int = 0
    # Time alignment (None: the original's position alignment above). An int L gives position p
    # the visual token whose span (80 ms for 2-frame tokens) holds the time of audio step p + L:
    # with p // 7 the picture drifts 3.4 steps against the audio over a window, and a whole-token
    # look-ahead shows an impact up to 80 ms before its sound, which the model answers with early hits.
    video_lead_steps: int | None = None
    # With time alignment: add a learned vector for how many audio steps into its visual token the
    # step p + L falls (`FusionLM.video_phase_emb`), so the transformer need not count from where
    # the picture last changed to place a hit on the token's second frame. Absent in the release.
    video_phase: bool = False
    # With time alignment: the model's own event head (`FusionLM.cue_head`, this many classes: "none"
    # and material x frame-in-token, the phased labels of training) reads each visual token, and the
    # position whose step p + L starts a frame gets a learned vector per class weighted by that
    # frame's probabilities (`cue_emb`): a marker on the audio step where a hit should start, so the
    # transformer need not count steps from where the picture changed (training notes, run 21). 0:
    # none (the release has no such tensors).
    impact_cues: int = 0
    # With impact cues: the marker also goes, with other vectors for each distance, to the span - 1
    # steps before a frame's first (a countdown to the hit): marked on that step alone, run 21 still
    # started some hits 50-140 ms early on the way to the floor (training notes, sixteenth session).
    impact_cue_span: int = 1
    # With impact cues, outside training: the cue head's logits are divided by this before its
    # softmax. Trained on soft probabilities, run 22 places hits better on sharper ones (measured in
    # the training notes, sixteenth session; our reading: fewer onsets on the head's weak false
    # alarms). 1: as trained.
    impact_cue_temperature: float = 1.0
    # With impact cues, outside training: read the cues from this many segmentations of the clip, the
    # model's own and ones shifted by a fraction of a segment, averaged per visual token with less
    # weight where a token sits at its segment's edge (`engine.cue_views`). The tower sees a
    # segment's first and last tokens from one side only, and calls more false alarms there (about
    # twice as many on the first token, run 24; training notes, nineteenth session). 1: the model's own.
    impact_cue_views: int = 1


@dataclass(frozen=True)
class VAuraConfig:
    """A complete V-AURA model: visual tower, fusion transformer and codec."""

    name: str = "vaura"
    visual: VisualConfig = field(default_factory=VisualConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    fps: int = 25  # video frame rate the model expects
    window_segments: int = 4  # 16-frame segments per generation window (2.56 s)

    # --- derived sizes ---------------------------------------------------------------
    @property
    def n_codebooks(self) -> int:
        return self.codec.n_codebooks

    @property
    def vocab_size(self) -> int:
        return self.codec.codebook_size

    @property
    def special_token(self) -> int:
        """BOS / padding id: one past the codebook (1024 for the release)."""
        return self.codec.codebook_size

    @property
    def model_dim(self) -> int:
        return self.lm.video_dim + self.codec.latent_dim

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.lm.n_head

    @property
    def ffn_dim(self) -> int:
        hidden = int(2 * (4 * self.model_dim) / 3)
        m = self.lm.multiple_of
        return (hidden + m - 1) // m * m

    @property
    def segment_seconds(self) -> float:
        return self.visual.frames / self.fps

    @property
    def window_seconds(self) -> float:
        return self.window_segments * self.segment_seconds

    def frame_of_step(self, steps: Index) -> Index:
        """The video frame whose 1 / fps spans the time of each audio step: floor(step x hop x fps /
        sr), in exact integer arithmetic."""
        return steps * self.codec.hop_length * self.fps // self.codec.sample_rate  # type: ignore[operator]

    def first_step_of_frame(self, frames: Index) -> Index:
        """The first audio step whose time falls in each frame (inverse of `frame_of_step`):
        ceil(frame x sr / (hop x fps))."""
        num = self.codec.hop_length * self.fps
        return -(-frames * self.codec.sample_rate // num)  # type: ignore[operator]

    def video_token_of_step(self, steps: Index) -> Index:
        """The visual token whose frames span the time of each audio step (floor of a floor of
        integers: the same as one floor over hop x fps / (sr x tubelet))."""
        return self.frame_of_step(steps) // self.visual.tubelet  # type: ignore[operator]

    def first_step_of_video_token(self, tokens: Index) -> Index:
        """The first audio step whose time falls in each visual token (inverse of
        `video_token_of_step`): that of the token's first frame."""
        return self.first_step_of_frame(tokens * self.visual.tubelet)  # type: ignore[operator]

    @property
    def video_phases(self) -> int:
        """The most audio steps one visual token spans (7 at 86.13 Hz and 80 ms tokens)."""
        return self.first_step_of_video_token(1)

    @property
    def window_tokens(self) -> int:
        """Audio steps per window: ceil(window samples / hop), 221 for the release."""
        samples = round(self.window_seconds * self.codec.sample_rate)
        return -(-samples // self.codec.hop_length)

    def __post_init__(self) -> None:
        if self.model_dim % self.lm.n_head:
            raise ValueError(f"model dim {self.model_dim} is not divisible by {self.lm.n_head} heads")
        if self.head_dim % 2:
            raise ValueError("RoPE needs an even head dim")
        if self.visual.dim % self.visual.heads:
            raise ValueError("visual dim must be divisible by visual heads")
        expected = self.window_segments * self.visual.tokens_per_segment
        if self.lm.video_tokens != expected:
            raise ValueError(f"lm.video_tokens must be {expected} (window_segments x tokens/segment)")
        if self.window_tokens + self.n_codebooks > self.lm.block_size:
            raise ValueError("block_size too small for one window plus the codebook delays")
        if not 0 <= self.lm.video_lookahead < self.lm.video_tokens:
            raise ValueError(f"lm.video_lookahead must be 0 to {self.lm.video_tokens - 1}")
        lead = self.lm.video_lead_steps
        if lead is not None:
            if not 0 <= lead < self.window_tokens:
                raise ValueError(f"lm.video_lead_steps must be 0 to {self.window_tokens - 1}")
            if self.lm.video_lookahead:
                raise ValueError(
                    "lm.video_lookahead applies to position alignment only: use 0 with video_lead_steps"
                )
        elif self.lm.video_phase:
            raise ValueError("lm.video_phase needs time alignment (lm.video_lead_steps)")
        cues = self.lm.impact_cues
        if cues:
            if lead is None:
                raise ValueError("lm.impact_cues needs time alignment (lm.video_lead_steps)")
            if cues < 1 + self.visual.tubelet or (cues - 1) % self.visual.tubelet:
                raise ValueError(
                    f"lm.impact_cues must be 0 or 1 + materials x {self.visual.tubelet} frames, got {cues}"
                )
        if not self.lm.impact_cue_temperature > 0:
            raise ValueError(
                f"lm.impact_cue_temperature must be above 0, got {self.lm.impact_cue_temperature}"
            )
        views = self.lm.impact_cue_views
        if views < 1 or self.visual.frames % (views * self.visual.tubelet):
            raise ValueError(
                f"lm.impact_cue_views must divide a segment's {self.visual.frames // self.visual.tubelet} "
                f"visual tokens, got {views}"
            )
        if self.lm.impact_cue_span < 1:  # without cues it is unused, so switching cues off is one field
            raise ValueError(f"lm.impact_cue_span must be at least 1, got {self.lm.impact_cue_span}")

    # --- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAuraConfig:
        """Build from `to_dict` output; unknown keys are rejected so typos are not silent."""
        data = dict(data)
        visual = VisualConfig(**data.pop("visual", {}))
        lm = LMConfig(**data.pop("lm", {}))
        codec_d = dict(data.pop("codec", {}))
        for key in ("encoder_rates", "decoder_rates"):
            if key in codec_d:
                codec_d[key] = tuple(codec_d[key])
        codec = CodecConfig(**codec_d)
        return cls(visual=visual, lm=lm, codec=codec, **data)


def _small(name: str, *, visual_dim: int, lm_layers: int, video_dim: int, heads: int) -> VAuraConfig:
    """Tiny sizes with the release's token rate (hop 512 at 44.1 kHz) and 9 codebooks."""
    return VAuraConfig(
        name=name,
        visual=VisualConfig(img_size=32, patch_size=16, dim=visual_dim, depth=2, heads=2),
        lm=LMConfig(n_layer=lm_layers, n_head=heads, video_dim=video_dim, multiple_of=32),
        codec=CodecConfig(encoder_dim=4, decoder_dim=32, codebook_size=64),
    )


PRESETS: dict[str, VAuraConfig] = {
    "vaura": VAuraConfig(),
    # For unit tests: every code path of the release at a few thousand parameters.
    "test": _small("test", visual_dim=32, lm_layers=2, video_dim=32, heads=4),
    # The embedded default, trained on Foley World by `vaura train-tiny`: small enough to train on a
    # 2-core CPU in about an hour and to generate faster than real time there.
    "tiny": VAuraConfig(
        name="vaura-tiny",
        visual=VisualConfig(img_size=64, patch_size=16, dim=96, depth=2, heads=2),
        lm=LMConfig(
            n_layer=4,
            n_head=4,
            video_dim=64,
            multiple_of=32,
            video_lead_steps=2,
            impact_cues=9,
            impact_cue_span=12,
            impact_cue_temperature=0.4,
            impact_cue_views=2,
        ),
        codec=CodecConfig(encoder_dim=4, decoder_dim=64, codebook_size=128),
    ),
}


def preset(name: str) -> VAuraConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None

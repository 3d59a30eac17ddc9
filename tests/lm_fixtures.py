"""Small randomly initialised fusion transformers for generation tests."""

from __future__ import annotations

import dataclasses

import torch

from vaura_core.model.config import preset
from vaura_core.model.lm import FusionLM


def random_lm(
    seed: int = 0,
    std: float = 0.2,
    lookahead: int = 0,
    lead_steps: int | None = None,
    phase: bool = False,
    cues: int = 0,
    cue_span: int = 1,
) -> FusionLM:
    """A `test`-preset FusionLM with weights large enough to give peaked, input-dependent logits;
    `lead_steps` switches it to time alignment, `phase` adds the step's phase in its visual token,
    `cues` impact cues of that many classes (marking `cue_span` steps up to each frame's first)."""
    torch.manual_seed(seed)
    cfg = preset("test")
    lm_cfg = dataclasses.replace(
        cfg.lm,
        video_lookahead=lookahead,
        video_lead_steps=lead_steps,
        video_phase=phase,
        impact_cues=cues,
        impact_cue_span=cue_span,
    )
    cfg = dataclasses.replace(cfg, lm=lm_cfg)
    lm = FusionLM(cfg).eval()
    with torch.no_grad():
        for p in lm.parameters():
            p.normal_(0.0, std)
        lm.cls_embeddings.uncond_embedding.normal_()
    return lm


def random_features(lm: FusionLM, batch: int = 1, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, lm.cfg.lm.video_tokens, lm.cfg.visual.dim, generator=g)


def spy_on_windows(monkeypatch, keyword: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record (features, the `keyword` argument) of every `generate_window` call the engine makes."""
    from vaura_core.engine import engine as engine_mod

    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = engine_mod.generate_window

    def spy(lm, features, n, **kw):
        seen.append((features.clone(), kw[keyword].clone()))
        return real(lm, features, n, **kw)

    monkeypatch.setattr(engine_mod, "generate_window", spy)
    return seen

"""The complete V-AURA model: visual tower, fusion transformer and codec under the release's names.

State-dict keys equal the released checkpoint's (shared/reference/vaura-state-dict.txt) with weight
norm folded: every `X.weight_g` / `X.weight_v` pair is one `X.weight`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaura_core.model.codec import Codec
from vaura_core.model.config import VAuraConfig
from vaura_core.model.lm import FusionLM
from vaura_core.model.visual import MotionFormer


class VAura(nn.Module):
    def __init__(self, cfg: VAuraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual_feature_extractor = MotionFormer(cfg.visual)
        self.sampler = FusionLM(cfg)
        self.audio_encoder = Codec(cfg.codec)

    @property
    def device(self) -> torch.device:
        return self.sampler.norm.weight.device

    @torch.inference_mode()
    def encode_segments(self, segments: Tensor, chunk: int | None = None) -> Tensor:
        """(N, 3, F, H, W) segments in [-1, 1] -> (N, tokens_per_segment, feat_dim) features.

        Segments are independent, so a clip is encoded once and windows slice the result.
        """
        ref = self.visual_feature_extractor.cls_token
        segments = segments.to(device=ref.device, dtype=ref.dtype)
        return self.visual_feature_extractor.encode_segments(segments, chunk=chunk)


def build_model(
    cfg: VAuraConfig, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> VAura:
    """Construct a model; on the meta device nothing is allocated (load with assign=True)."""
    with torch.device(device):
        model = VAura(cfg)
    if dtype is not None:
        model.to(dtype)
    return model.eval()

"""Adapter over the `dac` package (descript-audio-codec 1.0.0): codes <-> 44.1 kHz waveform.

V-AURA predicts 9 codebooks of the 44 kHz "8 kbps" DAC (spec: vaura.md, section 7). This module is
the only place that touches `dac`, so the codec library stays swappable.

- The DAC convs use legacy weight norm; `Codec` folds it into plain weights, so its state dict holds
  `X.weight` where the checkpoint has `X.weight_g`/`X.weight_v` (see `fold_weight_norm`).
- The released DAC weights are fp16. Half-precision convs on a CPU are extremely slow, so on the CPU
  decode and encode run on float32 copies of the weights; on CUDA they run in the weights' dtype.
- Decoding and encoding work in overlapping chunks of tokens, which bounds memory for long clips.
  The overlap is at least the network's receptive field, so chunked results equal one-shot results
  up to float rounding.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from vaura_core.model.config import CodecConfig
from vaura_core.model.weight_norm import fold_weight_norm, has_weight_norm

if TYPE_CHECKING:
    import dac

__all__ = [
    "DEFAULT_DECODE_CHUNK_TOKENS",
    "DEFAULT_ENCODE_CHUNK_TOKENS",
    "Codec",
    "InferenceSnake",
    "fold_weight_norm",
]

# Tokens per chunk (86.13 tokens/s at 44.1 kHz). Measured on the 44.1 kHz DAC, fp32 on a CPU: a
# one-shot decode needs about 1.2 MB more per token (about 6 GB for 60 s), while 512-token chunks
# decode 60 s with a peak of 0.8 GB above the loaded model (an encode of 12 s: 0.4 GB). The overlaps
# add 5 % of work at this size.
DEFAULT_DECODE_CHUNK_TOKENS = 512
DEFAULT_ENCODE_CHUNK_TOKENS = 512

_HALF_DTYPES = (torch.float16, torch.bfloat16)
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _import_dac() -> ModuleType:
    # dac 1.0.0 and audiotools emit deprecation warnings at import (torch.jit.script, pkg_resources)
    # that the user cannot act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import dac
    return dac


def _remove_weight_norm(model: nn.Module) -> None:
    """Fold every legacy weight-norm hook of `model` into a plain `weight` parameter, in place."""
    for module in model.modules():
        if "weight_g" in dict(module.named_parameters(recurse=False)):
            torch.nn.utils.remove_weight_norm(module, "weight")


class InferenceSnake(nn.Module):
    """DAC's Snake activation, x + sin(alpha x)^2 / (alpha + 1e-9), with the same `alpha` parameter.

    Without autograd it works in place on one temporary, where DAC's scripted `snake` allocates a
    tensor per operation: on vaura-tiny's decoder Snake took 46 % of a CPU decode, and in place it
    runs 3-5x faster on the long activations of the last layers (docs/benchmarks.md). Same operations
    in the same order, so the result is bit-identical; with gradients it is DAC's out-of-place formula.
    """

    def __init__(self, alpha: nn.Parameter) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(shape[0], shape[1], -1)
        inverse = (self.alpha + 1e-9).reciprocal()
        if torch.is_grad_enabled() and (x.requires_grad or self.alpha.requires_grad):
            return (x + inverse * torch.sin(self.alpha * x).pow(2)).reshape(shape)
        out = torch.mul(x, self.alpha).sin_().square_().mul_(inverse)
        return out.add_(x).reshape(shape)


def _use_inference_snake(model: nn.Module, snake: type[nn.Module]) -> None:
    """Swap every `snake` (dac's Snake1d) of `model` for `InferenceSnake`, keeping its parameter (same
    state-dict keys)."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, snake):
                setattr(module, name, InferenceSnake(child.alpha))


def _padding(layer: nn.Conv1d | nn.ConvTranspose1d) -> int:
    pad = layer.padding
    if isinstance(pad, str):  # "same" / "valid" (only possible for Conv1d)
        return layer.dilation[0] * (layer.kernel_size[0] - 1) // 2 if pad == "same" else 0
    return pad[0]


def _reach_tokens(layers: Iterable[nn.Module], samples_per_token: float) -> int:
    """Upper bound, in tokens, of how far a value can move through `layers` (in data-flow order).

    `samples_per_token` is the time resolution at the first layer's input (1 for codec latents,
    hop for audio). Residual branches reach no further than the chain of all their convs, and
    every other layer of DAC (Snake, Tanh, the quantizer) is pointwise in time.
    """
    reach = 0.0
    rate = float(samples_per_token)
    for layer in layers:
        if isinstance(layer, nn.ConvTranspose1d):
            k, s, d, p = layer.kernel_size[0], layer.stride[0], layer.dilation[0], _padding(layer)
            # An output sample o reads inputs within (max(p, span - p) / s) + 1 of o / s.
            reach += (math.ceil(max(p, d * (k - 1) - p) / s) + 1) / rate
            rate *= s
        elif isinstance(layer, nn.Conv1d):
            k, s, d, p = layer.kernel_size[0], layer.stride[0], layer.dilation[0], _padding(layer)
            reach += max(p, d * (k - 1) - p) / rate
            rate /= s
    return math.ceil(reach)


class _CodesToWave(nn.Module):
    """DAC's decode path as one module, so it can run on substituted (float32) weights."""

    def __init__(self, model: dac.DAC) -> None:
        super().__init__()
        self.quantizer = model.quantizer
        self.decoder = model.decoder

    def forward(self, codes: Tensor) -> Tensor:
        z, _, _ = self.quantizer.from_codes(codes)
        return self.decoder(z)[:, 0]


class _WaveToCodes(nn.Module):
    """DAC's encode path (encoder + residual VQ with every codebook) as one module."""

    def __init__(self, model: dac.DAC) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.quantizer = model.quantizer

    def forward(self, wave: Tensor) -> Tensor:
        _, codes, _, _, _ = self.quantizer(self.encoder(wave[:, None, :]), None)
        return codes


_SWAP_LOCK = threading.Lock()


def _runner(path: nn.Module, weights_dtype: torch.dtype, device: torch.device) -> Callable[[Tensor], Tensor]:
    """Call `path`, on float32 copies of its weights when they are half precision on the CPU."""
    if device.type != "cpu" or weights_dtype not in _HALF_DTYPES:
        return path
    # Casting the weights takes under a second; fp16 convs on a CPU are 25-140x slower than fp32.
    state = {name: t.float() for name, t in [*path.named_parameters(), *path.named_buffers()]}

    def run(x: Tensor) -> Tensor:
        with _SWAP_LOCK:  # functional_call swaps the module's tensors while it runs
            return torch.func.functional_call(path, state, (x,))

    return run


def _run_chunked(
    run: Callable[[Tensor], Tensor],
    source: Tensor,
    out: Tensor,
    *,
    n_tokens: int,
    in_per_token: int,
    out_per_token: int,
    chunk_tokens: int | None,
    overlap: int,
) -> None:
    """Fill `out` with `run(source)`, working on overlapping windows along the last dim.

    Token i of the result covers `source[..., i*in_per_token:(i+1)*in_per_token]` and
    `out[..., i*out_per_token:(i+1)*out_per_token]`; each window adds `overlap` tokens of context on
    either side and keeps only its own middle.
    """
    step = n_tokens if chunk_tokens is None else chunk_tokens
    for start in range(0, n_tokens, step):
        stop = min(start + step, n_tokens)
        lo, hi = max(0, start - overlap), min(n_tokens, stop + overlap)
        piece = run(source[..., lo * in_per_token : hi * in_per_token])
        keep = piece[..., (start - lo) * out_per_token : (stop - lo) * out_per_token]
        out[..., start * out_per_token : stop * out_per_token] = keep


def _check_chunking(chunk_tokens: int | None, overlap: int | None) -> None:
    if chunk_tokens is not None and (isinstance(chunk_tokens, bool) or int(chunk_tokens) < 1):
        raise ValueError(f"chunk_tokens must be a positive number of tokens or None, got {chunk_tokens!r}")
    if overlap is not None and int(overlap) < 0:
        raise ValueError(f"overlap must be >= 0 tokens, got {overlap!r}")


class Codec(nn.Module):
    """The 44.1 kHz Descript Audio Codec, frozen, with weight norm folded into plain weights.

    `model` is a `dac.DAC`; its state dict matches the checkpoint's `audio_encoder.model.*` entries
    after `fold_weight_norm` (so `Codec`'s own keys are the checkpoint's minus `audio_encoder.`).
    Build it on the meta device and load real weights with `load_state_dict(..., assign=True)`, or
    use `Codec.from_state_dict`.
    """

    model: dac.DAC

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dac_mod = _import_dac()
        with warnings.catch_warnings():
            # DAC builds its convs with the deprecated torch.nn.utils.weight_norm; we remove it below.
            warnings.simplefilter("ignore", FutureWarning)
            model = dac_mod.DAC(**cfg.dac_kwargs())
        _remove_weight_norm(model)
        _use_inference_snake(model, dac_mod.nn.layers.Snake1d)
        model.requires_grad_(False)
        self.model = model
        self.eval()
        self._decode_reach = _reach_tokens(model.decoder.modules(), 1)
        self._encode_reach = _reach_tokens(model.encoder.modules(), cfg.hop_length)

    @classmethod
    def from_state_dict(
        cls,
        cfg: CodecConfig,
        state_dict: dict[str, Tensor],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Codec:
        """Build on the meta device and adopt `state_dict` (keys of `dac.DAC`, weight-normed or folded).

        The tensors are used as they are (no copy) unless `device` or `dtype` asks for a move or cast.
        Missing, unexpected or mis-shaped entries raise ValueError naming them.
        """
        if has_weight_norm(state_dict):
            state_dict = fold_weight_norm(state_dict)
        with torch.device("meta"):
            codec = cls(cfg)
        expected = codec.model.state_dict()
        problems = []
        if missing := [key for key in expected if key not in state_dict]:
            problems.append(f"missing {_first(missing)}")
        if unexpected := [key for key in state_dict if key not in expected]:
            problems.append(f"unexpected {_first(unexpected)}")
        misshaped = [
            f"{key} {tuple(state_dict[key].shape)} instead of {tuple(ref.shape)}"
            for key, ref in expected.items()
            if key in state_dict and state_dict[key].shape != ref.shape
        ]
        if misshaped:
            problems.append(f"wrong shape: {_first(misshaped)}")
        if problems:
            raise ValueError("DAC weights do not fit the codec config: " + "; ".join(problems))
        codec.model.load_state_dict(state_dict, assign=True)
        codec.model.requires_grad_(False)
        if device is not None or dtype is not None:
            codec.to(device=device, dtype=dtype)
        return codec

    # --- sizes ---------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def hop_length(self) -> int:
        """Audio samples per codec token (512 at 44.1 kHz)."""
        return self.cfg.hop_length

    @property
    def n_codebooks(self) -> int:
        return self.cfg.n_codebooks

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    @property
    def frame_rate(self) -> float:
        """Codec tokens per second (86.13 at 44.1 kHz)."""
        return self.cfg.frame_rate

    @property
    def decode_overlap(self) -> int:
        """Default context tokens on each side of a decode chunk: the decoder's receptive field."""
        return self._decode_reach

    @property
    def encode_overlap(self) -> int:
        """Default context tokens on each side of an encode chunk: the encoder's receptive field."""
        return self._encode_reach

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- decode --------------------------------------------------------------------------
    def decode(
        self,
        codes: Tensor,
        *,
        chunk_tokens: int | None = DEFAULT_DECODE_CHUNK_TOKENS,
        overlap: int | None = None,
    ) -> Tensor:
        """(B, Q, T) integer codes -> (B, T * hop) float32 waveform at `sample_rate`, on `device`.

        Q may be fewer than `n_codebooks` (coarser audio). Long inputs are decoded `chunk_tokens`
        at a time (None: in one call) with `overlap` tokens of context on each side (None: the
        decoder's receptive field, which makes chunking exact up to float rounding).
        """
        self._check_codes(codes)
        _check_chunking(chunk_tokens, overlap)
        batch, _, n_tokens = codes.shape
        device = self.device
        # Allocated outside inference mode, so callers get an ordinary tensor they may edit in place.
        out = torch.zeros(batch, n_tokens * self.hop_length, dtype=torch.float32, device=device)
        if n_tokens == 0:
            return out
        with torch.inference_mode():
            run = _runner(_CodesToWave(self.model), self.dtype, device)
            _run_chunked(
                run,
                codes.to(device=device, dtype=torch.long),
                out,
                n_tokens=n_tokens,
                in_per_token=1,
                out_per_token=self.hop_length,
                chunk_tokens=chunk_tokens,
                overlap=self._decode_reach if overlap is None else int(overlap),
            )
        return out

    def _check_codes(self, codes: Tensor) -> None:
        if not isinstance(codes, Tensor):
            raise ValueError(f"codes must be a tensor, got {type(codes).__name__}")
        if codes.dim() != 3 or codes.dtype not in _INT_DTYPES:
            raise ValueError(
                f"codes must be a (batch, codebooks, time) integer tensor, got shape {tuple(codes.shape)} "
                f"and dtype {codes.dtype}"
            )
        n_q = codes.shape[1]
        if not 1 <= n_q <= self.n_codebooks:
            raise ValueError(f"codes have {n_q} codebooks; this codec decodes 1 to {self.n_codebooks}")
        if codes.numel() == 0:
            return
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= self.codebook_size:
            bad = int(low) if low < 0 else high
            where = torch.nonzero(codes == bad)[0].tolist()
            hint = (
                f" ({self.codebook_size} is the special/padding token: undo the delayed pattern and "
                "drop the special columns before decoding)"
                if bad == self.codebook_size
                else ""
            )
            raise ValueError(
                f"codes must lie in [0, {self.codebook_size}); found {bad} at "
                f"(batch {where[0]}, codebook {where[1]}, step {where[2]}){hint}"
            )

    # --- encode --------------------------------------------------------------------------
    def encode(
        self,
        wave: Tensor,
        sample_rate: int,
        *,
        chunk_tokens: int | None = DEFAULT_ENCODE_CHUNK_TOKENS,
        overlap: int | None = None,
    ) -> Tensor:
        """(B, N) or (N,) float waveform at `sample_rate` -> (B, Q, ceil(N' / hop)) long codes.

        N' is the length after resampling to the codec's rate. Like DAC's `preprocess`, the audio
        is right-padded with zeros to a whole number of tokens. Every codebook is used. Chunking
        works as in `decode`; near-tie codebook choices may differ from a one-shot encode where
        float rounding differs, which is immaterial for prompting.
        """
        wave = self._check_wave(wave, sample_rate)
        sample_rate = int(sample_rate)
        _check_chunking(chunk_tokens, overlap)
        device = self.device
        with torch.inference_mode():
            wave = wave.to(device=device, dtype=torch.float32)
            if sample_rate != self.sample_rate:
                import torchaudio.functional as taf

                wave = taf.resample(wave, sample_rate, self.sample_rate)
            n_tokens = math.ceil(wave.shape[-1] / self.hop_length)
            wave = nn.functional.pad(wave, (0, n_tokens * self.hop_length - wave.shape[-1]))
            run = _runner(_WaveToCodes(self.model), self.dtype, device)
            compute_dtype = torch.float32 if device.type == "cpu" else self.dtype
            codes = torch.empty(wave.shape[0], self.n_codebooks, n_tokens, dtype=torch.long, device=device)
            _run_chunked(
                run,
                wave.to(compute_dtype),
                codes,
                n_tokens=n_tokens,
                in_per_token=self.hop_length,
                out_per_token=1,
                chunk_tokens=chunk_tokens,
                overlap=self._encode_reach if overlap is None else int(overlap),
            )
        return codes.clone()  # an ordinary tensor, not an inference-mode one

    def _check_wave(self, wave: Tensor, sample_rate: int) -> Tensor:
        if not isinstance(wave, Tensor) or not wave.dtype.is_floating_point:
            kind = wave.dtype if isinstance(wave, Tensor) else type(wave).__name__
            raise ValueError(f"wave must be a floating-point tensor, got {kind}")
        if wave.dim() not in (1, 2) or wave.shape[-1] == 0 or wave.shape[0] == 0:
            raise ValueError(f"wave must have shape (samples,) or (batch, samples), got {tuple(wave.shape)}")
        if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        if not bool(torch.isfinite(wave).all()):
            raise ValueError("wave contains NaN or infinite samples")
        return wave if wave.dim() == 2 else wave[None]


def _first(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")

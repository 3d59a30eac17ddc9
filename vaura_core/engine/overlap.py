"""Codec decoding on a worker thread while generation goes on.

Generation fills a clip's tokens window by window, and once every codebook of a timestep is sampled it
never changes (`generate_window` reports those as it goes). `BackgroundDecode` decodes each finished
stretch as soon as the decoder's context around it is final, so by the time the last window is sampled
most of the audio exists. The decoder is convolutional with a finite reach: a stretch decoded with that
many final tokens on each side is what decoding the whole sequence gives there (up to float rounding, as
`Codec.decode`'s own chunks). A small model's decode steps are bound by per-call overhead, so the
codec's long convolutions fit beside them on a 2-core CPU (docs/benchmarks.md: continuous generation of
the 10 s demo clip waits 0.10-0.17 s for its codec instead of 0.6-0.8 s).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType

import numpy as np
import torch
from torch import Tensor

from vaura_core.engine.device import torch_threads
from vaura_core.model.codec import Codec

# Smaller pieces spend too much of their time on the decoder's context; larger ones leave more to
# decode after the last step (with parallel chains each stretch's last window ends in the last round).
MIN_PIECE_TOKENS = 48
LENGTH_STEP = 16  # decoded lengths (piece and context) are multiples of this where the clip allows


class DecodePool(ThreadPoolExecutor):
    """The one worker thread that decodes pieces, with `threads` torch threads of its own."""

    def __init__(self, threads: int) -> None:
        self.threads = max(1, int(threads))
        super().__init__(
            max_workers=1,
            thread_name_prefix="vaura-decode",
            initializer=torch.set_num_threads,
            initargs=(self.threads,),
        )


def decode_pool(threads: int | None = None) -> DecodePool:
    """The worker to share among the decoders of one request (default threads: this thread's count
    less one, the core a small model's decode steps keep, `generation.generate`)."""
    return DecodePool(max(1, torch.get_num_threads() - 1) if threads is None else threads)


def _done() -> Future[None]:
    piece: Future[None] = Future()
    piece.set_result(None)
    return piece


class BackgroundDecode:
    """The audio of (B, Q, T) `codes`, decoded piece by piece as their tokens become final.

    `advance(n)` promises that tokens [0, n) will not change again; `result()` waits for the pieces,
    decodes the rest and returns (B, T * hop) float32 samples. Pieces copy their tokens when they are
    queued, so the caller may keep writing later tokens into `codes`. Tokens before `start` are never
    decoded (their samples stay zero): audio nobody will hear. Use it as a context manager:
    leaving early (an error, a cancel) drops the queued pieces and waits for the running one.
    Decoders of one request share a one-thread `pool` so their pieces run one after another beside
    the generation (without one, each has its own thread).
    """

    def __init__(
        self,
        codec: Codec,
        codes: Tensor,
        min_piece: int = MIN_PIECE_TOKENS,
        pool: DecodePool | None = None,
        start: int = 0,
    ) -> None:
        if codes.dim() != 3:
            raise ValueError(f"codes must be (batch, codebooks, time), got shape {tuple(codes.shape)}")
        self.codec = codec
        self.codes = codes
        self.n_tokens = codes.shape[-1]
        self.reach = codec.decode_overlap
        self.min_piece = max(1, int(min_piece))
        self.hop = codec.hop_length
        self.out = np.zeros((codes.shape[0], self.n_tokens * self.hop), dtype=np.float32)
        if not 0 <= start < self.n_tokens:
            raise ValueError(f"start {start} is outside the {self.n_tokens} tokens")
        self.decoded = int(start)  # tokens [0, decoded) are queued or done (before `start`: silent)
        self._own_pool = pool is None
        self._pool = pool or decode_pool()
        self._pending: list[tuple[Future[None], tuple[Tensor, int, int, int]]] = []
        self.busy_s = 0.0  # time spent decoding, by the worker and by `result`'s caller
        self.wait_s = 0.0  # time `result` waited: the decoding generation did not hide

    def __enter__(self) -> BackgroundDecode:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for piece, _ in self._pending:
            piece.cancel()  # only those not started yet
        wait([piece for piece, _ in self._pending])
        if self._own_pool:
            self._pool.shutdown(wait=True)

    def advance(self, final: int) -> None:
        """Tokens [0, final) are final: queue every piece whose decoder context lies inside them."""
        final = min(int(final), self.n_tokens)
        stop = self.n_tokens if final == self.n_tokens else final - self.reach
        if stop - self.decoded >= self.min_piece or (stop == self.n_tokens > self.decoded):
            self._queue(self.decoded, stop)

    def result(self) -> np.ndarray:
        """All samples: the queued pieces, then the rest decoded now (every token must be final).

        The caller would only wait, so it decodes the pieces the worker has not started yet itself,
        beside the worker, with the cores the worker leaves it.
        """
        t0 = time.perf_counter()
        if self.decoded < self.n_tokens:
            self._queue(self.decoded, self.n_tokens)
        with torch_threads(torch.get_num_threads() - self._pool.threads):
            for i, (piece, args) in enumerate(self._pending):
                if piece.cancel():  # not started: decode it here, and record it as done
                    self._decode(*args)
                    self._pending[i] = (_done(), args)
        for piece, _ in self._pending:
            piece.result()  # re-raises a worker's error here
        self.wait_s += time.perf_counter() - t0
        return self.out

    def _queue(self, start: int, stop: int) -> None:
        lo, hi = max(0, start - self.reach), min(self.n_tokens, stop + self.reach)
        # More (final) context before the piece rounds its length up to a multiple of LENGTH_STEP:
        # the convolution backend prepares every new input length anew (about 30-40 ms each for
        # vaura-tiny's decoder on this CPU), so a few lengths reused beat many exact ones.
        lo = max(0, lo - (-(hi - lo)) % LENGTH_STEP)
        tokens = self.codes[..., lo:hi].clone()
        if int(tokens.min()) < 0:
            raise RuntimeError(f"tokens {lo}..{hi} are not all generated yet")
        self.decoded = stop
        args = (tokens, start - lo, start, stop)
        self._pending.append((self._pool.submit(self._decode, *args), args))

    def _decode(self, tokens: Tensor, skip: int, start: int, stop: int) -> None:
        # Row by row: a convolution's rounding may depend on the batch size, and a take must be the
        # same samples whether its seed was generated alone or among variations.
        t0 = time.perf_counter()
        for b in range(tokens.shape[0]):
            wav = self.codec.decode(tokens[b : b + 1].to(self.codec.device), chunk_tokens=None)
            keep = wav[0, skip * self.hop : (skip + stop - start) * self.hop]
            self.out[b, start * self.hop : stop * self.hop] = keep.float().cpu().numpy()
        self.busy_s += time.perf_counter() - t0

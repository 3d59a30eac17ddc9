"""Decoding finished tokens on a worker thread while later ones are generated (`engine.overlap`)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from tests.test_codec import SMALL, weight_normed_dac
from vaura_core.engine.overlap import LENGTH_STEP, BackgroundDecode, decode_pool
from vaura_core.model.codec import Codec


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.from_state_dict(SMALL, weight_normed_dac(SMALL, seed=3).state_dict())


def _codes(codec: Codec, n: int, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    return torch.randint(0, codec.cfg.codebook_size, (batch, codec.cfg.n_codebooks, n), generator=g)


@pytest.mark.parametrize("steps", [[55, 110, 165, 220, 300], [300], [40, 41, 299, 300]])
def test_pieces_decoded_as_tokens_become_final_give_the_whole_decode(codec: Codec, steps: list[int]):
    full = _codes(codec, 300)
    filling = torch.full_like(full, -1)
    with BackgroundDecode(codec, filling, min_piece=32) as bg:
        done = 0
        for final in steps:  # as generation writes window after window
            filling[..., done:final] = full[..., done:final]
            bg.advance(final)
            done = final
        audio = bg.result()
    want = codec.decode(full, chunk_tokens=None).numpy()
    assert audio.shape == want.shape
    # each piece reads the decoder's whole reach of final tokens on both sides
    torch.testing.assert_close(torch.from_numpy(audio), torch.from_numpy(want), rtol=1e-4, atol=1e-5)


def test_tokens_before_start_are_never_decoded(codec: Codec):
    full = _codes(codec, 300)
    with BackgroundDecode(codec, full, min_piece=32, start=70) as bg:
        for final in (100, 200, 300):
            bg.advance(final)
        audio = bg.result()
    hop = codec.hop_length
    assert not audio[:, : 70 * hop].any()
    want = torch.from_numpy(codec.decode(full, chunk_tokens=None).numpy()[:, 70 * hop :])
    torch.testing.assert_close(torch.from_numpy(audio[:, 70 * hop :]), want, rtol=1e-4, atol=1e-5)
    for bad in (-1, 300):
        with pytest.raises(ValueError, match="outside"):
            BackgroundDecode(codec, full, start=bad)


def test_decoded_lengths_come_in_few_sizes(codec: Codec, monkeypatch):
    """Pieces take more context before them so the decoder sees lengths in steps of LENGTH_STEP (each
    new length costs the convolution backend a fresh set-up), and the audio is unchanged."""
    full = _codes(codec, 500)
    lengths: list[int] = []
    decode = codec.decode

    def spy(tokens: torch.Tensor, **kw) -> torch.Tensor:
        lengths.append(tokens.shape[-1])
        return decode(tokens, **kw)

    monkeypatch.setattr(codec, "decode", spy)
    with BackgroundDecode(codec, full, min_piece=20, start=37) as bg:
        for final in (70, 93, 150, 171, 230, 301, 377, 460, 500):
            bg.advance(final)
        audio = bg.result()
    assert len(lengths) >= 2 * 8 and all(n % LENGTH_STEP == 0 for n in lengths), lengths
    want = torch.from_numpy(decode(full, chunk_tokens=None).numpy()[:, 37 * codec.hop_length :])
    torch.testing.assert_close(
        torch.from_numpy(audio[:, 37 * codec.hop_length :]), want, rtol=1e-4, atol=1e-5
    )


def test_pieces_start_before_the_end_and_never_read_unfinished_tokens(codec: Codec):
    full = _codes(codec, 400, batch=1)
    filling = torch.full_like(full, -1)
    with BackgroundDecode(codec, filling, min_piece=64) as bg:
        filling[..., :200] = full[..., :200]
        bg.advance(200)
        assert bg.decoded == 200 - codec.decode_overlap  # queued while tokens 200.. are still unknown
        bg.advance(210)  # too little new for a piece of its own
        assert bg.decoded == 200 - codec.decode_overlap
        with pytest.raises(RuntimeError, match="not all generated"):
            bg.result()  # the caller broke its promise: tokens 200.. are still -1


def test_leaving_early_drops_queued_pieces(codec: Codec, monkeypatch: pytest.MonkeyPatch):
    calls: list[int] = []
    decode = codec.decode

    def slow_decode(tokens: torch.Tensor, **kw) -> torch.Tensor:
        calls.append(tokens.shape[-1])
        time.sleep(0.05)
        return decode(tokens, **kw)

    monkeypatch.setattr(codec, "decode", slow_decode)

    def cancelled_generation() -> None:
        with BackgroundDecode(codec, _codes(codec, 600, batch=1), min_piece=16) as bg:
            for final in range(100, 600, 50):
                bg.advance(final)
            assert len(bg._pending) == 10
            raise KeyboardInterrupt  # a cancel mid-generation: nothing waits for the rest

    with pytest.raises(KeyboardInterrupt):
        cancelled_generation()
    assert 1 <= len(calls) < 10  # the running piece finished, the queued ones were dropped


def test_a_rows_samples_do_not_depend_on_the_other_rows(codec: Codec):
    full = _codes(codec, 260, batch=3)
    with BackgroundDecode(codec, full, min_piece=64) as bg:
        bg.advance(150)
        batch = bg.result()
    with BackgroundDecode(codec, full[1:2], min_piece=64) as bg:
        bg.advance(150)
        alone = bg.result()
    assert (batch[1] == alone[0]).all()  # bit for bit: a seed gives the same take in any batch


def test_decoders_sharing_a_pool_run_their_pieces_on_its_one_thread(codec: Codec, monkeypatch):
    threads: set[str] = set()
    decode = codec.decode

    def spy(tokens: torch.Tensor, **kw) -> torch.Tensor:
        threads.add(threading.current_thread().name)
        return decode(tokens, **kw)

    monkeypatch.setattr(codec, "decode", spy)
    a, b = _codes(codec, 200, batch=1), _codes(codec, 150, batch=1)
    with decode_pool() as pool:
        with (
            BackgroundDecode(codec, a, min_piece=32, pool=pool) as da,
            BackgroundDecode(codec, b, min_piece=32, pool=pool) as db,
        ):
            da.advance(120)
            db.advance(100)
            got = da.result(), db.result()

        def cancelled() -> None:
            with BackgroundDecode(codec, a, pool=pool) as dc:
                dc.advance(150)
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            cancelled()
        assert pool.submit(lambda: 7).result() == 7  # a decoder leaving early leaves the shared pool open
    # The pool's one worker, and the caller for pieces the worker had not started when it waited.
    workers = {t for t in threads if t.startswith("vaura-decode")}
    assert len(workers) == 1 and threads <= workers | {threading.current_thread().name}
    for codes, audio in zip((a, b), got, strict=True):
        want = decode(codes, chunk_tokens=None).numpy()
        torch.testing.assert_close(torch.from_numpy(audio), torch.from_numpy(want), rtol=1e-4, atol=1e-5)


def test_the_decode_pool_leaves_a_core_to_the_decode_steps():
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with decode_pool() as pool:
            assert pool.submit(torch.get_num_threads).result() == 2
        with decode_pool(threads=1) as pool:
            assert pool.submit(torch.get_num_threads).result() == 1
        assert torch.get_num_threads() == 3  # the caller's own count is untouched
    finally:
        torch.set_num_threads(before)


def test_the_caller_decodes_the_pieces_the_worker_has_not_started(codec: Codec, monkeypatch):
    where: list[str] = []
    decode = codec.decode
    started = threading.Event()

    def spy(tokens: torch.Tensor, **kw) -> torch.Tensor:
        name = threading.current_thread().name
        where.append(name)
        if name.startswith("vaura-decode"):
            started.set()
            time.sleep(0.3)  # a busy worker
        return decode(tokens, **kw)

    monkeypatch.setattr(codec, "decode", spy)
    full = _codes(codec, 400, batch=1)
    with decode_pool(threads=1) as pool, BackgroundDecode(codec, full, min_piece=32, pool=pool) as bg:
        for final in (100, 200, 300):
            bg.advance(final)
        assert started.wait(10)  # on a busy machine the worker may take a while to pick up a piece
        audio = bg.result()
        calls = len(where)
        assert bg.result() is audio and len(where) == calls  # asking again decodes nothing twice
    assert where[0].startswith("vaura-decode") and threading.current_thread().name in where
    want = decode(full, chunk_tokens=None).numpy()
    torch.testing.assert_close(torch.from_numpy(audio), torch.from_numpy(want), rtol=1e-4, atol=1e-5)

"""Whole-clip visual features: decoding runs ahead on a thread, the numbers are those of one pass."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from tests.media_factory import make_video
from vaura_core.engine import features as features_mod
from vaura_core.engine.features import compute_clip_features
from vaura_core.errors import Cancelled
from vaura_core.generation.generate import CancelToken
from vaura_core.media.errors import MediaError
from vaura_core.media.frames import model_segments
from vaura_core.media.probe import probe
from vaura_core.model.config import preset
from vaura_core.model.vaura import build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(preset("test")).eval()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("feat") / "clip.mp4", duration=7.0, size=(64, 48))


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("vaura-frames")]


def test_features_are_those_of_encoding_every_window_in_turn(model, clip):
    info = probe(clip)
    seen, timings = [], {}
    got = compute_clip_features(model, info, progress=seen.append, timings=timings)
    with torch.inference_mode():
        want = torch.cat([model.encode_segments(b).float() for b in model_segments(info, model.cfg)])
    n = want.shape[0]
    assert torch.equal(got.features[:n], want) and got.duration == info.duration
    assert [round(p.fraction, 6) for p in seen] == sorted(round(p.fraction, 6) for p in seen)
    assert set(timings) == {"decode", "features"} and timings["features"] > 0
    assert not _reader_threads()


def test_cancel_and_errors_stop_the_reader(model, clip, monkeypatch):
    token = CancelToken()
    with pytest.raises(Cancelled):
        compute_clip_features(model, clip, cancel=token, progress=lambda _p: token.cancel())
    assert not _reader_threads()

    def broken(info, cfg):
        yield from [next(model_segments(info, cfg))]
        raise MediaError(Path(info.path), "the file is truncated or corrupt (test)")

    monkeypatch.setattr(features_mod, "model_segments", broken)
    with pytest.raises(MediaError, match="truncated or corrupt"):
        compute_clip_features(model, clip)
    assert not _reader_threads()

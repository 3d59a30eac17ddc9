"""`vaura bench` runs and reports every stage (it measures speed; nothing here asserts a speed)."""

import json
import os
from pathlib import Path

from tests.media_factory import make_video
from tests.model_fixtures import install_random_model
from vaura_core.cli import main


def test_engine_bench_reports_cached_and_uncached(capsys):
    assert main(["bench", "--preset", "test", "--tokens", "24", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["tokens"] == 24
    assert res["window_cached_s"] > 0 and res["window_uncached_s"] > 0
    assert res["speedup_vs_uncached"] == res["window_uncached_s"] / res["window_cached_s"]
    assert res["peak_memory_mb"] > 0 and res["decode_tokens_per_s"] > 0


def test_clip_bench_reports_each_stage(tmp_path, capsys):
    install_random_model(Path(os.environ["VAURA_HOME"]), "bench-test")
    clip = make_video(tmp_path / "c.mp4", fps=25, duration=1.0, size=(64, 48))
    assert main(["bench", "--model", "bench-test", "--clip", str(clip), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["stages"]) == {"decode", "features", "generation", "codec", "export"}
    assert 0.9 * res["total_s"] <= sum(res["stages"].values()) <= res["total_s"]
    assert res["clip_seconds"] == 1.0
    assert 0 <= res["codec_overlapped_s"] < res["total_s"]

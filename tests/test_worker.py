"""The engine thread with a real QThread, a random-weight model and a real clip.

Every test that loads a model gets its own host (and thread) and shuts it down; the conftest guard
fails a test that leaves the thread running.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer

from app.requests import GenerateRequest, RegenerateRequest
from app.worker import GIL_SWITCH_INTERVAL, EngineHost, ProgressThrottle, warm_up_engine
from tests.media_factory import make_random_bytes, make_video
from tests.model_fixtures import install_random_model
from vaura_core.engine.engine import Take, track_from_take
from vaura_core.generation.sampling import SamplingParams

CLIP_SECONDS = 1.0
LOAD_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def model_name() -> str:
    install_random_model(Path(os.environ["VAURA_HOME"]), "worker-test")
    return "worker-test"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("clips") / "shot.mp4", fps=25, duration=CLIP_SECONDS)


@pytest.fixture
def host(qtbot):
    host = EngineHost(compute_threads=1)
    yield host
    assert host.shutdown(5000)
    assert not host.thread.isRunning()


@pytest.fixture
def loaded_host(host: EngineHost, qtbot, model_name: str) -> EngineHost:
    with qtbot.waitSignal(host.model_ready, timeout=LOAD_TIMEOUT_MS) as ready:
        host.load_model(model_name, "cpu", "fp32")
    assert ready.args == [model_name, "cpu"]
    assert host.model is not None and host.model.sample_rate == 44100
    return host


def _for(request_id: int):
    return lambda rid, *_: rid == request_id


def _wait_takes(qtbot, host: EngineHost, submit) -> tuple[int, list[Take]]:
    """Submit a request (a callable returning its id) and wait for its takes."""
    ids: list[int] = []
    results: dict[int, list[Take]] = {}
    host.takes_ready.connect(lambda rid, takes: results.setdefault(rid, takes))
    failures: list[str] = []
    host.failed.connect(lambda rid, message: failures.append(message))
    ids.append(submit())
    qtbot.waitUntil(lambda: ids[0] in results or bool(failures), timeout=RUN_TIMEOUT_MS)
    assert not failures, failures
    return ids[0], results[ids[0]]


def test_progress_throttle_passes_new_stages_and_15_fractions_a_second() -> None:
    now = [0.0]
    throttle = ProgressThrottle(15.0, clock=lambda: now[0])
    passed = []
    for step in range(1000):  # one second of decode steps at 1 kHz
        now[0] = step / 1000
        if throttle.offer(step / 1000, "window 1/1"):
            passed.append(now[0])
    assert 14 <= len(passed) <= 16
    gaps = [b - a for a, b in itertools.pairwise(passed)]
    assert min(gaps) >= 1 / 15 - 1e-9
    # an unchanged report is dropped even after the interval
    now[0] = 5.0
    assert throttle.offer(0.5, "x")
    now[0] = 6.0
    assert not throttle.offer(0.5, "x")
    assert throttle.offer(0.5, "y")
    # a new stage passes at once, inside the interval: a fast window must still be named
    now[0] = 6.001
    assert throttle.offer(0.0, "window 2/2")
    assert not throttle.offer(0.1, "window 2/2")


def test_requests_reject_impossible_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seeds"):
        GenerateRequest(tmp_path / "a.mp4", seeds=[])
    with pytest.raises(ValueError, match="end"):
        GenerateRequest(tmp_path / "a.mp4", start=2.0, end=1.0)
    with pytest.raises(ValueError, match="stride"):
        GenerateRequest(tmp_path / "a.mp4", stride_segments=0)
    with pytest.raises(ValueError, match="chains"):
        GenerateRequest(tmp_path / "a.mp4", chains=0)
    with pytest.raises(ValueError, match="candidates"):
        GenerateRequest(tmp_path / "a.mp4", candidates=9)
    request = GenerateRequest(str(tmp_path / "a.mp4"), seeds=[3, 4])
    assert request.seeds == (3, 4) and request.clip_path == tmp_path / "a.mp4"


def test_missing_model_and_no_model_are_messages(host: EngineHost, qtbot, clip: Path) -> None:
    with qtbot.waitSignal(host.model_failed, timeout=LOAD_TIMEOUT_MS) as failed:
        host.load_model("no-such-model", "cpu")
    assert "no-such-model" in failed.args[0] and "Traceback" not in failed.args[0]
    assert host.model is None and not host.loading
    with qtbot.waitSignal(host.failed, timeout=RUN_TIMEOUT_MS) as failed_request:
        request_id = host.generate(GenerateRequest(clip))
    assert failed_request.args[0] == request_id
    assert "no-such-model" in failed_request.args[1] and "not loaded" in failed_request.args[1]
    assert not host.busy


def test_generate_then_regenerate_reuses_features(loaded_host: EngineHost, qtbot, clip: Path) -> None:
    host = loaded_host
    busy: list[bool] = []
    host.busy_changed.connect(busy.append)
    progress: list[tuple[int, float, object, str]] = []
    host.progress.connect(lambda *args: progress.append(args))
    started: list[int] = []
    host.started.connect(started.append)

    params = SamplingParams(temperature=0.9, top_k=32)
    t0 = time.monotonic()
    first_id, takes = _wait_takes(
        qtbot, host, lambda: host.generate(GenerateRequest(clip, params, seeds=[11, 12]))
    )
    elapsed = time.monotonic() - t0
    sample_rate = host.model.sample_rate
    assert [t.seed for t in takes] == [11, 12]
    for take in takes:
        assert take.sample_start == 0 and len(take.audio) == round(CLIP_SECONDS * sample_rate)
        assert take.params["temperature"] == pytest.approx(0.9) and take.params["top_k"] == 32
    assert started == [first_id]
    assert progress and all(p[0] == first_id and 0.0 <= p[1] <= 1.0 for p in progress)
    assert {p[3] for p in progress} >= {"window 1/1"}
    assert len(progress) <= 15 * elapsed + 3  # throttled (stages included)

    track = track_from_take(takes[0], sample_rate)
    _, new_takes = _wait_takes(
        qtbot,
        host,
        lambda: host.regenerate(RegenerateRequest(clip, track, 0.3, 0.6, params, seeds=[5], crossfade=0.02)),
    )
    (take,) = new_takes
    fade = round(0.02 * sample_rate)
    assert take.seed == 5 and take.sample_start == round(0.3 * sample_rate) - fade
    assert len(take.audio) == round(0.3 * sample_rate) + 2 * fade
    assert host.worker.feature_cache.computed == 1  # the second request reused the clip's features
    assert busy == [True, False, True, False] and not host.busy


def test_failures_are_messages_and_cancel_stops_within_half_a_second(
    loaded_host: EngineHost, qtbot, clip: Path, tmp_path: Path
) -> None:
    host = loaded_host
    broken = make_random_bytes(tmp_path / "broken.mp4")
    with qtbot.waitSignal(host.failed, timeout=RUN_TIMEOUT_MS) as failed:
        request_id = host.generate(GenerateRequest(broken))
    assert failed.args[0] == request_id
    assert "broken.mp4" in failed.args[1] and "Traceback" not in failed.args[1]

    with qtbot.waitSignal(host.failed, timeout=RUN_TIMEOUT_MS) as failed:
        host.generate(GenerateRequest(clip, start=0.5, end=CLIP_SECONDS + 5))
    assert failed.args[1].startswith("shot.mp4: ") and "not inside the clip" in failed.args[1]
    assert not host.busy

    # The worker survived both failures; now cancel a running request and a queued one.
    cancel_at: list[float] = []
    cancelled: dict[int, float] = {}
    delivered: list[int] = []
    host.cancelled.connect(lambda rid: cancelled.setdefault(rid, time.monotonic()))
    host.takes_ready.connect(lambda rid, _: delivered.append(rid))

    def on_progress(rid: int, fraction: float, eta: object, stage: str) -> None:
        if stage.startswith("window") and not cancel_at:
            cancel_at.append(time.monotonic())
            host.cancel()

    host.progress.connect(on_progress)
    running = host.generate(GenerateRequest(clip, seeds=[1, 2]))
    queued = host.generate(GenerateRequest(clip, seeds=[3]))
    qtbot.waitUntil(lambda: len(cancelled) == 2, timeout=RUN_TIMEOUT_MS)
    latency = cancelled[running] - cancel_at[0]
    print(f"cancel latency: {latency * 1000:.1f} ms")
    assert latency < 0.5
    assert queued in cancelled and not delivered and not host.busy


def test_gui_never_stalls_while_loading_and_generating_and_shutdown_stops_the_thread(
    qtbot, model_name: str, clip: Path
) -> None:
    # The requirement: the GUI thread never blocks. A 10 ms timer in the GUI thread records
    # its ticks while the engine thread loads the model and generates; no gap may exceed 50 ms.
    # As the application does at start-up, the imports a first load needs happen here first.
    warm_up_engine()
    # A full collection of everything imported and left by earlier tests takes 0.35-0.47 s here
    # (450,000 objects after the GUI tests) and stops every thread: it would time the test session's
    # heap, not the engine. They are frozen while the ticks are recorded, as `app.main` freezes
    # start-up's objects.
    gc.collect()
    gc.freeze()
    switch_interval = sys.getswitchinterval()
    host = EngineHost(compute_threads=1)
    assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL
    ticks: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    try:
        host.load_model(model_name, "cpu", "fp32")
        _wait_takes(qtbot, host, lambda: host.generate(GenerateRequest(clip, seeds=[1, 2])))
    finally:
        timer.stop()
        gc.unfreeze()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    print(f"{len(ticks)} ticks, max gap {max(gaps) * 1000:.1f} ms")
    assert len(ticks) > 20
    assert max(gaps) < 0.050

    # Shutting down in the middle of a generation cancels it and joins the thread at once.
    answers: list[object] = []
    host.takes_ready.connect(answers.append)
    host.cancelled.connect(answers.append)
    with qtbot.waitSignal(host.progress, timeout=RUN_TIMEOUT_MS):
        host.generate(GenerateRequest(clip, seeds=[1]))
    t0 = time.monotonic()
    assert host.shutdown(5000)
    assert time.monotonic() - t0 < 1.0
    assert not host.thread.isRunning() and not host.busy
    assert sys.getswitchinterval() == switch_interval
    qtbot.wait(50)
    assert answers == []  # nothing is emitted after shutdown
    assert host.generate(GenerateRequest(clip)) > 0  # and later calls are harmless no-ops

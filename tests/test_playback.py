"""Playback: the mixing renderer as pure numpy, the Player without sound, and a real PortAudio stream.

The real stream runs in a subprocess whose ALSA configuration (set before sounddevice is imported)
makes the default device a `file` plugin over a null sink: PortAudio opens a real stream, the real
callback runs, and every frame it played lands in a raw file the test compares with the expected mix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
import types
from pathlib import Path

import numpy as np
import pytest

from app.audio import playback
from app.audio.playback import (
    DECLICK_FRAMES,
    LaneAudio,
    Player,
    Renderer,
    Transport,
    audition_overlay,
    build_mix,
)
from vaura_core.engine.splice import equal_power_fades, splice

RATE = 44100
REPO = Path(__file__).resolve().parents[1]
FADE_OUT, FADE_IN = equal_power_fades(DECLICK_FRAMES)


def _signals(n: int = RATE // 2) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) / RATE
    sine = (0.3 * np.sin(2 * np.pi * 220 * t + 0.3)).astype(np.float32)
    ramp = np.linspace(-0.4, 0.4, n, dtype=np.float32)
    return sine, ramp


def _render(renderer: Renderer, frames: int, block: int = 512) -> np.ndarray:
    out = np.zeros((frames, 2), np.float32)
    for i in range(0, frames, block):
        renderer.render(out[i : i + block], i / renderer.device_rate)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])  # mono mix on every channel
    return out[:, 0]


def _renderer(mix, transport: Transport, device_rate: int = RATE) -> Renderer:
    renderer = Renderer(RATE, device_rate)
    renderer.mix_state = mix
    renderer.transport = transport
    return renderer


def _playing(seek: float, hi: float, **kwargs) -> Transport:
    return Transport(serial=1, playing=True, seek=seek, lo=kwargs.pop("lo", 0.0), hi=hi, **kwargs)


# --- the renderer, as pure functions of the published state ------------------------------------


@pytest.mark.parametrize(
    ("changes", "weights"),
    [
        ({}, (0.5, 0.25)),
        ({"original": {"mute": True}}, (0.0, 0.25)),
        ({"original": {"solo": True}}, (0.5, 0.0)),
        ({"original": {"solo": True, "mute": True}}, (0.0, 0.25)),  # a muted solo does not silence others
        ({"original": {"solo": True}, "generated": {"solo": True}}, (0.5, 0.25)),
    ],
)
def test_mix_applies_gain_mute_and_solo(changes: dict, weights: tuple[float, float]) -> None:
    sine, ramp = _signals()
    lanes = {
        name: LaneAudio(samples, gain=gain, **changes.get(name, {}))
        for name, samples, gain in (("original", sine, 0.5), ("generated", ramp, 0.25))
    }
    n = len(sine)
    out = _render(_renderer(build_mix(lanes), _playing(0.0, n)), n)
    expected = weights[0] * sine + weights[1] * ramp
    np.testing.assert_allclose(out[DECLICK_FRAMES:], expected[DECLICK_FRAMES:], atol=1e-6)
    # playback starts with a short equal-power fade in, not a click
    np.testing.assert_allclose(out[:DECLICK_FRAMES], expected[:DECLICK_FRAMES] * FADE_IN, atol=1e-6)


def test_reverse_double_speed_and_end_of_range() -> None:
    _, ramp = _signals()
    mix = build_mix({"generated": LaneAudio(ramp)})
    start = 10_000

    backwards = _render(_renderer(mix, _playing(start, len(ramp), rate=-1.0)), 12_000)
    k = np.arange(DECLICK_FRAMES, start + 1)
    np.testing.assert_allclose(backwards[k], ramp[start - k], atol=1e-6)
    assert not backwards[start + 1 :].any()  # silence after reaching the clip's start

    renderer = _renderer(mix, _playing(start, len(ramp), rate=2.0))
    double = _render(renderer, 4096)
    k = np.arange(DECLICK_FRAMES, 4096)
    np.testing.assert_allclose(double[k], ramp[start + 2 * k], atol=1e-6)

    # A range ends where it says: silence after it, and the clock says so.
    renderer = _renderer(mix, _playing(1000.0, 1700.0))
    out = _render(renderer, 2048)
    assert out[699] != 0 and not out[700:].any()
    clock = renderer.clock
    assert clock is not None and clock.ended and clock.pos + clock.span == pytest.approx(1700.0)


@pytest.mark.parametrize("rate", [1.0, -1.0])
def test_loop_wraps_inside_the_range(rate: float) -> None:
    _, ramp = _signals()
    lo, hi = 3000, 3700
    seek = lo if rate > 0 else hi - 1
    renderer = _renderer(
        build_mix({"generated": LaneAudio(ramp)}), _playing(seek, hi, lo=lo, loop=True, rate=rate)
    )
    out = _render(renderer, 2560)
    k = np.arange(DECLICK_FRAMES, 2560)
    expected = ramp[lo + (k % (hi - lo))] if rate > 0 else ramp[lo + ((hi - 1 - lo - k) % (hi - lo))]
    np.testing.assert_allclose(out[k], expected, atol=1e-6)
    assert renderer.clock is not None and not renderer.clock.ended


def test_another_device_rate_is_interpolated() -> None:
    ramp = (np.arange(RATE // 4) * 1e-5).astype(np.float32)
    renderer = _renderer(
        build_mix({"original": LaneAudio(ramp)}), _playing(0.0, len(ramp)), device_rate=48000
    )
    out = _render(renderer, 8192)
    k = np.arange(DECLICK_FRAMES, 8192)
    np.testing.assert_allclose(out[k], k * RATE / 48000 * 1e-5, atol=2e-6)


def test_audition_sounds_exactly_like_the_committed_splice() -> None:
    rng = np.random.default_rng(0)
    track = (0.3 * rng.standard_normal(RATE // 4)).astype(np.float32)
    take = (0.3 * rng.standard_normal(3000)).astype(np.float32)
    start, fade_in, fade_out = 4000, 300, 500
    overlay = audition_overlay(take, start, fade_in, fade_out)
    mix = build_mix({"generated": LaneAudio(track, gain=0.8)}, overlay)
    out = _render(_renderer(mix, _playing(0.0, len(track))), len(track))
    committed = 0.8 * splice(track, take, start, fade_in, fade_out)
    np.testing.assert_allclose(out[DECLICK_FRAMES:], committed[DECLICK_FRAMES:], atol=1e-5)

    # Before anything is committed the candidate plays over silence, fading in from it.
    alone = _render(_renderer(build_mix({}, overlay), _playing(0.0, len(track))), len(track))
    _, rise = equal_power_fades(fade_in)
    np.testing.assert_allclose(alone[start : start + fade_in], take[:fade_in] * rise, atol=1e-6)
    np.testing.assert_allclose(alone[start + fade_in : start + 2000], take[fade_in:2000], atol=1e-6)
    assert not alone[: start - 1].any() and not alone[start + len(take) :].any()


def test_transport_jumps_crossfade_instead_of_clicking() -> None:
    level = np.concatenate([np.full(RATE // 4, 0.5), np.full(RATE // 4, -0.5)]).astype(np.float32)
    renderer = _renderer(build_mix({"original": LaneAudio(level)}), _playing(0.0, len(level)))
    before = _render(renderer, 1024)
    renderer.transport = _playing(RATE / 4 + 100, len(level)).__class__(
        serial=2, playing=True, seek=RATE / 4 + 100, hi=len(level)
    )
    jumped = _render(renderer, 1024)
    renderer.transport = Transport(serial=3, playing=False, seek=None, hi=len(level))
    paused = _render(renderer, 1024)
    signal = np.concatenate([before, jumped, paused])
    assert np.abs(np.diff(signal)).max() < 0.02  # from +0.5 to -0.5 to silence without a step
    assert jumped[DECLICK_FRAMES] == pytest.approx(-0.5) and not paused[DECLICK_FRAMES:].any()


def test_rendering_allocates_no_block_sized_arrays() -> None:
    sine, ramp = _signals()
    overlay = audition_overlay(ramp[:5000], 1000, 100, 100)
    mix = build_mix({"original": LaneAudio(sine, gain=0.5), "generated": LaneAudio(ramp)}, overlay)
    renderer = _renderer(mix, _playing(0.0, len(sine), lo=2000, loop=True, rate=-2.0))
    renderer.grain = (1, ramp[:3000].copy())
    frames = playback.BLOCK_CAPACITY  # any block-sized array would take at least this many bytes
    out = np.zeros((frames, 2), np.float32)
    renderer.render(out, 0.0)  # warm up
    tracemalloc.start()
    try:
        for i in range(20):
            renderer.render(out, i * 0.1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Only small Python objects (array views, the clock reading) may appear.
    assert peak < frames, f"{peak} bytes allocated while rendering {frames}-frame blocks"


# --- the Player without sound --------------------------------------------------------------------


def _no_portaudio() -> types.ModuleType:
    raise OSError("PortAudio library not found")


def _fake_sounddevice(*, device: bool, stream_opens: bool) -> types.ModuleType:
    module = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    def query_devices(kind: str | None = None) -> dict:
        if not device:
            raise PortAudioError("Error querying device -1")
        return {"name": "fake", "max_output_channels": 2, "default_samplerate": 48000.0}

    def check_output_settings(**kwargs: object) -> None:
        pass

    class OutputStream:
        """Opens and starts like a real stream; its callback is never called."""

        def __init__(self, **kwargs: object) -> None:
            if not module.stream_opens:
                raise PortAudioError("Device unavailable [PaErrorCode -9985]")
            self.latency, self.active = 0.05, False

        def start(self) -> None:
            self.active = True

        def abort(self) -> None:
            self.active = False

        def close(self) -> None:
            self.active = False

    module.PortAudioError = PortAudioError
    module.query_devices = query_devices
    module.check_output_settings = check_output_settings
    module.OutputStream = OutputStream
    module.stream_opens = stream_opens
    return module


@pytest.fixture
def silent_player(qtbot, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(playback, "_import_sounddevice", _no_portaudio)
    player = Player()
    sine, ramp = _signals(RATE)
    player.set_lanes({"original": LaneAudio(sine), "generated": LaneAudio(ramp)})
    yield player
    player.close()


def test_without_portaudio_the_transport_still_drives_the_picture(silent_player: Player, qtbot) -> None:
    player = silent_player
    assert not player.available and "PortAudio" in player.status_message
    assert player.duration == pytest.approx(1.0)
    states: list[str] = []
    player.state_changed.connect(states.append)
    positions: list[float] = []
    player.position_changed.connect(positions.append)

    t0 = time.monotonic()
    player.play()
    qtbot.wait(250)
    position, elapsed = player.position(), time.monotonic() - t0
    assert 0.4 * elapsed < position <= elapsed + 0.05
    assert len(positions) >= 5 and positions == sorted(positions)

    player.pause()
    paused_at = player.position()
    qtbot.wait(60)
    assert player.position() == paused_at and states == ["playing", "paused"]

    player.seek(0.8)
    assert player.position() == pytest.approx(0.8)
    player.set_rate(-2)  # J J
    qtbot.wait(150)
    assert 0.2 < player.position() < 0.8 and player.is_playing
    player.set_rate(0)  # K
    assert player.state == "paused"

    with qtbot.waitSignal(player.finished, timeout=3000):
        player.play_range(0.1, 0.2)
    assert player.position() == pytest.approx(0.2, abs=1e-6) and player.state == "paused"

    player.set_loop((0.3, 0.4))
    player.play(0.3)
    seen = []
    for _ in range(12):
        qtbot.wait(25)
        seen.append(player.position())
    assert all(0.3 <= p < 0.4 for p in seen) and player.is_playing
    player.toggle()
    assert not player.is_playing


def test_without_portaudio_nothing_raises(silent_player: Player, qtbot) -> None:
    player = silent_player
    player.scrub_grain(0.5)
    player.scrub_grain(0.52, duration=0.03)
    player.audition(np.ones(2000, np.float32) * 0.1, 1000, fade_in=100, fade_out=100, loop=True)
    assert player.auditioning and player.is_playing
    player.set_audition_active(False)
    player.update_lane("original", gain=0.5, mute=True)
    player.update_lane("missing", solo=True)
    player.clear_audition()
    player.set_lanes({}, duration=0.0)
    player.play()
    qtbot.wait(50)
    player.close()
    player.play()
    player.pause()
    assert player.position() == 0.0


def test_no_output_device_is_reported(qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        playback, "_import_sounddevice", lambda: _fake_sounddevice(device=False, stream_opens=False)
    )
    player = Player()
    assert not player.available and "no audio output device" in player.status_message
    player.close()


def test_a_stream_that_fails_to_open_falls_back_to_silence(qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        playback, "_import_sounddevice", lambda: _fake_sounddevice(device=True, stream_opens=False)
    )
    player = Player()
    assert player.available and player.status_message == "Audio output: fake"
    player.set_lanes({"original": LaneAudio(np.zeros(RATE, np.float32))})
    with qtbot.waitSignal(player.availability_changed) as changed:
        player.play()
    assert changed.args[0] is False and "Device unavailable" in changed.args[1]
    assert not player.available and player.is_playing
    qtbot.wait(120)
    assert player.position() > 0.02  # the silent clock took over
    player.close()


def test_retry_output_finds_a_device_again(qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_sounddevice(device=True, stream_opens=False)
    monkeypatch.setattr(playback, "_import_sounddevice", lambda: fake)
    player = Player()
    player.set_lanes({"original": LaneAudio(np.zeros(RATE, np.float32))})
    player.play()
    reports: list[bool] = []
    player.availability_changed.connect(lambda available, _: reports.append(available))
    assert not player.available and not player.retry_output()
    assert reports == [False]  # the retry found the device, but its stream still fails
    fake.stream_opens = True
    with qtbot.waitSignal(player.availability_changed) as changed:
        assert player.retry_output()
    assert changed.args == [True, "Audio output: fake"] and player.is_playing
    player.close()
    assert not player.available


# --- a real PortAudio stream ---------------------------------------------------------------------

CAPTURE_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from PySide6.QtCore import QCoreApplication, QTimer

    app = QCoreApplication([])
    from app.audio import LaneAudio, Player

    rate = 44100
    t = np.arange(rate) / rate
    original = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    generated = (0.2 * np.sin(2 * np.pi * 331 * t + 0.5)).astype(np.float32)
    player = Player()
    result = {"available": player.available, "status": player.status_message}
    if player.available:
        player.set_lanes({
            "original": LaneAudio(original, gain=0.5),
            "generated": LaneAudio(generated, gain=2.0),
            "muted": LaneAudio(np.full(rate, 0.9, np.float32), mute=True),
        })
        positions, states, done = [], [], []
        player.position_changed.connect(positions.append)
        player.state_changed.connect(states.append)

        def on_finished():
            done.append(player.position())
            player.close()
            app.quit()

        player.finished.connect(on_finished)
        QTimer.singleShot(10000, app.quit)
        player.play_range(0.25, 0.5)
        result["device_rate"] = player.device_rate
        app.exec()
        result.update(positions=positions, states=states, finished_at=done)
    print(json.dumps(result))
    """
)


def test_a_real_stream_plays_the_mix(tmp_path: Path) -> None:
    raw = tmp_path / "played.raw"
    conf = tmp_path / "alsa-capture.conf"
    # The default pcm writes what it is given (interleaved, in the stream's sample format) to a file
    # and discards it: a real output device on any machine, sound card or not.
    conf.write_text(
        "pcm.!default {\n    type file\n    slave { pcm { type null } }\n"
        f'    file "{raw}"\n    format "raw"\n}}\n'
    )
    env = {**os.environ, "ALSA_CONFIG_PATH": str(conf), "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-c", CAPTURE_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    if not result["available"] and "PortAudio library" in result["status"]:
        pytest.skip(result["status"])
    assert result["available"], result["status"]
    assert result["device_rate"] == RATE
    assert result["states"] == ["playing", "paused"]
    assert result["finished_at"] == [pytest.approx(0.5)]
    assert result["positions"][0] == pytest.approx(0.25) and result["positions"][-1] == pytest.approx(0.5)
    assert result["positions"] == sorted(result["positions"])

    played = np.fromfile(raw, dtype="<f4").reshape(-1, 2)
    np.testing.assert_array_equal(played[:, 0], played[:, 1])
    first = int(np.flatnonzero(played[:, 0])[0])
    t = np.arange(RATE // 4, RATE // 2) / RATE
    expected = 0.5 * 0.3 * np.sin(2 * np.pi * 220 * t) + 2.0 * 0.2 * np.sin(2 * np.pi * 331 * t + 0.5)
    expected[:DECLICK_FRAMES] *= FADE_IN
    heard = played[first : first + len(expected), 0]
    np.testing.assert_allclose(heard, expected, atol=2e-6)
    assert not played[first + len(expected) :].any()  # nothing after the range, the muted lane never

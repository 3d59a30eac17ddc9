"""Playback of the timeline's lanes through one sounddevice output stream, with a picture clock.

The GUI thread never hands audio to the device directly. It publishes immutable snapshots, each by
one attribute assignment (atomic under the GIL): the lanes to mix (`MixState`), the transport
(`Transport`: playing, rate, bounds, loop, and where to jump), and scrub grains. The PortAudio
callback reads the latest snapshots at the start of each block and renders into preallocated numpy
buffers: no locks, no array allocation, no logging, and it never stops its own stream. After each
block it publishes a `_Clock` reading (which content sample reaches the speakers when), from which
`Player.position()` extrapolates the audible position: the picture follows the audio clock.

Rates other than 1 (J/K/L shuttle: -2, -1, 1, 2) and a device running at another sample rate are
both index stepping: block positions are `cursor + step * k` with linear interpolation between
samples, so reverse and double speed sound like tape. Loops wrap positions inside the loop range.
Transport jumps (seek, pause, play, rate changes) crossfade over a few milliseconds to avoid clicks.

Without PortAudio or without an output device (`Player.available` is False, `status_message` says
why), every method still works and nothing raises: a QTimer in the GUI thread drives the same
renderer silently on the monotonic clock, so play, pause, loops, J/K/L and the playhead keep moving
the picture exactly as they would with sound.

sounddevice is imported lazily, inside this module's functions only: it raises OSError at import when
the PortAudio library is missing, and the rest of the application must start without it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from vaura_core.engine.splice import equal_power_fades

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 44100
DEFAULT_LATENCY = 0.05  # seconds asked of PortAudio: responsive scrubbing without underruns
MAX_RATE = 4.0
BLOCK_CAPACITY = 4096  # frames rendered per pass; larger device blocks are rendered in passes
DECLICK_FRAMES = 128  # crossfade length for transport jumps (about 3 ms)
TICK_MS = 15  # position updates (about 66 Hz) and the silent clock
SILENT_LEAD = 0.04  # the silent clock renders this far ahead, like a device buffer
IDLE_STOP_S = 0.5  # the stream is stopped after this long without anything to play
GRAIN_SECONDS = 0.06

PLAYING = "playing"
PAUSED = "paused"

AUDITION_LANE = "generated"


def _import_sounddevice() -> ModuleType:
    """The sounddevice module (raises OSError when PortAudio is missing, ImportError when not installed)."""
    # ALSA aborts the whole process inside PortAudio's start-up when ALSA_CONFIG_PATH names a file that
    # does not exist: refuse politely instead of letting sounddevice initialise.
    alsa_conf = os.environ.get("ALSA_CONFIG_PATH")
    if alsa_conf and not all(os.path.isfile(p) for p in alsa_conf.split(":") if p):
        raise OSError(f"ALSA_CONFIG_PATH names a missing file ({alsa_conf}); audio output is disabled")
    import sounddevice

    return sounddevice


# --- what the GUI publishes ---------------------------------------------------------------------


@dataclass(frozen=True)
class LaneAudio:
    """One lane to mix: mono float32 samples at the player's rate, sample 0 at clip time 0.

    `gain` is linear (1.0 = unity). A muted lane is silent; when any lane is soloed only soloed,
    unmuted lanes are heard (mute wins over solo, as in most DAWs).
    """

    samples: np.ndarray
    gain: float = 1.0
    mute: bool = False
    solo: bool = False

    def __post_init__(self) -> None:
        samples = np.ascontiguousarray(self.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"lane samples must be mono (1-D), got shape {samples.shape}")
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "gain", float(self.gain))


@dataclass(frozen=True)
class Overlay:
    """A candidate take auditioned over a lane: `audio` from content sample `start`, with weights.

    Inside the candidate's extent the lane plays `lane * old + audio * new`; the weights are the
    equal-power crossfades `apply_take` would use, so the audition sounds exactly like the commit.
    """

    audio: np.ndarray
    start: int
    new: np.ndarray
    old: np.ndarray


@dataclass(frozen=True)
class _Voice:
    samples: np.ndarray
    gain: float
    overlay: Overlay | None = None


@dataclass(frozen=True)
class MixState:
    voices: tuple[_Voice, ...] = ()


@dataclass(frozen=True)
class Transport:
    """Content positions are in samples at the content rate."""

    serial: int
    playing: bool = False
    rate: float = 1.0  # content seconds per real second; negative plays backwards
    seek: float | None = None  # jump the cursor here when the renderer adopts this transport
    lo: float = 0.0  # playback ends (or wraps, when looping) outside [lo, hi)
    hi: float = 0.0
    loop: bool = False


@dataclass(frozen=True)
class _Clock:
    """Written by the renderer after each block: content sample `pos` is heard at `dac_time`."""

    serial: int
    dac_time: float  # time.monotonic() seconds
    pos: float  # content sample at the block's first frame
    speed: float  # content samples per second, signed
    span: float  # content samples the block covers, signed (up to the end when it ended)
    travelled: float  # content samples played since the last jump, before this block, signed
    ended: bool  # the block reached the end of the transport's range


def audition_overlay(audio: np.ndarray, sample_start: int, fade_in: int = 0, fade_out: int = 0) -> Overlay:
    """The overlay that makes a lane sound as if `audio` were spliced in with `splice()`."""
    samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    n = len(samples)
    if sample_start < 0 or fade_in < 0 or fade_out < 0 or fade_in + fade_out > n:
        raise ValueError(f"bad audition: start {sample_start}, fades {fade_in}/{fade_out} for {n} samples")
    new = np.ones(n, np.float32)
    old = np.zeros(n, np.float32)
    if fade_in:
        old[:fade_in], new[:fade_in] = equal_power_fades(fade_in)
    if fade_out:
        new[n - fade_out :], old[n - fade_out :] = equal_power_fades(fade_out)
    return Overlay(samples, int(sample_start), new, old)


def build_mix(
    lanes: Mapping[str, LaneAudio], audition: Overlay | None = None, audition_lane: str = AUDITION_LANE
) -> MixState:
    """The voices heard: mute silences a lane; while any unmuted lane is soloed, only soloed ones play.

    The audition overlay rides on `audition_lane` (with that lane's gain); before anything is
    committed to that lane, it plays over silence.
    """
    soloing = any(lane.solo and not lane.mute for lane in lanes.values())
    voices = []
    for name, lane in lanes.items():
        if lane.mute or (soloing and not lane.solo):
            continue
        voices.append(_Voice(lane.samples, lane.gain, audition if name == audition_lane else None))
    if audition is not None and audition_lane not in lanes and not soloing:
        voices.append(_Voice(np.zeros(0, np.float32), 1.0, audition))
    return MixState(tuple(voices))


# --- mixing (pure numpy, no Qt, no sounddevice) -----------------------------------------------------


class BlockMixer:
    """Mixes voices at arbitrary fractional content positions into a block, in preallocated buffers.

    One instance per thread: the audio callback has its own, the GUI thread another for grains.
    """

    def __init__(self, capacity: int = BLOCK_CAPACITY) -> None:
        self.capacity = capacity
        self._base = np.zeros(capacity, np.int64)  # floor of the positions
        self._frac = np.zeros(capacity, np.float64)
        self._frac32 = np.zeros(capacity, np.float32)
        self._mask = np.zeros(capacity, np.float32)  # the in-range mask as 0/1 floats
        self._idx = np.zeros(capacity, np.int64)
        self._ok = np.zeros(capacity, np.bool_)
        self._tmp_bool = np.zeros(capacity, np.bool_)
        self._a = np.zeros(capacity, np.float32)
        self._b = np.zeros(capacity, np.float32)
        self._cand = np.zeros(capacity, np.float32)
        self._w = np.zeros(capacity, np.float32)

    def mix(self, state: MixState, pos: np.ndarray, out: np.ndarray) -> None:
        """Add every voice of `state` sampled at `pos` (float64 content samples) into `out` (float32).

        Positions outside a voice's samples (negative ones included) contribute silence.
        """
        n = len(pos)
        if not state.voices or n == 0:
            return
        base, frac = self._base[:n], self._frac[:n]
        np.floor(pos, out=frac)
        np.copyto(base, frac, casting="unsafe")
        np.subtract(pos, frac, out=frac)
        # Mixed-dtype ufuncs allocate casting buffers: convert once, then stay in float32.
        np.copyto(self._frac32[:n], frac, casting="same_kind")
        lane = self._a[:n]
        for voice in state.voices:
            self._sample(voice.samples, 0, lane)
            if voice.overlay is not None:
                self._apply_overlay(voice.overlay, lane)
            if voice.gain != 1.0:
                lane *= voice.gain
            out += lane

    def add(self, samples: np.ndarray, pos: np.ndarray, out: np.ndarray, gain: float = 1.0) -> None:
        """Add one plain source (a grain) sampled at `pos` into `out`."""
        self.mix(MixState((_Voice(samples, gain),)), pos, out)

    def _sample(self, src: np.ndarray, offset: int, out: np.ndarray) -> None:
        """out = src linearly interpolated at base + frac - offset, zero outside src.

        Leaves the in-range mask in self._mask (0/1) and the clipped indices in self._idx.
        """
        n, m = len(out), len(src)
        ok, idx, mask = self._ok[:n], self._idx[:n], self._mask[:n]
        if m == 0:
            out.fill(0.0)
            mask.fill(0.0)
            return
        np.subtract(self._base[:n], offset, out=idx)
        inside = self._tmp_bool[:n]
        np.greater_equal(idx, 0, out=ok)
        np.less(idx, m, out=inside)
        np.logical_and(ok, inside, out=ok)
        np.copyto(mask, ok)
        np.clip(idx, 0, m - 1, out=idx)
        np.take(src, idx, out=out, mode="clip")
        nxt = self._b[:n]
        idx += 1
        np.take(src, idx, out=nxt, mode="clip")  # clip mode repeats the last sample at the end
        idx -= 1
        nxt -= out
        nxt *= self._frac32[:n]
        out += nxt
        out *= mask

    def _apply_overlay(self, overlay: Overlay, lane: np.ndarray) -> None:
        n = len(lane)
        cand, w = self._cand[:n], self._w[:n]
        self._sample(overlay.audio, overlay.start, cand)
        idx, mask = self._idx[:n], self._mask[:n]
        # lane = lane * old + cand * new inside the candidate; outside, old = 1 and new = 0.
        np.take(overlay.new, idx, out=w, mode="clip")
        w *= mask
        cand *= w
        np.take(overlay.old, idx, out=w, mode="clip")
        w -= 1.0
        w *= mask
        w += 1.0
        lane *= w
        lane += cand


class Renderer:
    """Turns the published transport and mix into output blocks; called by the audio callback.

    `render` is the only method called from the audio thread. Everything it touches is preallocated
    or a snapshot replaced (never mutated) by the GUI thread.
    """

    def __init__(self, content_rate: int, device_rate: int | None = None, capacity: int = BLOCK_CAPACITY):
        self.content_rate = int(content_rate)
        self.device_rate = int(device_rate or content_rate)
        self.capacity = capacity
        # Published by the GUI thread.
        self.mix_state = MixState()
        self.transport = Transport(serial=0)
        self.grain: tuple[int, np.ndarray] | None = None
        # Published by the audio thread.
        self.clock: _Clock | None = None
        self.consumed_serial = -1  # the transport serial the renderer has adopted
        self.grain_active = False
        self.error: BaseException | None = None
        # Audio-thread state.
        self._active = Transport(serial=-1)
        self._cursor = 0.0
        self._ended = False
        self._travelled = 0.0
        self._grain_serial = 0
        self._grains: list[list[Any]] = []  # [samples, read position] for the current and fading grains
        self._mixer = BlockMixer(capacity)
        self._ramp = np.arange(capacity, dtype=np.float64)
        self._pos = np.zeros(capacity, np.float64)
        self._tmp = np.zeros(capacity, np.float64)
        self._over = np.zeros(capacity, np.bool_)
        self._sum = np.zeros(capacity, np.float32)
        self._old = np.zeros(capacity, np.float32)
        fade_out, fade_in = equal_power_fades(DECLICK_FRAMES)
        self._fade_out, self._fade_in = fade_out, fade_in

    def reset(self) -> None:
        """Forget what was playing (GUI thread, only while no callback runs: the stream is stopped)."""
        self._active = Transport(serial=-1)
        self._grains = []
        self.grain_active = False

    def render(self, out: np.ndarray, dac_time: float) -> None:
        """Fill `out` (frames, channels) float32; its first frame is heard at `dac_time` (monotonic)."""
        frames = out.shape[0]
        done = 0
        while done < frames:
            n = min(self.capacity, frames - done)
            self._render_block(out[done : done + n], dac_time + done / self.device_rate)
            done += n

    def _render_block(self, out: np.ndarray, dac_time: float) -> None:
        n = out.shape[0]
        buf = self._sum[:n]
        buf.fill(0.0)
        mix = self.mix_state
        t = self.transport
        jump = False
        fade_from_old = False
        if t.serial != self._active.serial:
            prev, prev_cursor = self._active, self._cursor
            old_audible = prev.playing and not self._ended
            jump = t.seek is not None or t.playing != prev.playing or t.rate != prev.rate
            if jump and old_audible:
                k = min(n, DECLICK_FRAMES)
                old = self._old[:k]
                old.fill(0.0)
                self._render_transport(old, prev, prev_cursor, mix)
                old *= self._fade_out[:k]
                fade_from_old = True
            if jump:
                self._travelled = 0.0
            if t.seek is not None:
                self._cursor = t.seek
                self._ended = False
            elif t.playing and not prev.playing:
                self._ended = False
            self._active = t
            self.consumed_serial = t.serial
        if t.playing and not self._ended:
            pos0 = self._cursor
            self._cursor, self._ended, span = self._render_transport(buf, t, pos0, mix)
            if jump:  # fade in after a discontinuity (the old content fades out underneath)
                k = min(n, DECLICK_FRAMES)
                buf[:k] *= self._fade_in[:k]
            speed = t.rate * self.content_rate
            self.clock = _Clock(t.serial, dac_time, pos0, speed, span, self._travelled, self._ended)
            self._travelled += span
        if fade_from_old:
            k = min(n, DECLICK_FRAMES)
            buf[:k] += self._old[:k]
        self._render_grains(buf)
        np.clip(buf, -1.0, 1.0, out=buf)
        out[:] = buf[:, None]

    def _render_transport(
        self, buf: np.ndarray, t: Transport, cursor: float, mix: MixState
    ) -> tuple[float, bool, float]:
        """Mix the transport's content from `cursor` into `buf`; (next cursor, ended, span covered)."""
        n = len(buf)
        step = t.rate * self.content_rate / self.device_rate
        pos = self._pos[:n]
        np.multiply(self._ramp[:n], step, out=pos)
        pos += cursor
        nxt = cursor + n * step
        span = n * step
        ended = False
        length = t.hi - t.lo
        over = self._over[:n]
        if t.loop and length >= 1.0:
            # Positions past the loop's far edge (in the direction of travel) wrap inside it.
            if step > 0:
                np.greater_equal(pos, t.hi, out=over)
                wrap = nxt >= t.hi
            else:
                np.less(pos, t.lo, out=over)
                wrap = nxt < t.lo
            if over.any():
                tmp = self._tmp[:n]
                np.subtract(pos, t.lo, out=tmp)
                np.mod(tmp, length, out=tmp)
                tmp += t.lo
                np.copyto(pos, tmp, where=over)
            if wrap:
                nxt = t.lo + (nxt - t.lo) % length
        else:
            # Positions beyond the end are silenced (-1 is outside every voice).
            if step > 0:
                np.greater_equal(pos, t.hi, out=over)
                if nxt >= t.hi:
                    ended, span, nxt = True, max(0.0, t.hi - cursor), t.hi
            else:
                np.less(pos, t.lo, out=over)
                if nxt <= t.lo:
                    ended, span, nxt = True, min(0.0, t.lo - cursor), t.lo
            if ended:
                np.copyto(pos, -1.0, where=over)
        self._mixer.mix(mix, pos, buf)
        return nxt, ended, span

    def _render_grains(self, buf: np.ndarray) -> None:
        request = self.grain
        if request is not None and request[0] != self._grain_serial:
            self._grain_serial = request[0]
            # The grain still sounding keeps going underneath the new one: no click, at most two.
            self._grains = [*self._grains[-1:], [request[1], 0.0]]
        if not self._grains:
            return
        n = len(buf)
        step = self.content_rate / self.device_rate
        pos = self._pos[:n]
        for grain in self._grains:
            np.multiply(self._ramp[:n], step, out=pos)
            pos += grain[1]
            self._mixer.add(grain[0], pos, buf)
            grain[1] += n * step
        self._grains = [g for g in self._grains if g[1] < len(g[0])]
        self.grain_active = bool(self._grains)

    @property
    def grain_pending(self) -> bool:
        """A grain was published that the audio thread has not started yet."""
        request = self.grain
        return request is not None and request[0] != self._grain_serial


# --- the Qt side ----------------------------------------------------------------------------------


class Player(QObject):
    """Transport and audio output for the timeline. Lives in the GUI thread; call `close()` at exit.

    Signals: position_changed(seconds) about 66 times a second while playing (and once after each
    seek), state_changed("playing" | "paused"), finished() when playback reaches the end of the clip
    or of a non-looping `play_range`, availability_changed(available, message) when the output
    device fails (playback goes on silently) or `retry_output()` finds one again.
    """

    position_changed = Signal(float)
    state_changed = Signal(str)
    finished = Signal()
    availability_changed = Signal(bool, str)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        latency: float = DEFAULT_LATENCY,
        use_device: bool = True,
    ) -> None:
        super().__init__(parent)
        self._rate_hz = int(sample_rate)
        self._latency = float(latency)
        self._renderer = Renderer(self._rate_hz)
        self._grain_mixer = BlockMixer(self._rate_hz)  # one second: more than any grain
        self._silent_buf = np.zeros((BLOCK_CAPACITY, 1), np.float32)
        self._sd: ModuleType | None = None
        self._stream: Any = None
        self._stream_latency = self._latency
        self._available = False
        self._status = ""

        self._lanes: dict[str, LaneAudio] = {}
        self._duration = 0.0
        self._audition: Overlay | None = None
        self._audition_on = True
        self._loop: tuple[float, float] | None = None
        self._range: tuple[float, float, bool] | None = None  # a play_range in progress
        self._state = PAUSED
        self._rate = 1.0
        self._anchor = 0.0  # the position while paused, and at the last transport change
        self._serial = 0
        self._silent_until: float | None = None
        self._idle_since: float | None = None

        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)

        if use_device:
            self._probe_device()
        else:
            self._status = "No sound: audio output is turned off"

    # --- properties ------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """True when sound reaches an output device; False means silent playback (see status_message)."""
        return self._available

    @property
    def status_message(self) -> str:
        return self._status

    @property
    def sample_rate(self) -> int:
        """The rate of lane and audition samples."""
        return self._rate_hz

    @property
    def device_rate(self) -> int:
        return self._renderer.device_rate

    @property
    def duration(self) -> float:
        return self._duration

    @property
    def state(self) -> str:
        return self._state

    @property
    def is_playing(self) -> bool:
        return self._state == PLAYING

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def loop(self) -> tuple[float, float] | None:
        return self._loop

    @property
    def lanes(self) -> dict[str, LaneAudio]:
        return dict(self._lanes)

    @property
    def auditioning(self) -> bool:
        return self._audition is not None and self._audition_on

    # --- content -----------------------------------------------------------------------------------

    def set_lanes(self, lanes: Mapping[str, LaneAudio], duration: float | None = None) -> None:
        """Replace every lane at once (typically {"original": ..., "generated": ...}).

        `duration` is the clip's length in seconds (default: the longest lane); playback ends there.
        """
        self._lanes = dict(lanes)
        longest = max((len(lane.samples) for lane in self._lanes.values()), default=0) / self._rate_hz
        self._duration = max(0.0, float(duration)) if duration is not None else longest
        self._publish_mix()
        if self._anchor > self._duration:
            self._anchor = self._duration
        self._publish_transport(seek=None)

    def update_lane(
        self, name: str, *, gain: float | None = None, mute: bool | None = None, solo: bool | None = None
    ) -> None:
        """Change one lane's gain (linear), mute or solo without touching its samples (unknown: ignored)."""
        lane = self._lanes.get(name)
        if lane is None:
            return
        changes: dict[str, Any] = {}
        if gain is not None:
            changes["gain"] = gain
        if mute is not None:
            changes["mute"] = mute
        if solo is not None:
            changes["solo"] = solo
        self._lanes[name] = dataclasses.replace(lane, **changes)
        self._publish_mix()

    def audition(
        self,
        audio: np.ndarray,
        sample_start: int,
        range: tuple[float, float] | None = None,
        *,
        fade_in: int = 0,
        fade_out: int = 0,
        loop: bool = False,
        play: bool = True,
    ) -> None:
        """Hear a candidate take in place of the "generated" lane, as if it were committed.

        The take's `audio` starts at content sample `sample_start`; its first `fade_in` and last
        `fade_out` samples crossfade (equal power) with the lane, as `apply_take` splices them.
        With `play`, the selection `range` (default: the take's extent) plays, looping if `loop`.
        With `play=False` only the sound changes: use it for A/B switches during playback.
        """
        overlay = audition_overlay(audio, int(sample_start), int(fade_in), int(fade_out))
        self._audition = overlay
        self._audition_on = True
        self._publish_mix()
        if play:
            if range is None:
                range = (overlay.start / self._rate_hz, (overlay.start + len(overlay.audio)) / self._rate_hz)
            self.play_range(range[0], range[1], loop=loop)

    def set_audition_active(self, active: bool) -> None:
        """A/B: hear the candidate (True) or the committed lane (False) without forgetting the take."""
        self._audition_on = bool(active)
        self._publish_mix()

    def clear_audition(self) -> None:
        self._audition = None
        self._publish_mix()

    # --- transport ---------------------------------------------------------------------------------

    def position(self) -> float:
        """The audible position in seconds: what the speakers play now (output latency included)."""
        if self._state != PLAYING:
            return self._anchor
        t = self._renderer.transport
        clock = self._renderer.clock
        if clock is None or clock.serial != t.serial:
            return self._anchor
        return self._clock_position(clock, t, time.monotonic()) / self._rate_hz

    def play(self, from_t: float | None = None) -> None:
        """Play forward at normal speed (Space), from `from_t` or from the current position."""
        self._range = None
        self._rate = 1.0
        start = self.position() if from_t is None else from_t
        if from_t is None and self._loop is None and start >= self._duration - 1.0 / self._rate_hz:
            start = 0.0  # playing at the end starts over
        self._start(start)

    def pause(self) -> None:
        if self._state != PLAYING:
            return
        self._anchor = self.position()
        self._set_state(PAUSED)
        self._publish_transport(seek=self._anchor)
        self.position_changed.emit(self._anchor)

    def toggle(self) -> None:
        if self._state == PLAYING:
            self.pause()
        else:
            self.play()

    def seek(self, t: float) -> None:
        """Jump to `t` seconds (clamped to the clip); playback continues from there if playing."""
        self._anchor = min(max(0.0, float(t)), self._duration)
        if self._range is not None and not self._range[0] <= self._anchor <= self._range[1]:
            self._range = None  # a seek outside the played range ends the range
        self._publish_transport(seek=self._anchor)
        self.position_changed.emit(self._anchor)

    def set_loop(self, range: tuple[float, float] | None) -> None:
        """Loop [t0, t1) during playback (None: no loop). Does not move the playhead."""
        if range is not None:
            t0, t1 = sorted((max(0.0, float(range[0])), max(0.0, float(range[1]))))
            range = (t0, t1) if t1 > t0 else None
        self._loop = range
        self._range = None
        self._publish_transport(seek=None)

    def play_range(self, t0: float, t1: float, loop: bool = False) -> None:
        """Play [t0, t1) once (then `finished`), or loop it until paused."""
        t0, t1 = sorted((max(0.0, float(t0)), max(0.0, float(t1))))
        self._range = (t0, t1, bool(loop))
        self._rate = 1.0
        self._start(t0)

    def set_rate(self, rate: float) -> None:
        """Shuttle (J/K/L): 0 pauses; other rates play at that speed, negative ones backwards.

        Rates are clamped to +-4. Playing resumes from the audible position in the new direction.
        """
        rate = max(-MAX_RATE, min(MAX_RATE, float(rate)))
        if rate == 0.0:
            self.pause()
            return
        position = self.position()
        self._rate = rate
        self._start(position)

    def scrub_grain(self, t: float, duration: float = GRAIN_SECONDS) -> None:
        """Play a short Hann-windowed grain of the mix at `t` (while dragging the playhead)."""
        n = min(self._grain_mixer.capacity, max(2, round(duration * self._rate_hz)))
        pos = np.arange(n, dtype=np.float64) + float(t) * self._rate_hz
        grain = np.zeros(n, np.float32)
        self._grain_mixer.mix(self._renderer.mix_state, pos, grain)
        grain *= np.hanning(n).astype(np.float32)
        previous = self._renderer.grain
        self._renderer.grain = ((previous[0] if previous else 0) + 1, grain)
        self._ensure_output()

    def retry_output(self) -> bool:
        """Look for an output device again (after one was plugged in); True when sound is available."""
        if self._available:
            return True
        self._close_stream()
        self._probe_device()
        if self._available:
            position = self.position()
            self._renderer = _carry_over(self._renderer, Renderer(self._rate_hz))
            self._anchor = position
            self._publish_transport(seek=position)
            if self._state == PLAYING or self._renderer.grain_active:
                self._ensure_output()  # on failure this reports the device unavailable again
            if self._available:
                self.availability_changed.emit(True, self._status)
        return self._available

    def close(self) -> None:
        """Release the output stream (the window's closeEvent). The player stays usable, silently."""
        self._timer.stop()
        self._close_stream()
        self._sd = None
        if self._available:
            self._available = False
            self._status = "No sound: the audio output is closed"
        self._silent_until = None

    # --- internals: transport ----------------------------------------------------------------------

    def _start(self, from_t: float) -> None:
        self._anchor = min(max(0.0, float(from_t)), self._duration)
        self._set_state(PLAYING)
        self._publish_transport(seek=self._anchor)
        self._ensure_output()
        self.position_changed.emit(self._anchor)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    def _bounds(self) -> tuple[float, float, bool]:
        if self._range is not None:
            return self._range
        if self._loop is not None:
            return (*self._loop, True)
        return 0.0, self._duration, False

    def _publish_transport(self, seek: float | None) -> None:
        """Publish the transport; `seek` (seconds) jumps the cursor, None continues seamlessly."""
        renderer = self._renderer
        previous = renderer.transport
        if seek is None:
            if renderer.consumed_serial != previous.serial and previous.seek is not None:
                seek = previous.seek / self._rate_hz  # a jump the renderer has not made yet must survive
            elif self._state == PLAYING:
                self._anchor = self.position()  # what position() reports until the new clock arrives
        lo, hi, loop = self._bounds()
        self._serial += 1
        renderer.transport = Transport(
            serial=self._serial,
            playing=self._state == PLAYING,
            rate=self._rate,
            seek=None if seek is None else seek * self._rate_hz,
            lo=lo * self._rate_hz,
            hi=hi * self._rate_hz,
            loop=loop,
        )

    def _publish_mix(self) -> None:
        audition = self._audition if self._audition_on else None
        self._renderer.mix_state = build_mix(self._lanes, audition)

    def _clock_position(self, clock: _Clock, t: Transport, now: float) -> float:
        """Content sample heard at `now`, extrapolated from the last block (never past what was rendered)."""
        # Before the block is heard the position lies in earlier blocks, but never before the last
        # jump (a seek shows its target at once, not the tail of the old audio).
        advance = (now - clock.dac_time) * clock.speed
        if clock.speed >= 0:
            advance = max(min(advance, clock.span), -clock.travelled)
        else:
            advance = min(max(advance, clock.span), -clock.travelled)
        pos = clock.pos + advance
        length = t.hi - t.lo
        if t.loop and length >= 1.0 and t.lo <= clock.pos <= t.hi:
            pos = t.lo + math.fmod(pos - t.lo, length)
            if pos < t.lo:
                pos += length
        return min(max(pos, 0.0), self._duration * self._rate_hz)

    def _reached_end(self, clock: _Clock, t: Transport) -> bool:
        if not clock.ended or clock.serial != t.serial:
            return False
        end = clock.dac_time + (abs(clock.span / clock.speed) if clock.speed else 0.0)
        return time.monotonic() >= end

    # --- internals: output ---------------------------------------------------------------------------

    def _probe_device(self) -> None:
        try:
            sd = _import_sounddevice()
        except (OSError, ImportError) as exc:
            self._status = f"No sound: the PortAudio library could not be loaded ({exc})"
            log.warning("%s", self._status)
            return
        try:
            info = sd.query_devices(kind="output")
        except Exception as exc:  # PortAudioError when there is no default output device
            self._status = f"No sound: no audio output device was found ({exc})"
            log.warning("%s", self._status)
            return
        self._sd = sd
        self._available = True
        self._status = f"Audio output: {info['name']}"

    def _ensure_output(self) -> None:
        """Make sure something renders: the device stream, or the silent clock."""
        self._idle_since = None
        if self._available and not self._start_stream():
            self._fall_back_to_silence()
        if not self._timer.isActive():
            self._timer.start()

    def _start_stream(self) -> bool:
        sd = self._sd
        if sd is None:
            return False
        try:
            if self._stream is None:
                self._stream = self._open_stream(sd)
            if not self._stream.active:
                self._renderer.reset()  # nothing from before the stop may leak into the first block
                self._stream.start()
        except Exception as exc:
            self._status = f"No sound: the audio output could not be started ({exc})"
            log.warning("%s", self._status)
            return False
        return True

    def _open_stream(self, sd: ModuleType) -> Any:
        info = sd.query_devices(kind="output")
        channels = 2 if int(info.get("max_output_channels", 1)) >= 2 else 1
        rates = [self._rate_hz]
        device_default = int(info.get("default_samplerate") or 0)
        if device_default and device_default != self._rate_hz:
            rates.append(device_default)
        error: Exception | None = None
        for rate in rates:
            try:
                sd.check_output_settings(samplerate=rate, channels=channels, dtype="float32")
            except Exception as exc:
                error = exc
                continue
            self._renderer = _carry_over(self._renderer, Renderer(self._rate_hz, rate))
            stream = sd.OutputStream(
                samplerate=rate,
                channels=channels,
                dtype="float32",
                latency=self._latency,
                callback=self._callback,
            )
            self._stream_latency = float(stream.latency)
            return stream
        raise error if error is not None else RuntimeError("no usable sample rate")

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """The PortAudio callback (audio thread): render, never raise, never stop the stream."""
        renderer = self._renderer
        try:
            lead = time_info.outputBufferDacTime - time_info.currentTime
            if not 0.0 <= lead < 1.0:  # some host APIs report zeros
                lead = self._stream_latency
            renderer.render(outdata, time.monotonic() + lead)
        except Exception as exc:  # an exception here would kill the stream: keep silent, report later
            outdata.fill(0.0)
            renderer.error = exc

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.abort()  # abort, not stop: stop() waits for the buffers, blocking the GUI
            stream.close()
        except Exception as exc:
            log.warning("closing the audio stream failed: %s", exc)

    def _fall_back_to_silence(self) -> None:
        """The device failed: keep the picture moving on the silent clock and say so once."""
        position = self.position()
        self._close_stream()
        self._available = False
        self._renderer = _carry_over(self._renderer, Renderer(self._rate_hz))
        self._silent_until = None
        if self._state == PLAYING:
            self._anchor = position
        self._publish_transport(seek=self._anchor)
        self.availability_changed.emit(False, self._status)

    def _run_silent_clock(self, now: float) -> None:
        renderer = self._renderer
        if self._silent_until is None or self._silent_until < now - 0.5:
            self._silent_until = now  # (re)start, or catch up after a long stall without a burst
        frames = int((now + SILENT_LEAD - self._silent_until) * renderer.device_rate)
        while frames > 0:
            n = min(frames, BLOCK_CAPACITY)
            renderer.render(self._silent_buf[:n], self._silent_until)
            self._silent_until += n / renderer.device_rate
            frames -= n

    @Slot()
    def _tick(self) -> None:
        renderer = self._renderer
        now = time.monotonic()
        if renderer.error is not None:
            log.warning("audio rendering failed: %r", renderer.error)
            renderer.error = None
        stream = self._stream
        if self._available and stream is not None and self._state == PLAYING and not stream.active:
            self._status = "No sound: the audio output stopped"
            log.warning("%s", self._status)
            self._fall_back_to_silence()
            renderer = self._renderer
            stream = None
        if not self._available and (self._state == PLAYING or renderer.grain_active):
            self._run_silent_clock(now)
        elif not self._available:
            self._silent_until = None

        if self._state == PLAYING:
            clock, t = renderer.clock, renderer.transport
            if clock is not None and self._reached_end(clock, t):
                self._finish_playback(clock, t)
            else:
                self.position_changed.emit(self.position())
            return
        # Paused: stop the stream (from this thread, never from its callback) once it has been idle.
        if renderer.grain_active or renderer.grain_pending:
            self._idle_since = None
            return
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since >= IDLE_STOP_S:
            if stream is not None and stream.active:
                try:
                    stream.abort()
                except Exception as exc:
                    log.warning("stopping the audio stream failed: %s", exc)
            self._timer.stop()

    def _finish_playback(self, clock: _Clock, t: Transport) -> None:
        end = (clock.pos + clock.span) / self._rate_hz
        self._anchor = min(max(0.0, end), self._duration)
        self._range = None
        self._rate = 1.0
        self._set_state(PAUSED)
        self._publish_transport(seek=self._anchor)
        self.position_changed.emit(self._anchor)
        self.finished.emit()


def _carry_over(old: Renderer, new: Renderer) -> Renderer:
    """A fresh renderer (another device or rate) with the published state of the old one."""
    new.mix_state, new.transport, new.grain = old.mix_state, old.transport, old.grain
    return new


def lane_from_samples(
    samples: np.ndarray, gain_db: float = 0.0, mute: bool = False, solo: bool = False
) -> LaneAudio:
    """A lane with its gain given in decibels (the unit the mixer controls show)."""
    return LaneAudio(samples, gain=10.0 ** (gain_db / 20.0), mute=mute, solo=solo)


__all__ = [
    "AUDITION_LANE",
    "PAUSED",
    "PLAYING",
    "BlockMixer",
    "LaneAudio",
    "MixState",
    "Overlay",
    "Player",
    "Renderer",
    "Transport",
    "audition_overlay",
    "build_mix",
    "lane_from_samples",
]

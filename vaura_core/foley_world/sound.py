"""Foley World sound: one synthesised sound per JSON event, placed on the event's exact sample.

Each material owns a spectral band, so the spectrum identifies the material:
  drum   80-160 Hz body with a downward pitch glide and soft skin noise
  wood   damped modes at 400-850 Hz plus a short knock click
  metal  long inharmonic ring at 2-5.3 kHz
  glass  very short bright tick at 4-8 kHz
Every impact rises to full level within 1 ms (sharp, detectable onsets) and its peak grows
monotonically with the event strength. Sustained events are band-limited noise whose level follows the
object's floor speed frame by frame, so they fade in and out with the motion.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vaura_core.foley_world.scene import RADIUS, STREAM_EVENT, STREAM_VOICE, V_REF, stream_rng

if TYPE_CHECKING:
    from vaura_core.foley_world.scene import Scene, SceneObject

IMPACT_PEAK = 0.45  # peak of a strength-1 impact: two overlapping loud hits still fit below full scale
SUSTAIN_LEVEL = 0.12  # RMS of sustained noise at speed V_REF
ATTACK_S = 0.001
SUSTAIN_FADE_IN_S = 0.02
TAIL_FADE_S = 0.005


def impact_gain(strength: float) -> float:
    """Peak level of an impact: strictly increasing in strength, about 11 dB from the softest to the
    loudest, so a soft hit still stands out of the tail of a loud one."""
    return IMPACT_PEAK * strength**0.6


@dataclass(frozen=True)
class Voice:
    """The fixed sound of one object: its modes (Hz), their decay times (s) and levels."""

    freqs: tuple[float, ...]
    decays: tuple[float, ...]
    levels: tuple[float, ...]


# Material mode patterns: frequency ratios, decay times (s) and levels of the modes.
_MODES: dict[str, tuple[tuple[float, float], tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = {
    # name: ((lowest mode range Hz), ratios, decays, levels)
    "wood": ((430.0, 520.0), (1.0, 1.37, 1.6), (0.05, 0.035, 0.022), (1.0, 0.6, 0.35)),
    "metal": ((2100.0, 2450.0), (1.0, 1.32, 1.68, 2.07), (0.22, 0.18, 0.14, 0.1), (1.0, 0.7, 0.5, 0.3)),
    "glass": ((4300.0, 5000.0), (1.0, 1.27, 1.53), (0.028, 0.02, 0.014), (1.0, 0.7, 0.5)),
    # drum: start and end of the pitch glide, in place of modes
    "drum": ((140.0, 160.0), (1.0, 0.55), (0.09,), (1.0,)),
}

# (low Hz, high Hz, decay s, level relative to the body) of the noise burst at each strike.
_CLICK = {
    "wood": (500.0, 3000.0, 0.0008, 0.5),
    "metal": (2000.0, 8000.0, 0.0005, 0.25),
    "glass": (3500.0, 10000.0, 0.0005, 0.35),
    "drum": (80.0, 400.0, 0.015, 0.2),
}

# Noise band (Hz) of the sustained sound of each material.
_SUSTAIN_BAND = {
    "wood": (250.0, 1500.0),
    "metal": (60.0, 400.0),
    "drum": (70.0, 350.0),
    "glass": (2500.0, 8000.0),
}


def object_voice(seed: int, obj: SceneObject) -> Voice:
    """Draw an object's voice. Larger objects sound a little lower, as the picture suggests."""
    rng = stream_rng(seed, STREAM_VOICE, obj.id)
    (lo, hi), ratios, decays, levels = _MODES[obj.material.name]
    size_factor = (sum(RADIUS) / 2 / obj.radius) ** 0.35
    base = float(rng.uniform(lo, hi)) * size_factor
    jitter = rng.uniform(0.98, 1.02, len(ratios))
    freqs = tuple(float(base * q * (j if q != 1.0 else 1.0)) for q, j in zip(ratios, jitter, strict=True))
    scale = float(rng.uniform(0.85, 1.15))
    return Voice(freqs, tuple(d * scale for d in decays), levels)


def band_noise(rng: np.random.Generator, n: int, low: float, high: float, sample_rate: int) -> np.ndarray:
    """White noise restricted to [low, high] Hz (soft spectral edges), unit RMS."""
    if n <= 0:
        return np.zeros(0)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    edge = 0.15 * (high - low)
    mask = np.clip((freqs - low + edge) / edge, 0, 1) * np.clip((high + edge - freqs) / edge, 0, 1)
    out = np.fft.irfft(spectrum * mask, n)
    rms = float(np.sqrt(np.mean(out**2)))
    return out / rms if rms > 0 else out


def impact_sound(
    material: str, voice: Voice, strength: float, rng: np.random.Generator, sample_rate: int
) -> np.ndarray:
    """One strike: body modes (or the drum glide) plus a click, rising to its peak within ATTACK_S."""
    longest = max(voice.decays)
    n = math.ceil((6.9 * longest + 0.01) * sample_rate)  # to -60 dB
    t = np.arange(n) / sample_rate
    detune = float(rng.uniform(0.99, 1.01))
    if material == "drum":
        f_hi, f_lo = voice.freqs[0] * detune, voice.freqs[1] * detune
        glide = 0.035  # s: the pitch falls from f_hi towards f_lo as f_lo + (f_hi - f_lo) * exp(-t / glide)
        # Phase is the integral of that frequency; the cosine starts at full level.
        phase = 2 * np.pi * (f_lo * t + (f_hi - f_lo) * glide * (1 - np.exp(-t / glide)))
        body = np.cos(phase) * np.exp(-t / voice.decays[0])
    else:
        body = np.zeros(n)
        for f, tau, level in zip(voice.freqs, voice.decays, voice.levels, strict=True):
            amp = level * float(rng.uniform(0.9, 1.1))
            phase = rng.uniform(0, 2 * np.pi)
            m = min(n, int(6.9 * tau * sample_rate))  # each mode only until it is 60 dB down
            body[:m] += amp * np.exp(-t[:m] / tau) * np.sin(2 * np.pi * f * detune * t[:m] + phase)
    body /= np.abs(body).max()
    low, high, tau, level = _CLICK[material]
    m = min(n, int(8 * tau * sample_rate) + 64)
    click = band_noise(rng, m, low, high, sample_rate) * np.exp(-t[:m] / tau)
    click *= level / max(np.abs(click).max(), 1e-12)
    body[:m] += click
    attack = max(round(ATTACK_S * sample_rate), 1)
    body[:attack] *= np.sin(0.5 * np.pi * np.arange(1, attack + 1) / attack) ** 2
    fade = max(int(TAIL_FADE_S * sample_rate), 1)
    body[-fade:] *= np.linspace(1, 0, fade)
    return body * (impact_gain(strength) / np.abs(body).max())


def sustained_sound(
    scene: Scene, event: dict[str, Any], voice: Voice, rng: np.random.Generator
) -> np.ndarray:
    """Noise in the material's band, its level following the floor speed at every frame of the event."""
    spec = scene.spec
    obj = scene.objects[event["object"]]
    start, end = spec.frame_sample(event["frame"]), spec.frame_sample(event["end_frame"])
    n = end - start
    if n <= 0:
        return np.zeros(0)
    frames = np.arange(event["frame"], event["end_frame"] + 1)
    speeds = np.abs(scene.velocities[np.minimum(frames, spec.n_frames - 1), obj.id, 0])
    speeds[-1] = 0.0  # the motion has stopped (or left the floor) at the end frame
    knots = np.array([spec.frame_sample(int(f)) for f in frames]) - start
    speed = np.interp(np.arange(n), knots, speeds)
    low, high = _SUSTAIN_BAND[obj.material.name]
    noise = band_noise(rng, n, low, high, spec.sample_rate)
    if event["kind"] == "roll":
        # A rolling ball rumbles once per turn, with a faint ring of its own modes.
        turn = np.cumsum(speed) / spec.sample_rate / obj.radius
        noise = noise * (1 + 0.6 * np.sin(turn)) + 0.3 * band_noise(
            rng, n, voice.freqs[0] * 0.95, voice.freqs[0] * 1.05, spec.sample_rate
        )
    fade = np.clip(np.arange(n) / (SUSTAIN_FADE_IN_S * spec.sample_rate), 0, 1)
    return noise * speed / V_REF * SUSTAIN_LEVEL * fade


def event_sounds(scene: Scene) -> Iterator[tuple[int, np.ndarray]]:
    """(first sample, sound) of every event, in event order; the sound track is exactly their sum."""
    spec = scene.spec
    voices = [object_voice(spec.seed, obj) for obj in scene.objects]
    for index, event in enumerate(scene.events):
        start = spec.frame_sample(event["frame"])
        if start >= spec.n_samples:
            continue
        rng = stream_rng(spec.seed, STREAM_EVENT, index)
        voice = voices[event["object"]]
        if event["kind"] == "impact":
            sound = impact_sound(event["material"], voice, event["strength"], rng, spec.sample_rate)
        else:
            sound = sustained_sound(scene, event, voice, rng)
        yield start, sound[: spec.n_samples - start]


def synthesize(scene: Scene) -> np.ndarray:
    """Mix the sounds of all events. float32 mono, exactly `spec.n_samples` samples; silence elsewhere."""
    out = np.zeros(scene.spec.n_samples)
    for start, sound in event_sounds(scene):
        out[start : start + len(sound)] += sound
    return np.clip(out, -1.0, 1.0).astype(np.float32)

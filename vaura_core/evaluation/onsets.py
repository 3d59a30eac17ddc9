"""Sound onsets as the alignment protocol detects them (shared/reference/sync-metrics.md, section 0).

librosa's spectral-flux onset strength (log-power mel spectrogram) of 16 kHz mono audio with n_fft 512
and a 10 ms hop, peak-picked with librosa's defaults (pre_max 30 ms, post_max 10 ms, pre/post_avg
100 ms, wait 30 ms, delta 0.07 on the envelope normalised to [0, 1]), then amplitude non-maximum
suppression over 50 ms; peaks whose 32 ms analysis window runs past the end of the audio are dropped.
`evaluation.sync` scores audio with it; choosing among candidates uses a lighter copy of the recipe
(`engine.onset_flux`), since importing librosa costs about a second.
"""

from __future__ import annotations

import numpy as np

DETECT_RATE = 16_000
N_FFT = 512
HOP = 160  # 10 ms
NMS_SECONDS = 0.05


def to_detect_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float audio resampled to 16 kHz (polyphase, exact ratio)."""
    from math import gcd

    from scipy.signal import resample_poly

    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"audio must be mono (samples,), got shape {x.shape}")
    if sample_rate == DETECT_RATE:
        return x
    g = gcd(int(sample_rate), DETECT_RATE)
    return resample_poly(x, DETECT_RATE // g, int(sample_rate) // g)


def onset_envelope(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """librosa's spectral-flux onset strength at a 10 ms hop (frame k is at k * 10 ms)."""
    import librosa

    y = to_detect_rate(audio, sample_rate).astype(np.float32)
    return librosa.onset.onset_strength(y=y, sr=DETECT_RATE, n_fft=N_FFT, hop_length=HOP)


def detect_onsets(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times in seconds, sorted."""
    import librosa

    env = onset_envelope(audio, sample_rate)
    if env.size == 0 or not np.any(env > 0):
        return np.zeros(0)
    frames = librosa.onset.onset_detect(
        onset_envelope=env, sr=DETECT_RATE, hop_length=HOP, units="frames", normalize=True
    )
    frames = _nms(frames, env, round(NMS_SECONDS * DETECT_RATE / HOP))
    n_samples = round(len(audio) * DETECT_RATE / sample_rate)
    frames = frames[frames * HOP + N_FFT // 2 <= n_samples]  # whole analysis window inside the audio
    return librosa.frames_to_time(frames, sr=DETECT_RATE, hop_length=HOP)


def _nms(frames: np.ndarray, env: np.ndarray, radius: int) -> np.ndarray:
    """Keep peaks that are the strongest within `radius` frames of every stronger kept peak."""
    kept: list[int] = []
    for f in sorted((int(f) for f in frames), key=lambda f: -env[f]):
        if all(abs(f - k) > radius for k in kept):
            kept.append(f)
    return np.array(sorted(kept), dtype=int)

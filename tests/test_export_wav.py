"""WAV export: formats, resampling, ranges, dither, loudness normalisation and atomic writes."""

from __future__ import annotations

import errno
import io
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.signal import resample_poly

from vaura_core.errors import Cancelled, VauraError
from vaura_core.export import LoudnessTarget, atomic_write_path, export_wav, integrated_loudness
from vaura_core.export import wav as wav_module

RATE = 44100


def sine(seconds: float, freq: float = 1000.0, amplitude: float = 0.5, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def independent_true_peak_db(samples: np.ndarray) -> float:
    """4x oversampled peak with scipy's polyphase filter, not the soxr path under test."""
    return 20 * np.log10(np.max(np.abs(resample_poly(samples, 4, 1, axis=0))))


def folder_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# Largest error allowed against the ideal sine: quantisation (and dither) sets the floor.
TOLERANCE = {"PCM_16": 1.5e-4, "PCM_24": 2e-6, "FLOAT": 2e-6}


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("out_rate", [44100, 48000])
def test_format_rate_and_content(tmp_path: Path, out_rate: int, subtype: str) -> None:
    dest = tmp_path / "out.wav"
    result = export_wav(sine(1.0), RATE, dest, out_rate=out_rate, subtype=subtype)
    data, rate = soundfile.read(dest, always_2d=True)
    info = soundfile.info(dest)
    assert (rate, info.subtype, info.format, data.shape) == (out_rate, subtype, "WAV", (out_rate, 1))
    assert result.frames == out_rate and result.sample_rate == out_rate
    # The sine keeps its frequency, amplitude and phase. The resampler rings for a few ms where the
    # audio begins and ends (the sine switches on and off there), so those edges are left out.
    body = slice(out_rate // 100, out_rate - out_rate // 100)
    expected = sine(1.0, rate=out_rate).astype(np.float64)
    assert np.max(np.abs(data[body, 0] - expected[body])) < TOLERANCE[subtype]
    spectrum = np.abs(np.fft.rfft(data[:, 0]))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins: 1 s of audio


@pytest.mark.parametrize("out_rate", [44100, 48000])
def test_range_length_and_alignment(tmp_path: Path, out_rate: int) -> None:
    start, end = 0.3104, 1.1372
    dest = tmp_path / "range.wav"
    export_wav(sine(2.0, freq=441.0), RATE, dest, out_rate=out_rate, subtype="FLOAT", start=start, end=end)
    data, _ = soundfile.read(dest)
    assert data.shape == (round((end - start) * out_rate),)
    # Sample k of the file is the source at start + k / out_rate, edges included (the resampler
    # is fed the audio around the range); the start lands on the source's sample grid.
    first = round(start * RATE) / RATE
    t = first + np.arange(data.size) / out_rate
    assert np.max(np.abs(data - 0.5 * np.sin(2 * np.pi * 441.0 * t))) < 1e-3


def test_stereo_is_kept(tmp_path: Path) -> None:
    stereo = np.stack([sine(0.5), -sine(0.5)], axis=1)
    export_wav(stereo, RATE, tmp_path / "s.wav", out_rate=48000)
    data, _ = soundfile.read(tmp_path / "s.wav")
    assert data.shape == (24000, 2)
    assert np.allclose(data[:, 0], -data[:, 1], atol=1e-6)


def test_tpdf_dither_keeps_quiet_detail(tmp_path: Path) -> None:
    quiet = sine(1.0, freq=100.0, amplitude=0.4 / 32768)  # under half an LSB of 16-bit
    export_wav(quiet, RATE, tmp_path / "plain.wav", out_rate=RATE, subtype="PCM_16", dither=False)
    export_wav(quiet, RATE, tmp_path / "dither.wav", out_rate=RATE, subtype="PCM_16")
    plain, _ = soundfile.read(tmp_path / "plain.wav", dtype="int16")
    dithered, _ = soundfile.read(tmp_path / "dither.wav", dtype="int16")
    assert not plain.any()  # rounding alone erases the signal
    assert dithered.any()
    assert set(np.unique(dithered)) <= {-2, -1, 0, 1, 2}
    # With dither the tone survives as the average of the noise.
    assert np.corrcoef(dithered.astype(float), quiet)[0, 1] > 0.1
    # Dither is seeded: the same export gives the same bytes.
    export_wav(quiet, RATE, tmp_path / "again.wav", out_rate=RATE, subtype="PCM_16")
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "dither.wav").read_bytes()


def test_overs_are_clipped_for_integer_formats(tmp_path: Path) -> None:
    loud = np.array([1.5, -1.5, 0.25], dtype=np.float32)
    export_wav(loud, RATE, tmp_path / "c.wav", out_rate=RATE, subtype="PCM_24")
    data, _ = soundfile.read(tmp_path / "c.wav", dtype="int32")
    assert list(data >> 8) == [8388607, -8388608, 2097152]


@pytest.mark.parametrize("target", [-23.0, -14.0, -24.0])
def test_loudness_normalisation_hits_target(tmp_path: Path, target: float) -> None:
    rng = np.random.default_rng(1)
    audio = (0.05 * rng.standard_normal(RATE * 3)).astype(np.float32) + sine(3.0, 300, 0.05)
    dest = tmp_path / "n.wav"
    result = export_wav(audio, RATE, dest, out_rate=48000, loudness=LoudnessTarget(target, -1.0))
    data, rate = soundfile.read(dest)
    assert abs(integrated_loudness(data, rate) - target) <= 0.5
    assert independent_true_peak_db(data) <= -1.0
    report = result.loudness
    assert report is not None and not report.peak_limited and report.skipped_reason is None
    assert abs(report.output_lufs - target) <= 0.1
    assert report.input_lufs == pytest.approx(integrated_loudness(audio, RATE), abs=0.2)


def test_true_peak_ceiling_lowers_gain(tmp_path: Path) -> None:
    clicks = np.zeros(RATE * 2, np.float32)
    clicks[::4410] = 0.9  # sparse transients: loud peaks, little loudness
    dest = tmp_path / "p.wav"
    result = export_wav(clicks, RATE, dest, subtype="FLOAT", loudness=LoudnessTarget(-14.0, -2.0))
    data, _ = soundfile.read(dest)
    report = result.loudness
    assert report is not None and report.peak_limited
    assert independent_true_peak_db(data) <= -2.0
    assert report.output_true_peak_db <= -2.0
    assert report.output_lufs < -14.0
    assert "true-peak ceiling" in report.summary


@pytest.mark.parametrize(
    ("audio", "reason"),
    [(np.zeros(RATE, np.float32), "silent"), (sine(0.2), "shorter than the 0.4 s")],
)
def test_loudness_leaves_silent_or_short_audio_alone(tmp_path: Path, audio: np.ndarray, reason: str) -> None:
    dest = tmp_path / "q.wav"
    result = export_wav(audio, RATE, dest, out_rate=RATE, subtype="FLOAT", loudness=LoudnessTarget())
    assert result.loudness is not None and reason in (result.loudness.skipped_reason or "")
    data, _ = soundfile.read(dest, dtype="float32")
    assert np.array_equal(data, audio)


def test_loudness_target_is_validated() -> None:
    with pytest.raises(VauraError, match="LUFS"):
        LoudnessTarget(lufs=5.0)
    with pytest.raises(VauraError, match="dBTP"):
        LoudnessTarget(true_peak_db=3.0)


def test_cancel_keeps_previous_file(tmp_path: Path) -> None:
    dest = tmp_path / "out.wav"
    dest.write_bytes(b"the previous export")
    cancel = threading.Event()

    def on_progress(fraction: float) -> None:
        if fraction > 0.3:  # the first block is written
            cancel.set()

    with pytest.raises(Cancelled, match=r"out\.wav: export cancelled"):
        export_wav(sine(5.0), RATE, dest, progress=on_progress, cancel=cancel)
    assert dest.read_bytes() == b"the previous export"
    assert folder_names(tmp_path) == ["out.wav"]


def test_interrupt_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = []
    real_quantize = wav_module._quantize

    def interrupted(*args: object) -> np.ndarray:
        blocks.append(1)
        if len(blocks) == 2:
            raise KeyboardInterrupt
        return real_quantize(*args)

    monkeypatch.setattr(wav_module, "_quantize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_wav(sine(5.0), RATE, tmp_path / "out.wav")
    assert folder_names(tmp_path) == []


class _DiskFull(io.FileIO):
    """A file whose disk fills up after the first 64 KiB."""

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > 65536:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_disk_full_is_reported_and_previous_file_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "out.wav"
    dest.write_bytes(b"older take")
    monkeypatch.setattr(wav_module, "_open_binary", lambda path: _DiskFull(path, "w+"))
    with pytest.raises(VauraError, match=r"out\.wav: could not write \(No space left on device\)"):
        export_wav(sine(3.0), RATE, dest)
    assert dest.read_bytes() == b"older take"
    assert folder_names(tmp_path) == ["out.wav"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and no root")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(VauraError, match=r"out\.wav: cannot write to the folder .*Permission denied"):
            export_wav(sine(0.5), RATE, folder / "out.wav")
    finally:
        folder.chmod(stat.S_IRWXU)


def test_folder_refusing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check as above, simulated, so it also runs as root (where permissions do not bite)."""
    real_open = os.open

    def refusing_open(path: object, *args: object, **kwargs: object) -> int:
        if Path(os.fspath(path)).parent == tmp_path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(VauraError, match=r"out\.wav: cannot write to the folder .*Permission denied"):
        export_wav(sine(0.5), RATE, tmp_path / "out.wav")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(VauraError, match=r"out\.wav: cannot write, the folder .*nope does not exist"):
        export_wav(sine(0.5), RATE, tmp_path / "nope" / "out.wav")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"out_rate": 22050}, "unsupported WAV sample rate 22050"),
        ({"subtype": "PCM_U8"}, "unsupported WAV sample format"),
        ({"start": 0.5, "end": 0.4}, "invalid export range"),
        ({"start": 0.0, "end": 9.0}, "invalid export range"),
        ({"start": -1.0}, "invalid export range"),
        ({"end": float("nan")}, "must be finite"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(VauraError, match=message):
        export_wav(sine(1.0), RATE, tmp_path / "x.wav", **kwargs)
    assert folder_names(tmp_path) == []


@pytest.mark.parametrize(
    ("audio", "rate", "message"),
    [
        (np.array([0.1, np.nan], np.float32), RATE, "NaN"),
        (np.zeros(0, np.float32), RATE, "no audio"),
        (np.zeros(10, np.int16), RATE, "floating point"),
        (np.zeros((2, 3, 4), np.float32), RATE, "shape"),
        (np.zeros(10, np.float32), 0, "invalid sample rate"),
    ],
)
def test_bad_audio(tmp_path: Path, audio: np.ndarray, rate: int, message: str) -> None:
    with pytest.raises(VauraError, match=message):
        export_wav(audio, rate, tmp_path / "x.wav")


def test_atomic_write_path_replaces_only_on_success(tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old")
    dest.chmod(0o640)
    seen: list[Path] = []

    def failing_writer() -> None:
        with atomic_write_path(dest) as temp:
            seen.append(temp)
            temp.write_bytes(b"half")
            raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        failing_writer()
    assert seen[0].parent == tmp_path and seen[0] != dest
    assert dest.read_bytes() == b"old"
    assert folder_names(tmp_path) == ["file.bin"]

    with atomic_write_path(dest) as temp:
        temp.write_bytes(b"new")
    assert dest.read_bytes() == b"new"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640  # the replaced file's permissions are kept
    assert folder_names(tmp_path) == ["file.bin"]


def test_atomic_write_path_refuses_a_folder(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with (
        pytest.raises(VauraError, match="a folder with that name exists"),
        atomic_write_path(tmp_path / "taken"),
    ):
        pass

"""`python main.py --self-test`: drive the real window through a whole Foley job and check the results.

Open the demo clip (or a Foley World clip made on the spot when the demo is missing), generate the
whole clip, select a region, regenerate it in 3 variations, audition one, commit the second, export a
WAV and an MP4 into a temporary folder, and verify them: lengths and streams, and the committed take's
samples in the exported WAV at their place. Everything happens through the window's own actions, on its
real engine thread, with settings and recovery copies in the temporary folder (the user's are never
touched). Prints one line per step; exits 0, or non-zero with the reason of the first failure.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import av
import numpy as np
import soundfile
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.export_dialog import ExportOptions
from app.main_window import MainWindow
from app.timeline import GENERATED_LANE, GRID_SECONDS
from vaura_core.project import Project

DEMO_CLIP = Path(__file__).resolve().parent.parent / "resources" / "examples" / "demo.mp4"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MODEL_UNAVAILABLE = 3
VARIATIONS = 3
COMMITTED = 1  # the second take
REGION_SECONDS = 4 * GRID_SECONDS
MODEL_TIMEOUT_S = 300.0
GENERATE_TIMEOUT_S = 900.0
EXPORT_TIMEOUT_S = 120.0
AUDIO_TOLERANCE = 1e-6  # a 32-bit float WAV at the track's rate holds the samples exactly


class SelfTestFailure(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def wait_until(app: QApplication, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Run the event loop until `condition()` holds; SelfTestFailure after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SelfTestFailure(f"timed out after {timeout_s:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.005)


def make_fallback_clip(folder: Path) -> Path:
    """A 6-second Foley World clip, for installations without the demo clip."""
    from vaura_core.foley_world import generate_scene, write_clip

    clip = folder / "foley-world.mp4"
    write_clip(generate_scene(seed=7, duration=6.0), clip, folder / "foley-world.json")
    return clip


class SelfTest:
    def __init__(self, app: QApplication, folder: Path, model: str | None, device: str, out: TextIO) -> None:
        self.app = app
        self.folder = folder
        self.model = model
        self.device = device
        self.out = out
        self.failures: list[str] = []
        settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
        self.window = MainWindow(
            settings,
            model=model,
            device=device,
            confirm_close=False,
            check_recovery=False,
            recovery_root=folder / "recovery",
        )
        self.window.generation_failed.connect(self.failures.append)
        # Connected before the event loop turns: the window starts loading its model at once.
        self.model_failures: list[str] = []
        self.window.engine.model_failed.connect(self.model_failures.append)
        self.window.resize(1440, 900)
        self.window.show()

    def step(self, text: str) -> None:
        print(f"  ✓ {text}", file=self.out, flush=True)

    def wait(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        def done() -> bool:
            if self.failures:
                raise SelfTestFailure(f"generation failed: {self.failures[-1]}")
            return condition()

        wait_until(self.app, done, timeout_s, what)

    @property
    def project(self) -> Project:
        project = self.window.project
        if project is None:
            raise SelfTestFailure("no project is open")
        return project

    # --- the job ------------------------------------------------------------------------------------

    def run(self) -> None:
        window = self.window
        clip = DEMO_CLIP if DEMO_CLIP.is_file() else make_fallback_clip(self.folder)
        ready: list[bool] = []
        window.clip_ready.connect(lambda: ready.append(True))
        if not window.open_clip(clip):
            raise SelfTestFailure(f"the clip did not open: {window.status_message()}")
        self.wait(lambda: bool(ready), 60, "the clip's audio and pictures")
        info = window.clip
        assert info is not None
        self.step(f"opened {clip.name} ({info.duration:.2f} s at {info.frame_rate:g} fps)")

        self._wait_for_model()
        self._generate()
        region_id, take_ids = self._regenerate()
        self._audition(region_id, take_ids[0])
        self._commit(region_id, take_ids[COMMITTED])
        self._export_wav(region_id, take_ids[COMMITTED])
        self._export_mp4()
        window.close()
        if window.engine.thread.isRunning():
            raise SelfTestFailure("the engine thread was still running after the window closed")
        self.step("closed the window; the engine thread has stopped")

    def _wait_for_model(self) -> None:
        window = self.window
        failed = self.model_failures

        def loaded() -> bool:
            if failed:
                raise SelfTestFailure(f"the model could not be loaded: {failed[-1]}", EXIT_MODEL_UNAVAILABLE)
            model = window.engine.model
            return model is not None and not window.engine.loading

        self.wait(loaded, MODEL_TIMEOUT_S, "the model to load")
        model = window.engine.model
        assert model is not None
        self.step(f"model {model.name} loaded on {model.device}")

    def _generate(self) -> None:
        window = self.window
        started = time.monotonic()
        window.generate_action.trigger()
        if not window.busy:
            raise SelfTestFailure(f"Generate did not start: {window.generate_action.toolTip()}")
        self.wait(lambda: self.project.base_take is not None, GENERATE_TIMEOUT_S, "the whole-clip take")
        track = self.project.render_track()
        if track is None:
            raise SelfTestFailure("no track after generating the whole clip")
        expected = self.project.n_samples
        if abs(len(track.audio) - expected) > 1:
            raise SelfTestFailure(f"the track has {len(track.audio)} samples, expected {expected}")
        if not np.isfinite(track.audio).all() or not np.abs(track.audio).max() > 0:
            raise SelfTestFailure("the generated track is silent or not finite")
        self.wait(lambda: window.timeline.drawn_points(GENERATED_LANE) > 0, 30, "the generated waveform")
        self.step(
            f"generated the whole clip in {time.monotonic() - started:.1f} s ({len(track.audio)} samples)"
        )

    def _regenerate(self) -> tuple[str, list[str]]:
        window = self.window
        duration = self.project.clip.duration
        start = round(0.3 * duration / GRID_SECONDS) * GRID_SECONDS
        end = min(start + REGION_SECONDS, duration)
        window.timeline.set_selection(start, end)
        if window.timeline.selection() != (start, end):
            raise SelfTestFailure(f"the selection is {window.timeline.selection()}, expected {(start, end)}")
        self.step(f"selected {window.timecode(start)} – {window.timecode(end)}")

        window.parameters.set_variations(VARIATIONS)
        window.regenerate_action.trigger()
        if not window.busy:
            raise SelfTestFailure(f"Regenerate did not start: {window.regenerate_action.toolTip()}")
        self.wait(lambda: not window.busy and bool(self.project.regions), GENERATE_TIMEOUT_S, "the new takes")
        region = self.project.regions[-1]
        if len(region.take_ids) != VARIATIONS:
            raise SelfTestFailure(f"the region has {len(region.take_ids)} takes, expected {VARIATIONS}")
        if (region.start, region.end) != (start, end):
            raise SelfTestFailure(f"the region spans {region.start}–{region.end}, expected {start}–{end}")
        rows = window.takes.rows()
        if [row.id for row in rows] != list(region.take_ids):
            raise SelfTestFailure("the takes panel does not list the region's takes")
        seeds = ", ".join(str(row.seed) for row in rows)
        self.step(f"regenerated the selection: {VARIATIONS} takes (seeds {seeds})")
        return region.id, list(region.take_ids)

    def _audition(self, region_id: str, take_id: str) -> None:
        window = self.window
        tree = window.takes.tree
        item = window.takes.item_for(take_id)
        if item is None:
            raise SelfTestFailure("the take to audition is not listed")
        rect = tree.visualItemRect(item)
        QTest.mouseClick(
            tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center()
        )
        if window.auditioning != (region_id, take_id):
            raise SelfTestFailure(f"clicking take 1 did not audition it (auditioning: {window.auditioning})")
        if window.timeline.audition() != region_id:
            raise SelfTestFailure("the timeline does not highlight the auditioned region")
        region = self.project.region(region_id)
        self.wait(lambda: window.player.is_playing, 5, "playback of the audition")
        self.wait(lambda: window.player.position() > region.start + 0.1, 10, "the audition to play on")
        position = window.player.position()
        if not region.start <= position <= region.end + 0.05:
            raise SelfTestFailure(f"the audition plays at {position:.2f} s, outside the region")
        sound = "with sound" if window.player.available else f"silently ({window.player.status_message})"
        self.step(f"auditioned take 1 in place, {sound}")

    def _commit(self, region_id: str, take_id: str) -> None:
        window = self.window
        tree = window.takes.tree
        if not window.takes.select_take(take_id):
            raise SelfTestFailure("the take to commit is not listed")
        tree.setFocus()
        QTest.keyClick(tree, Qt.Key.Key_Return)
        region = self.project.region(region_id)
        if region.committed != take_id:
            raise SelfTestFailure(
                f"Enter did not commit take {COMMITTED + 1} (committed: {region.committed})"
            )
        window.player.pause()
        track = self.project.render_track()
        take = self.project.take(take_id)
        assert track is not None and take.audio is not None
        inner = slice(take.sample_start + take.fade_in, take.sample_end - take.fade_out)
        expected = take.audio[take.fade_in : take.n_samples - take.fade_out]
        if not np.array_equal(track.audio[inner], expected):
            raise SelfTestFailure("the committed take is not in the track at its place")
        self.step(f"committed take {COMMITTED + 1} with Enter")
        if not window.wait_for_autosave():
            raise SelfTestFailure("the autosave did not finish")

    def _export(self, options: ExportOptions) -> None:
        window = self.window
        dialog = window.open_export_dialog()
        if dialog is None:
            raise SelfTestFailure(f"the export dialog did not open: {window.status_message()}")
        results: list[object] = []
        errors: list[str] = []
        dialog.export_finished.connect(results.append)
        dialog.export_failed.connect(errors.append)
        dialog.set_options(options)
        if not dialog.start():
            raise SelfTestFailure(f"the export did not start: {dialog.status.text()}")

        def finished() -> bool:
            if errors:
                raise SelfTestFailure(f"the export failed: {errors[-1]}")
            return bool(results)

        self.wait(finished, EXPORT_TIMEOUT_S, f"the export of {options.path.name}")
        dialog.close()

    def _export_wav(self, region_id: str, take_id: str) -> None:
        project = self.project
        path = self.folder / "foley.wav"
        self._export(ExportOptions(path, "wav", sample_rate=project.sample_rate, subtype="FLOAT"))
        samples, rate = soundfile.read(path, dtype="float32", always_2d=False)
        expected_frames = round(project.clip.duration * rate)
        if rate != project.sample_rate or len(samples) != expected_frames:
            raise SelfTestFailure(
                f"{path.name}: {len(samples)} frames at {rate} Hz, expected {expected_frames} at "
                f"{project.sample_rate} Hz"
            )
        take = project.take(take_id)
        assert take.audio is not None
        inner = slice(take.sample_start + take.fade_in, take.sample_end - take.fade_out)
        expected = take.audio[take.fade_in : take.n_samples - take.fade_out]
        error = float(np.max(np.abs(samples[inner] - expected)))
        if error > AUDIO_TOLERANCE:
            raise SelfTestFailure(
                f"{path.name}: the committed take differs by up to {error:.2e} at its place"
            )
        region = project.region(region_id)
        self.step(
            f"exported {path.name}: {len(samples)} frames at {rate} Hz; take {COMMITTED + 1} found at "
            f"{region.start:.2f}–{region.end:.2f} s"
        )

    def _export_mp4(self) -> None:
        project = self.project
        path = self.folder / "foley.mp4"
        self._export(ExportOptions(path, "mp4"))
        source = project.clip.path
        with av.open(str(source)) as src:
            source_packets = sum(1 for p in src.demux(src.streams.video[0]) if p.size)
        with av.open(str(path)) as out:
            videos, audios = out.streams.video, out.streams.audio
            if len(videos) != 1 or len(audios) != 1:
                raise SelfTestFailure(f"{path.name}: {len(videos)} video and {len(audios)} audio streams")
            audio_stream = audios[0]
            codec = audio_stream.codec_context.name
            video_packets = sum(1 for p in out.demux(videos[0]) if p.size)
        with av.open(str(path)) as out:
            decoded = sum(frame.samples for frame in out.decode(audio=0))
            rate = out.streams.audio[0].rate
        if video_packets != source_packets:
            raise SelfTestFailure(
                f"{path.name}: {video_packets} video packets, the source has {source_packets}"
            )
        audio_seconds = decoded / rate
        if not math.isclose(audio_seconds, project.clip.duration, abs_tol=0.1):
            raise SelfTestFailure(
                f"{path.name}: {audio_seconds:.3f} s of audio for a {project.clip.duration:.3f} s clip"
            )
        self.step(
            f"exported {path.name}: video copied ({video_packets} packets), "
            f"{codec} audio {audio_seconds:.2f} s"
        )


def run(
    model: str | None = None, device: str = "auto", keep: Path | None = None, out: TextIO = sys.stdout
) -> int:
    """Run the self-test in the running QApplication; returns the exit code."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        raise RuntimeError("the self-test needs a QApplication")
    print("VAURA Studio self-test", file=out, flush=True)
    with tempfile.TemporaryDirectory(prefix="vaura-self-test-") as temp:
        folder = keep if keep is not None else Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        test: SelfTest | None = None
        try:
            test = SelfTest(app, folder, model, device, out)
            test.run()
        except SelfTestFailure as failure:
            print(f"self-test FAILED: {failure}", file=out, flush=True)
            return failure.code
        except Exception as exc:  # a bug: the reason on stdout, the traceback on stderr
            traceback.print_exc()
            print(f"self-test FAILED: unexpected {type(exc).__name__}: {exc}", file=out, flush=True)
            return EXIT_FAILED
        finally:
            if test is not None:
                test.window.close()
                test.window.shutdown()
    print("self-test passed", file=out, flush=True)
    return EXIT_OK


__all__ = ["EXIT_FAILED", "EXIT_MODEL_UNAVAILABLE", "EXIT_OK", "SelfTestFailure", "run"]

"""The window's parts on their own: settings, undo adapter, panels, export job and dialog, preview loader."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from app.export_dialog import ExportDialog, ExportOptions, ExportSource, run_export
from app.panels import ParametersPanel, TakeRow, TakesPanel
from app.panels.status import MessageBar, TaskProgress, format_eta
from app.preview import FrameLoader
from app.settings import GENERATION_OPTIONS, AppSettings
from app.undo import ProjectHistory
from tests.media_factory import AudioSpec, make_video, read_index
from vaura_core.engine.candidates import DEFAULT_CANDIDATES
from vaura_core.engine.chains import DEFAULT_CHAINS
from vaura_core.errors import Cancelled, VauraError
from vaura_core.media import probe
from vaura_core.project import CommitTake, DeleteRegion, SetGain
from vaura_core.project.model import GenerationSettings
from vaura_core.project.synthetic import demo_project


@pytest.fixture
def store(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parts")
    return make_video(folder / "shot.mp4", fps=25, duration=2.0, audio=AudioSpec(beeps=(0.5,)))


# --- settings ------------------------------------------------------------------------------------------


def test_settings_round_trip_through_the_file(store: QSettings, tmp_path: Path) -> None:
    settings = AppSettings(store)
    assert settings.generation == GenerationSettings()  # V-AURA's defaults before anything is saved
    assert (settings.device, settings.model, settings.snap) == ("auto", "vaura-tiny", "frame")

    chosen = GenerationSettings(
        temperature=0.8,
        top_k=64,
        top_p=0.9,
        cfg_scale=4.5,
        seed_mode="locked",
        seed=42,
        variations=5,
        chains=4,
        candidates=2,
    )
    settings.generation = chosen
    settings.device = "cpu"
    settings.snap = "grid"
    settings.loop_audition = True
    settings.remember_recent("clips", tmp_path / "a.mp4")
    settings.remember_recent("clips", tmp_path / "b.mp4")
    settings.remember_recent("clips", tmp_path / "a.mp4")
    settings.remember_export(
        format="mp4", sample_rate=44100, subtype="FLOAT", loudness="-14", keep_original_audio=True
    )
    settings.sync()

    again = AppSettings(QSettings(store.fileName(), QSettings.Format.IniFormat))
    assert again.generation == chosen
    assert (again.device, again.snap, again.loop_audition) == ("cpu", "grid", True)
    assert again.recent("clips") == [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    assert again.last_folder("clips") == tmp_path
    assert again.export_defaults == {
        "format": "mp4",
        "sample_rate": 44100,
        "subtype": "FLOAT",
        "loudness": "-14",
        "keep_original_audio": True,
    }


def test_settings_with_bad_values_fall_back_to_defaults(store: QSettings) -> None:
    store.setValue(GENERATION_OPTIONS["temperature"].key, "hot")
    store.setValue(GENERATION_OPTIONS["top_k"].key, -5)
    store.setValue(GENERATION_OPTIONS["variations"].key, 99)
    store.setValue(GENERATION_OPTIONS["seed_mode"].key, "sometimes")
    store.setValue("timeline/snap", "beats")
    store.setValue("export/sampleRate", 22050)
    store.setValue("recentFiles", 17)
    settings = AppSettings(store)
    assert settings.generation == GenerationSettings()
    assert settings.snap == "frame"
    assert settings.export_defaults["sample_rate"] == 48000
    assert settings.recent("clips") == []


# --- undo adapter --------------------------------------------------------------------------------------


def test_history_undoes_and_redoes_data_commands_and_tracks_unsaved_changes(qtbot, clip: Path) -> None:
    project = demo_project(clip, duration=2.0, regions=2, variations=3)
    history = ProjectHistory()
    history.set_project(project)
    changes: list[None] = []
    history.changed.connect(lambda: changes.append(None))
    assert not history.modified

    region = project.regions[0]
    before = project.render_track()
    history.push(CommitTake(region.id, region.take_ids[0]))
    assert project.region(region.id).committed == region.take_ids[0]
    assert history.modified
    assert history.stack.undoText() == "Commit take"

    history.push(DeleteRegion(region.id))
    assert all(r.id != region.id for r in project.regions)
    history.stack.undo()
    restored = project.region(region.id)
    assert restored.take_ids == region.take_ids  # the takes came back with the region
    history.stack.undo()
    assert project.region(region.id).committed == region.committed
    assert before is not None and project.render_track() is not None
    assert np.array_equal(project.render_track().audio, before.audio)
    assert not history.modified  # back at the saved state
    history.stack.redo()
    history.stack.redo()
    assert all(r.id != region.id for r in project.regions)
    assert changes


def test_consecutive_gain_drags_merge_into_one_undo_step(qtbot, clip: Path) -> None:
    project = demo_project(clip, duration=2.0, regions=1)
    history = ProjectHistory()
    history.set_project(project)
    for db in (-1.0, -2.5, -4.0, -6.0):
        history.push(SetGain("generated", db))
    history.push(SetGain("original", -3.0))
    assert history.stack.count() == 2
    history.stack.undo()
    assert project.lanes["original"].gain_db == 0.0
    assert project.lanes["generated"].gain_db == -6.0
    history.stack.undo()
    assert project.lanes["generated"].gain_db == 0.0
    history.stack.redo()
    assert project.lanes["generated"].gain_db == -6.0


def test_a_command_that_does_not_fit_never_reaches_the_stack(qtbot, clip: Path) -> None:
    from vaura_core.project import CommandError

    history = ProjectHistory()
    history.set_project(demo_project(clip, duration=2.0, regions=1))
    with pytest.raises(CommandError):
        history.push(CommitTake("r-no-such-region", None))
    assert history.stack.count() == 0
    assert not history.modified


# --- panels --------------------------------------------------------------------------------------------


def test_parameters_panel_has_vaura_defaults_and_seeds(qtbot) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    s = panel.generation_settings()
    assert (s.temperature, s.top_k, s.top_p, s.cfg_scale, s.variations) == (0.95, 128, 0.0, 6.0, 1)
    assert panel.top_k.specialValueText() == "off"
    for widget in (panel.temperature, panel.top_k, panel.top_p, panel.guidance, panel.seed, panel.dice):
        assert widget.toolTip()

    panel.set_variations(3)
    panel.seed_lock.setChecked(True)
    panel.seed.setValue(1000)
    assert panel.draw_seeds() == [1000, 1001, 1002]
    assert panel.draw_seeds() == [1000, 1001, 1002]  # locked: reproducible
    panel.seed_lock.setChecked(False)
    first, second = panel.draw_seeds(), panel.draw_seeds()
    assert len(first) == 3 and first != second
    assert panel.seed.value() == second[0]  # the box shows the seed used, to lock it later
    with qtbot.waitSignal(panel.settings_changed) as changed:
        panel.dice.click()
    assert changed.args[0].seed == panel.seed.value()
    panel.set_devices(["auto", "cpu"], "cpu")
    assert panel.device() == "cpu"
    panel.set_models(["test-a"], "vaura-tiny", missing=["vaura-tiny"])
    assert panel.model_name() == "vaura-tiny"
    assert "not installed" in panel.model_combo.currentText()


def test_parameters_panel_offers_parallel_chains_for_long_clips(qtbot) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    assert panel.chain_count() == DEFAULT_CHAINS == 4 and panel.chains.toolTip()  # parallel by default
    with qtbot.waitSignal(panel.settings_changed) as changed:
        panel.chains.setCurrentIndex(panel.chains.findData(1))
    assert changed.args[0].chains == 1 and panel.chain_count() == 1
    panel.set_generation_settings(GenerationSettings(chains=3))  # a value the list does not offer
    assert panel.chain_count() == 3 and panel.generation_settings().chains == 3


def test_parameters_panel_sets_the_candidates_per_stretch(qtbot) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    assert panel.candidate_count() == DEFAULT_CANDIDATES == 3 and panel.candidates.toolTip()
    with qtbot.waitSignal(panel.settings_changed) as changed:
        panel.candidates.setValue(5)
    assert changed.args[0].candidates == 5 and panel.candidate_count() == 5
    panel.set_generation_settings(GenerationSettings(candidates=1))
    assert panel.candidate_count() == 1 and panel.generation_settings().candidates == 1


def _rows(n: int) -> list[TakeRow]:
    return [
        TakeRow(f"t{i}", i + 1, i, 100 + i, {"temperature": 0.95, "top_k": 128, "cfg_scale": 6.0}, 0.0)
        for i in range(n)
    ]


def test_takes_panel_click_auditions_enter_and_double_click_commit_delete_removes(qtbot) -> None:
    panel = TakesPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_takes("Region 1", _rows(3), committed="t0")
    assert [r.id for r in panel.rows()] == ["t0", "t1", "t2"]
    assert "✓" in panel.tree.topLevelItem(0).text(0)
    tree = panel.tree

    def centre(take: str):
        item = panel.item_for(take)
        assert item is not None
        return tree.visualItemRect(item).center()

    with qtbot.waitSignal(panel.audition_requested) as audition:
        QTest.mouseClick(
            tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre("t1")
        )
    assert audition.args == ["t1"]
    with qtbot.waitSignal(panel.commit_requested) as commit:
        QTest.keyClick(tree, Qt.Key.Key_Return)
    assert commit.args == ["t1"]
    with qtbot.waitSignal(panel.commit_requested) as commit:
        # A real double-click is a click followed by a double-click event at the same place.
        QTest.mouseClick(
            tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre("t2")
        )
        QTest.mouseDClick(
            tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre("t2")
        )
    assert commit.args == ["t2"]
    with qtbot.waitSignal(panel.delete_requested) as delete:
        QTest.keyClick(tree, Qt.Key.Key_Delete)
    assert delete.args == ["t2"]
    with qtbot.waitSignal(panel.ab_requested):
        panel.ab_button.click()

    panel.set_takes("Region 1", _rows(2), committed=None)  # the selected take was deleted
    assert panel.current_take() is None
    assert not panel.commit_button.isEnabled()


def test_status_widgets(qtbot) -> None:
    assert format_eta(None) == ""
    assert format_eta(12.4) == "about 12 s left"
    assert format_eta(125) == "about 2 min 05 s left"
    progress = TaskProgress()
    qtbot.addWidget(progress)
    progress.start("Generating")
    assert progress.isVisibleTo(progress.parentWidget() or progress) or not progress.isHidden()
    progress.report(0.5, 30.0, "window 2/4")
    assert progress.fraction() == pytest.approx(0.5)
    assert "30 s" in progress.eta.text() and progress.stage.text() == "Window 2/4"
    with qtbot.waitSignal(progress.cancel_clicked):
        progress.cancel_button.click()

    bar = MessageBar()
    qtbot.addWidget(bar)
    pressed: list[str] = []
    bar.show_message("Recover?", "warning", [("Recover", lambda: pressed.append("r"))])
    bar.buttons["Recover"].click()
    assert pressed == ["r"] and bar.isHidden()


# --- export --------------------------------------------------------------------------------------------


def _source(clip: Path, selection: tuple[float, float] | None = None) -> ExportSource:
    info = probe(clip)
    n = round(info.duration * 44100)
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)
    return ExportSource(audio, 44100, clip, info.duration, selection)


def test_run_export_writes_wav_ranges_and_videos_with_streams(tmp_path: Path, clip: Path) -> None:
    source = _source(clip, selection=(0.5, 1.25))
    whole = run_export(source, ExportOptions(tmp_path / "a.wav", "wav", 44100, "FLOAT"))
    samples, rate = soundfile.read(whole.path, dtype="float32")
    assert rate == 44100 and np.array_equal(samples, source.audio)

    part = run_export(source, ExportOptions(tmp_path / "b.wav", "wav", 48000, "PCM_24", selection_only=True))
    info = soundfile.info(part.path)
    assert (info.samplerate, info.frames, info.subtype) == (48000, 36000, "PCM_24")

    loud = run_export(source, ExportOptions(tmp_path / "c.wav", "wav", 48000, "PCM_16", loudness="-14"))
    assert "LUFS" in loud.summary

    video = run_export(source, ExportOptions(tmp_path / "d.mov", "mov", keep_original_audio=True))
    with av.open(str(video.path)) as out:
        assert len(out.streams.video) == 1
        assert len(out.streams.audio) == 2  # the generated track and the original one

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        run_export(source, ExportOptions(tmp_path / "e.wav"), cancel=cancel)
    assert not (tmp_path / "e.wav").exists()
    with pytest.raises(VauraError, match="no selection"):
        run_export(_source(clip), ExportOptions(tmp_path / "f.wav", selection_only=True))


def test_export_dialog_runs_off_the_gui_thread_and_reports(qtbot, tmp_path: Path, clip: Path) -> None:
    dialog = ExportDialog(_source(clip, selection=(0.2, 0.6)), {"format": "wav"}, tmp_path)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.path_edit.text().endswith("shot-foley.wav")
    assert dialog.selection_radio.isEnabled()
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("mp4"))
    assert dialog.path_edit.text().endswith("shot-foley.mp4")
    assert not dialog.rate_combo.isEnabled() and dialog.original_audio.isEnabled()

    dialog.set_options(ExportOptions(tmp_path / "sel.wav", "wav", 44100, "FLOAT", selection_only=True))
    with qtbot.waitSignal(dialog.export_finished, timeout=20_000) as done:
        assert dialog.start()
        assert dialog.running and not dialog.export_button.isEnabled()
    assert done.args[0].path == tmp_path / "sel.wav"
    assert soundfile.info(str(tmp_path / "sel.wav")).frames == round(0.4 * 44100)
    assert not dialog.running and dialog.progress.value() == 1000

    dialog.set_options(ExportOptions(tmp_path / "missing" / "x.wav"))
    with qtbot.waitSignal(dialog.export_failed) as failed:
        assert not dialog.start()
    assert "does not exist" in failed.args[0]


def test_a_job_done_before_submit_returns_is_still_delivered_by_the_event_loop(qtbot) -> None:
    # The export dialog's start() once saw its own finish callback run inside submit() when the job
    # beat add_done_callback (CI under load): then it was no longer running when start() returned.
    from concurrent.futures import Future

    from app.background import SerialExecutor

    class DoneAtOnce:
        def submit(self, work):
            future: Future = Future()
            future.set_result(work())
            return future

        def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
            pass

    jobs = SerialExecutor("test")
    jobs._pool = DoneAtOnce()
    got: list[int] = []
    jobs.submit(lambda: 5, on_done=got.append)
    assert got == [] and jobs.busy  # not yet: the caller's next line runs first
    qtbot.waitUntil(lambda: got == [5], timeout=2000)
    assert not jobs.busy


# --- preview -------------------------------------------------------------------------------------------


def test_frame_loader_delivers_the_newest_request_off_the_gui_thread(qtbot, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "index.mp4", fps=25, n_frames=30, size=(64, 48))
    loader = FrameLoader()
    loader.set_clip(probe(clip))
    shown: list[tuple[float, float, int]] = []

    def on_frame(requested: float, frame_time: float, image) -> None:
        pixels = image.constBits().tobytes()
        rgb = np.frombuffer(pixels, np.uint8).reshape(image.height(), image.bytesPerLine())[
            :, : image.width() * 3
        ]
        shown.append((requested, frame_time, read_index(rgb.reshape(image.height(), image.width(), 3))))

    loader.frame_ready.connect(on_frame)
    for t in (0.0, 0.2, 0.4, 0.52):  # the middle ones may be skipped: the newest wins
        loader.request(t)
    qtbot.waitUntil(lambda: bool(shown) and shown[-1][0] == 0.52, timeout=10_000)
    _requested, frame_time, index = shown[-1]
    assert index == 13 and frame_time == pytest.approx(13 / 25)
    assert len(shown) <= 4
    loader.shutdown()

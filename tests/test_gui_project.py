"""The window with projects (no model needed): save/open, unsaved-changes title, undo/redo of edits,
recovery after a crash, relinking a moved clip, export, the close question, silent playback.

Projects come from `vaura_core.project.synthetic` (noise takes with the engine's layout) on a real clip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from app.export_dialog import ExportOptions
from app.main_window import MainWindow
from tests.gui_helpers import quiet_window
from tests.media_factory import AudioSpec, make_video, read_index
from vaura_core.project import BASE, find_recoverable, load, save_as
from vaura_core.project.synthetic import demo_project

REPO_ROOT = Path(__file__).resolve().parent.parent
DURATION = 2.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("project-clips")
    return make_video(folder / "scene.mp4", fps=25, duration=DURATION, audio=AudioSpec(beeps=(0.5, 1.5)))


@pytest.fixture
def saved_project(tmp_path: Path, clip: Path) -> Path:
    project = demo_project(clip, duration=DURATION, regions=2, variations=3)
    return save_as(project, tmp_path / "Scene.vaura")


def _window(qtbot, tmp_path: Path, **options: object) -> MainWindow:
    return quiet_window(
        qtbot,
        QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
        tmp_path,
        activate=True,
        **options,
    )


def _open(qtbot, window: MainWindow, folder: Path) -> None:
    with qtbot.waitSignal(window.clip_ready, timeout=10_000):
        assert window.open_project(folder), window.status_message()


def test_a_saved_project_opens_with_its_takes_and_edits_mark_it_unsaved(
    qtbot, tmp_path: Path, saved_project: Path
) -> None:
    window = _window(qtbot, tmp_path)
    _open(qtbot, window, saved_project)
    project = window.project
    assert project is not None
    assert window.windowTitle() == "Scene — scene.mp4 — VAURA Studio"
    assert window.recent_projects() == [saved_project]
    views = window.timeline.regions()
    assert [(v.start, v.end) for v in views] == [(r.start, r.end) for r in project.regions]
    assert views[0].label.startswith("Take 2")  # the second take is committed
    assert window.timeline.drawn_points("generated") > 0

    # Clicking a region lists its takes; committing another one is an unsaved change.
    region = project.regions[0]
    window.timeline.region_clicked.emit(region.id)
    assert window.active_target == region.id
    assert window.timeline.selection() == (region.start, region.end)
    assert [row.id for row in window.takes.rows()] == list(region.take_ids)
    assert window.commit_take(region.take_ids[2])
    assert window.windowTitle() == "Scene* — scene.mp4 — VAURA Studio"
    assert window.timeline.regions()[0].label.startswith("Take 3")

    # Undo back to the saved state: no longer modified. Redo, then save with Ctrl+S.
    window.undo_action.trigger()
    assert project.region(region.id).committed == region.take_ids[1]
    assert window.windowTitle() == "Scene — scene.mp4 — VAURA Studio"
    window.redo_action.trigger()
    QTest.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not window.history.modified
    assert "Saved" in window.status_message()

    reopened, report = load(saved_project)
    assert report.ok
    assert reopened.region(region.id).committed == region.take_ids[2]
    track, again = project.render_track(), reopened.render_track()
    assert track is not None and again is not None
    assert np.array_equal(track.audio, again.audio)


def test_delete_take_and_region_and_gain_drags_undo_as_steps(
    qtbot, tmp_path: Path, saved_project: Path
) -> None:
    window = _window(qtbot, tmp_path)
    _open(qtbot, window, saved_project)
    project = window.project
    assert project is not None
    region = project.regions[1]
    window.timeline.region_clicked.emit(region.id)

    window.takes.select_take(region.take_ids[0])
    window.takes.tree.setFocus()
    QTest.keyClick(window.takes.tree, Qt.Key.Key_Delete)
    assert project.region(region.id).take_ids == region.take_ids[1:]
    assert len(window.takes.rows()) == 2

    QTest.keyClick(window, Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)  # Delete Region
    assert all(r.id != region.id for r in project.regions)
    assert window.active_target == BASE
    assert len(window.timeline.regions()) == 1

    header = window.timeline.lane_header("generated")
    for position in (-10, -20, -30):  # one drag of the fader: half-decibel steps
        header.gain_slider.setValue(position)
    assert project.lanes["generated"].gain_db == pytest.approx(-15.0)
    assert window.player.lanes["generated"].gain == pytest.approx(10 ** (-15 / 20))
    header.solo_button.click()
    assert project.lanes["generated"].solo

    window.undo_action.trigger()  # solo
    window.undo_action.trigger()  # the whole gain drag
    assert project.lanes["generated"].gain_db == 0.0
    assert window.timeline.lane_state("generated").gain == pytest.approx(1.0)
    window.undo_action.trigger()  # the region comes back with its remaining takes
    assert project.region(region.id).take_ids == region.take_ids[1:]
    window.undo_action.trigger()
    assert project.region(region.id).take_ids == region.take_ids
    assert not window.history.modified


def test_audition_and_ab_switch_what_the_region_plays(qtbot, tmp_path: Path, saved_project: Path) -> None:
    window = _window(qtbot, tmp_path)
    _open(qtbot, window, saved_project)
    project = window.project
    assert project is not None
    region = project.regions[0]
    window.timeline.region_clicked.emit(region.id)
    item = window.takes.item_for(region.take_ids[0])
    assert item is not None
    tree = window.takes.tree
    QTest.mouseClick(
        tree.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        tree.visualItemRect(item).center(),
    )
    assert window.auditioning == (region.id, region.take_ids[0])
    assert window.timeline.audition() == region.id
    assert window.player.auditioning and window.player.is_playing
    assert window.takes.ab_label.text() == "B · take 1"
    qtbot.waitUntil(lambda: window.player.position() > region.start, timeout=5000)

    QTest.keyClick(window, Qt.Key.Key_B)  # A/B: back to the committed take
    assert not window.hearing_candidate and not window.player.auditioning
    assert window.takes.ab_label.text() == "A · committed"
    QTest.keyClick(window, Qt.Key.Key_B)
    assert window.hearing_candidate and window.player.auditioning

    QTest.keyClick(window, Qt.Key.Key_Escape)  # stop auditioning
    assert window.auditioning is None and not window.player.is_playing


def test_silent_playback_moves_the_picture_frame_accurately(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.audio.playback as playback

    def no_portaudio():
        raise OSError("PortAudio library not found")

    monkeypatch.setattr(playback, "_import_sounddevice", no_portaudio)
    clip = make_video(tmp_path / "index.mp4", fps=25, n_frames=50, size=(64, 48))
    window = _window(qtbot, tmp_path, use_audio_device=True)
    assert not window.player.available
    assert window.audio_label.text() == "No sound"
    assert "PortAudio" in window.audio_label.toolTip()
    with qtbot.waitSignal(window.clip_ready, timeout=10_000):
        assert window.open_clip(clip)

    QTest.keyClick(window, Qt.Key.Key_Space)
    assert window.player.is_playing
    qtbot.waitUntil(lambda: window.player.position() > 0.5, timeout=5000)
    QTest.keyClick(window, Qt.Key.Key_Space)
    assert not window.player.is_playing
    position = window.player.position()
    assert window.timeline.playhead() == pytest.approx(position, abs=1e-6)
    window.frames.wait_idle()
    expected = int(position * 25 + 1e-6)
    qtbot.waitUntil(lambda: window.frames.frame_time == pytest.approx(expected / 25), timeout=5000)
    picture = (
        window.preview.source_pixmap()
        .toImage()
        .convertToFormat(window.preview.source_pixmap().toImage().Format.Format_RGB888)
    )
    rgb = np.frombuffer(picture.constBits().tobytes(), np.uint8).reshape(
        picture.height(), picture.bytesPerLine()
    )
    assert read_index(rgb[:, : picture.width() * 3].reshape(picture.height(), picture.width(), 3)) == expected

    QTest.keyClick(window, Qt.Key.Key_Right)  # one frame on
    assert window.player.position() == pytest.approx((expected + 1) / 25)
    QTest.keyClick(window, Qt.Key.Key_Home)
    assert window.player.position() == 0.0
    QTest.keyClick(window, Qt.Key.Key_L)
    assert window.player.rate == 1.0
    QTest.keyClick(window, Qt.Key.Key_L)
    assert window.player.rate == 2.0
    QTest.keyClick(window, Qt.Key.Key_K)
    assert not window.player.is_playing
    QTest.keyClick(window, Qt.Key.Key_End)
    QTest.keyClick(window, Qt.Key.Key_J)
    assert window.player.rate == -1.0 and window.player.is_playing


def test_recovery_after_a_crash_is_offered_and_brings_every_take_back(
    qtbot, tmp_path: Path, clip: Path
) -> None:
    recovery = tmp_path / "recovery"
    # A session that autosaves and then dies without closing (as a kill -9 would leave it).
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from vaura_core.project import Autosaver
        from vaura_core.project.synthetic import demo_project
        project = demo_project(Path({str(clip)!r}), duration={DURATION}, regions=2, variations=3)
        project.name = "Crashed scene"
        Autosaver(project, root=Path({str(recovery)!r})).autosave_now()
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, check=True, timeout=60)
    assert len(find_recoverable(recovery)) == 1

    window = _window(qtbot, tmp_path, check_recovery=True)
    qtbot.waitUntil(lambda: window.message_bar.isVisible(), timeout=5000)
    assert "Crashed scene" in window.message_bar.text()
    assert "7 takes" in window.message_bar.text()
    with qtbot.waitSignal(window.clip_ready, timeout=10_000):
        window.message_bar.buttons["Recover"].click()
    project = window.project
    assert project is not None and project.name == "Crashed scene"
    assert len(project.takes) == 7 and len(project.regions) == 2
    assert window.windowTitle().startswith("Crashed scene*")  # recovered work is unsaved
    window.wait_for_autosave()
    qtbot.waitUntil(lambda: not find_recoverable(recovery), timeout=5000)  # the old copy is gone
    assert window.autosaver is not None and (window.autosaver.folder / "project.json").is_file()


def test_a_moved_clip_opens_the_project_and_asks_to_relink(
    qtbot, tmp_path: Path, clip: Path, saved_project: Path
) -> None:
    moved = tmp_path / "elsewhere" / "renamed.mp4"
    moved.parent.mkdir()
    moved.write_bytes(clip.read_bytes())
    project, _ = load(saved_project)
    project.clip = project.clip.__class__(**{**project.clip.__dict__, "path": tmp_path / "gone.mp4"})
    save_as(project, saved_project)

    window = _window(qtbot, tmp_path)
    assert window.open_project(saved_project)
    assert window.clip is None and window.project is not None
    assert "Relink Clip…" in window.message_bar.buttons
    assert "relink" in window.preview.text().lower()

    other = make_video(tmp_path / "other.mp4", fps=25, duration=1.0)
    assert not window.relink_clip(other)  # a different video is refused...
    assert "not the project's clip" in window.message_bar.text()
    assert "Relink Anyway" in window.message_bar.buttons
    with qtbot.waitSignal(window.clip_ready, timeout=10_000):
        assert window.relink_clip(moved)  # ...the same one, moved, is accepted
    assert window.clip is not None and window.clip.path == moved
    assert window.history.modified
    window.undo_action.trigger()
    assert window.project.clip.path == tmp_path / "gone.mp4"


def test_export_from_the_window_writes_the_track_and_the_video(
    qtbot, tmp_path: Path, saved_project: Path
) -> None:
    window = _window(qtbot, tmp_path)
    _open(qtbot, window, saved_project)
    project = window.project
    assert project is not None
    region = project.regions[0]
    window.timeline.region_clicked.emit(region.id)

    dialog = window.open_export_dialog()
    assert dialog is not None and dialog.selection_radio.isEnabled()
    dialog.set_options(ExportOptions(tmp_path / "region.wav", "wav", 44100, "FLOAT", selection_only=True))
    with qtbot.waitSignal(window.export_done, timeout=20_000):
        assert dialog.start()
    samples, rate = soundfile.read(tmp_path / "region.wav", dtype="float32")
    track = project.render_track()
    assert track is not None
    first = round(region.start * rate)
    assert np.array_equal(samples, track.audio[first : first + len(samples)])
    assert window.settings.last_folder("export") == tmp_path

    dialog = window.open_export_dialog()
    assert dialog is not None
    dialog.set_options(ExportOptions(tmp_path / "scene.mp4", "mp4", keep_original_audio=True))
    with qtbot.waitSignal(window.export_done, timeout=30_000):
        assert dialog.start()
    with av.open(str(tmp_path / "scene.mp4")) as out:
        assert len(out.streams.video) == 1 and len(out.streams.audio) == 2
    assert window.settings.export_defaults["format"] == "mp4"


def test_closing_with_unsaved_changes_asks_first(
    qtbot, tmp_path: Path, saved_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = _window(qtbot, tmp_path, confirm_close=True)
    _open(qtbot, window, saved_project)
    project = window.project
    assert project is not None
    window.timeline.region_clicked.emit(project.regions[0].id)
    assert window.commit_take(project.regions[0].take_ids[0])

    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Discard]
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *args: answers.pop(0)))
    window.close()
    assert window.isVisible()  # Cancel keeps the window and its work
    window.close()
    assert not window.isVisible()
    assert not answers
    assert os.listdir(tmp_path / "recovery") == []  # a clean exit leaves no recovery copy


def test_self_test_exits_with_the_reason_when_the_model_is_missing() -> None:
    result = subprocess.run(
        [sys.executable, "main.py", "--self-test", "--model", "no-such-model", "--device", "cpu"],
        cwd=REPO_ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "✓ opened" in result.stdout
    assert "self-test FAILED: the model could not be loaded" in result.stdout
    assert "no-such-model" in result.stdout
    assert "Traceback" not in result.stderr

"""The window with the real engine thread and a random-weight model: the whole Foley workflow.

Drop a clip, generate, select, regenerate in variations, audition, commit, undo/redo, cancel, and the
GUI thread never stalling while the model works. One engine thread is shared by the module's windows
(loading the model once); the first test uses a window that owns and shuts down its own engine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.main_window import MainWindow
from app.worker import EngineHost
from tests.gui_helpers import quiet_window
from tests.media_factory import AudioSpec, make_video
from tests.model_fixtures import install_random_model
from vaura_core.project import BASE

MODEL = "gui-window-test"
LOAD_TIMEOUT_MS = 90_000
RUN_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def model_name() -> str:
    install_random_model(Path(os.environ["VAURA_HOME"]), MODEL)
    return MODEL


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("window-clips")
    return make_video(folder / "hits.mp4", fps=25, duration=2.0, audio=AudioSpec(beeps=(0.4, 1.2)))


@pytest.fixture(scope="module")
def engine(qapp, model_name: str):
    host = EngineHost(compute_threads=1)
    ready: list[str] = []
    host.model_ready.connect(lambda name, device: ready.append(name))
    host.load_model(model_name, "cpu", "fp32")
    deadline = time.monotonic() + LOAD_TIMEOUT_MS / 1000
    while not ready and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert ready == [model_name]
    yield host
    assert host.shutdown(10_000)


def _window(qtbot, tmp_path: Path, **options: object) -> MainWindow:
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    options = {"load_model": True, "model": MODEL, "device": "cpu", **options}
    return quiet_window(qtbot, settings, tmp_path, activate=True, **options)


def _drop(window: MainWindow, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(
        window.preview.rect().center(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window.preview, enter)
    drop = QDropEvent(
        window.preview.rect().center(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window.preview, drop)


def test_the_default_model_loads_in_the_background_or_says_it_is_missing(
    qtbot, tmp_path: Path, model_name: str, clip: Path
) -> None:
    window = _window(qtbot, tmp_path, model="no-such-model")
    qtbot.waitUntil(lambda: window.message_bar.isVisible(), timeout=LOAD_TIMEOUT_MS)
    assert "no-such-model" in window.message_bar.text()
    assert window.model_label.text() == "No model"
    with qtbot.waitSignal(window.clip_ready, timeout=10_000):
        assert window.open_clip(clip)  # everything else works
    assert not window.generate_action.isEnabled()
    assert "no model" in window.generate_action.toolTip()

    # Choosing an installed model in the panel loads it on the window's own engine thread.
    window.parameters.set_models([model_name], model_name)
    with qtbot.waitSignal(window.engine.model_ready, timeout=LOAD_TIMEOUT_MS):
        window.parameters.model_combo.activated.emit(0)
    assert window.model_label.text() == f"Model: {model_name} · cpu"
    assert window.generate_action.isEnabled()
    assert window.settings.model == model_name
    thread = window.engine.thread
    window.close()
    assert not thread.isRunning()  # closing shuts the engine thread down


def test_drop_generate_select_regenerate_audition_commit_undo_redo(
    qtbot, tmp_path: Path, engine: EngineHost, clip: Path
) -> None:
    window = _window(qtbot, tmp_path, engine=engine)
    with qtbot.waitSignal(window.clip_ready, timeout=10_000):
        _drop(window, clip)
    assert window.clip is not None and window.clip.path == clip
    assert window.generate_action.isEnabled() and not window.regenerate_action.isEnabled()

    # Generate the whole clip (Ctrl+G): one take, committed, drawn on the generated lane.
    with qtbot.waitSignal(window.takes_added, timeout=RUN_TIMEOUT_MS) as added:
        QTest.keyClick(window, Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)
        assert window.busy and window.task_progress.isVisible()
    assert added.args[0] == BASE
    project = window.project
    assert project is not None and project.base_take == added.args[1][0]
    assert not window.task_progress.isVisible()
    assert window.windowTitle().startswith("Untitled*")
    qtbot.waitUntil(lambda: window.timeline.drawn_points("generated") > 0, timeout=10_000)
    assert window.takes.rows()[0].id == project.base_take

    # Select a range and regenerate it in three variations (Ctrl+R).
    window.timeline.set_selection(0.64, 1.28)
    window.parameters.set_variations(3)
    assert window.regenerate_action.isEnabled()
    with qtbot.waitSignal(window.takes_added, timeout=RUN_TIMEOUT_MS) as added:
        QTest.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    region_id, take_ids = added.args
    region = project.region(region_id)
    assert (region.start, region.end) == (0.64, 1.28)
    assert region.committed is None and len(take_ids) == 3
    assert window.active_target == region_id
    assert [row.id for row in window.takes.rows()] == take_ids
    assert len({row.seed for row in window.takes.rows()}) == 3
    assert window.timeline.regions()[0].label == "3 takes · none committed"

    # Click the first take: it plays in place. Enter on the second commits it.
    tree = window.takes.tree
    item = window.takes.item_for(take_ids[0])
    assert item is not None
    QTest.mouseClick(
        tree.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        tree.visualItemRect(item).center(),
    )
    assert window.auditioning == (region_id, take_ids[0]) and window.player.is_playing
    before = project.render_track()
    window.takes.select_take(take_ids[1])
    QTest.keyClick(tree, Qt.Key.Key_Return)
    assert project.region(region_id).committed == take_ids[1]
    assert window.auditioning is None
    after = project.render_track()
    take = project.take(take_ids[1])
    assert before is not None and after is not None and take.audio is not None
    inner = slice(take.sample_start + take.fade_in, take.sample_end - take.fade_out)
    assert np.array_equal(after.audio[inner], take.audio[take.fade_in : take.n_samples - take.fade_out])
    assert not np.array_equal(before.audio[inner], after.audio[inner])
    assert window.timeline.regions()[0].label.startswith("Take 2")

    # The commit was autosaved to the recovery copy.
    assert window.wait_for_autosave()
    saver = window.autosaver
    assert saver is not None and saver.autosaved_revision == project.revision

    # Undo and redo the commit from the keyboard.
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.region(region_id).committed is None
    undone = project.render_track()
    assert undone is not None and np.array_equal(undone.audio, before.audio)
    QTest.keyClick(
        window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    assert project.region(region_id).committed == take_ids[1]

    # Regenerating the same selection adds takes to the same region.
    window.parameters.set_variations(1)
    with qtbot.waitSignal(window.takes_added, timeout=RUN_TIMEOUT_MS) as added:
        window.regenerate_action.trigger()
    assert added.args[0] == region_id
    assert len(project.region(region_id).take_ids) == 4
    assert len(project.regions) == 1


def test_cancel_stops_a_generation_and_the_gui_never_stalls(
    qtbot, tmp_path: Path, engine: EngineHost, clip: Path
) -> None:
    window = _window(qtbot, tmp_path, engine=engine)
    with qtbot.waitSignal(window.clip_ready, timeout=10_000):
        assert window.open_clip(clip)

    # While the model works, a 10 ms timer in the GUI thread measures the event loop's gaps. (Pictures
    # for the timeline are decoded first, so the measure is about generation, not thumbnails.)
    qtbot.waitUntil(lambda: not window.timeline.is_busy(), timeout=10_000)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)

    def start_measuring(_request_id: int) -> None:
        last[0] = time.perf_counter()
        timer.start()

    engine.started.connect(start_measuring)  # from the moment the engine thread runs the request
    window.parameters.set_variations(2)
    try:
        with qtbot.waitSignal(window.takes_added, timeout=RUN_TIMEOUT_MS):
            window.generate_action.trigger()
    finally:
        engine.started.disconnect(start_measuring)
        timer.stop()
    assert gaps and max(gaps) < 0.05, f"the GUI thread stalled for {max(gaps) * 1000:.0f} ms"

    # Cancel (Esc) once the generation has started: it stops within half a second, nothing is added.
    takes_before = len(window.project.takes)
    window.generate_action.trigger()
    qtbot.waitUntil(lambda: window.task_progress.fraction() > 0, timeout=RUN_TIMEOUT_MS)
    with qtbot.waitSignal(engine.cancelled, timeout=2000):
        started = time.perf_counter()
        QTest.keyClick(window, Qt.Key.Key_Escape)
    assert time.perf_counter() - started < 0.5
    assert not window.busy and not window.task_progress.isVisible()
    assert window.status_message() == "Generation cancelled"
    assert len(window.project.takes) == takes_before
    assert window.generate_action.isEnabled()

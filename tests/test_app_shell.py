"""The GUI shell: opening clips (menu, drag and drop, recent files), rejecting bad files, and start-up."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QSettings, Qt, QThread, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget

from app.main_window import MainWindow
from tests.conftest import running_qthreads
from tests.gui_helpers import quiet_window

REPO_ROOT = Path(__file__).resolve().parent.parent
RED = (200, 40, 40)
BLUE = (40, 40, 200)


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings: QSettings, tmp_path: Path) -> MainWindow:
    # No model, no sound device, no questions: these tests are about opening clips.
    main_window = quiet_window(qtbot, settings, tmp_path)
    qtbot.waitExposed(main_window)
    return main_window


@pytest.fixture
def red_clip(tmp_path: Path, make_video_clip: Callable[..., Path]) -> Path:
    # The first frame is red and later ones blue, so a preview showing red proves it is the first frame.
    return make_video_clip(tmp_path / "red first.mp4", colors=(RED, BLUE), frames=6, size=(64, 48), fps=12)


@pytest.fixture
def blue_clip(tmp_path: Path, make_video_clip: Callable[..., Path]) -> Path:
    return make_video_clip(tmp_path / "blue.mp4", colors=(BLUE,), frames=4, size=(48, 32), fps=8)


def _centre_colour(image: QImage) -> tuple[int, int, int]:
    colour = image.pixelColor(image.width() // 2, image.height() // 2)
    return colour.red(), colour.green(), colour.blue()


def _close_to(actual: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 30) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def _drop_files(target: QWidget, paths: list[Path]) -> tuple[bool, bool]:
    """Send a drag-enter and a drop with file URLs to `target`; returns whether each was accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    centre = target.rect().center()
    enter = QDragEnterEvent(
        centre,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(target, enter)
    drop = QDropEvent(
        centre,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(target, drop)
    return enter.isAccepted(), drop.isAccepted()


def test_window_opens_empty_with_file_menu(window: MainWindow) -> None:
    assert window.isVisible()
    assert window.windowTitle() == "VAURA Studio"
    assert window.clip is None
    assert window.preview.source_pixmap().isNull()
    assert "drop" in window.preview.text().lower()
    assert window.open_action.shortcut() == QKeySequence("Ctrl+O")
    assert window.quit_action.shortcut() == QKeySequence("Ctrl+Q")
    file_menu_actions = window.menuBar().actions()[0].menu().actions()
    assert window.open_action in file_menu_actions
    assert window.quit_action in file_menu_actions
    assert not window.recent_menu.isEnabled()  # nothing opened yet


def test_opening_a_clip_shows_its_first_frame_and_names_it_in_the_title(
    qtbot, window: MainWindow, red_clip: Path
) -> None:
    with qtbot.waitSignal(window.clip_opened, timeout=1000) as opened:
        assert window.open_clip(red_clip)

    assert opened.args == [red_clip]
    # A new, unsaved project on the clip.
    assert window.windowTitle() == "Untitled — red first.mp4 — VAURA Studio"
    source = window.preview.source_pixmap()
    assert (source.width(), source.height()) == (64, 48)
    assert _close_to(_centre_colour(source.toImage()), RED)
    shown = window.preview.pixmap()
    assert not shown.isNull()
    assert shown.width() > 0
    assert _close_to(_centre_colour(shown.toImage()), RED)
    assert window.clip is not None
    assert window.clip.duration == pytest.approx(6 / 12, abs=0.1)
    assert "red first.mp4" in window.status_message()


def test_preview_rescales_with_the_window_keeping_aspect_ratio(window: MainWindow, red_clip: Path) -> None:
    window.open_clip(red_clip)
    window.resize(900, 700)
    QApplication.processEvents()
    shown = window.preview.pixmap()
    assert shown.width() > 64  # scaled up to the larger preview area
    assert shown.width() / shown.height() == pytest.approx(64 / 48, rel=0.02)
    assert shown.width() <= window.preview.width()
    assert shown.height() <= window.preview.height()


@pytest.mark.parametrize("target_name", ["preview", "status bar", "menu bar", "window"])
def test_dropping_a_file_anywhere_on_the_window_opens_it(
    window: MainWindow, red_clip: Path, target_name: str
) -> None:
    target = {
        "preview": window.preview,
        "status bar": window.statusBar(),
        "menu bar": window.menuBar(),
        "window": window,
    }[target_name]
    entered, dropped = _drop_files(target, [red_clip])
    assert entered
    assert dropped
    assert window.clip is not None
    assert window.clip.path == red_clip
    assert window.windowTitle() == "Untitled — red first.mp4 — VAURA Studio"


def test_dragging_something_that_is_not_a_file_is_refused(window: MainWindow) -> None:
    mime = QMimeData()
    mime.setText("just some text")
    enter = QDragEnterEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()
    assert window.clip is None


def _random_bytes_mp4(folder: Path) -> Path:
    path = folder / "broken.mp4"
    path.write_bytes(random.Random(1234).randbytes(8192))
    return path


def _text_file(folder: Path) -> Path:
    # FFmpeg's "tty" demuxer would render a .txt file as a video; it must still be refused.
    path = folder / "notes.txt"
    path.write_text("not a video\n" * 50)
    return path


def _still_image(folder: Path) -> Path:
    path = folder / "poster.png"
    image = QImage(32, 24, QImage.Format.Format_RGB888)
    image.fill(Qt.GlobalColor.green)
    assert image.save(str(path))
    return path


def _audio_only(folder: Path) -> Path:
    import av
    import numpy as np

    path = folder / "voice.m4a"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=44100)
        samples = np.zeros((1, 44100 // 10), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def _missing(folder: Path) -> Path:
    return folder / "gone.mp4"


def _folder(folder: Path) -> Path:
    path = folder / "clips.mp4"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make_bad_file", "expected"),
    [
        (_random_bytes_mp4, "not a video file, or the file is corrupt"),
        (_text_file, "text file"),
        (_still_image, "still image"),
        (_audio_only, "no video stream"),
        (_missing, "file not found"),
        (_folder, "is a folder"),
    ],
)
def test_a_bad_file_is_explained_in_the_status_bar_and_the_previous_clip_stays(
    window: MainWindow, red_clip: Path, tmp_path: Path, make_bad_file: Callable[[Path], Path], expected: str
) -> None:
    assert window.open_clip(red_clip)
    title, pixmap_key = window.windowTitle(), window.preview.source_pixmap().cacheKey()
    bad = make_bad_file(tmp_path)

    assert not window.open_clip(bad)

    message = window.status_message()
    assert bad.name in message
    assert expected in message
    assert window.clip is not None
    assert window.clip.path == red_clip
    assert window.windowTitle() == title
    assert window.preview.source_pixmap().cacheKey() == pixmap_key
    assert window.recent_files() == [red_clip]


def test_dropping_a_broken_file_explains_and_keeps_the_clip(
    window: MainWindow, red_clip: Path, tmp_path: Path
) -> None:
    window.open_clip(red_clip)
    broken = _random_bytes_mp4(tmp_path)
    _drop_files(window.preview, [broken])
    assert "broken.mp4" in window.status_message()
    assert window.clip is not None
    assert window.clip.path == red_clip


def test_open_action_asks_for_a_video_file(
    monkeypatch: pytest.MonkeyPatch, window: MainWindow, red_clip: Path
) -> None:
    asked: list[str] = []

    def fake_dialog(parent: QWidget, caption: str, directory: str, file_filter: str) -> tuple[str, str]:
        asked.append(file_filter)
        return str(red_clip), file_filter

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(fake_dialog))
    window.open_action.trigger()

    assert window.clip is not None
    assert window.clip.path == red_clip
    assert "*.mp4" in asked[0]
    assert "*.mov" in asked[0]


def test_cancelling_the_open_dialog_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, window: MainWindow
) -> None:
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *args: ("", "")))
    window.open_action.trigger()
    assert window.clip is None
    assert window.windowTitle() == "VAURA Studio"


def test_recent_files_are_remembered_most_recent_first_and_reopen(
    qtbot, window: MainWindow, settings: QSettings, red_clip: Path, blue_clip: Path, tmp_path: Path
) -> None:
    window.open_clip(red_clip)
    window.open_clip(blue_clip)
    window.open_clip(red_clip)  # reopening moves it to the top instead of duplicating it
    assert window.recent_files() == [red_clip, blue_clip]

    # A new window reading the same settings offers the same list, and picking an entry opens it.
    second = quiet_window(qtbot, settings, tmp_path)
    entries = [action for action in second.recent_menu.actions() if action.data()]
    assert [Path(action.data()) for action in entries] == [red_clip, blue_clip]
    assert "blue.mp4" in entries[1].text()
    entries[1].trigger()
    assert second.clip is not None
    assert second.clip.path == blue_clip

    second.clear_recent_action.trigger()
    assert second.recent_files() == []
    assert not second.recent_menu.isEnabled()


def test_recent_entries_for_deleted_files_are_disabled(window: MainWindow, blue_clip: Path) -> None:
    window.open_clip(blue_clip)
    blue_clip.unlink()
    window.recent_menu.aboutToShow.emit()
    entry = next(action for action in window.recent_menu.actions() if action.data())
    assert not entry.isEnabled()


def test_quit_action_closes_the_window(window: MainWindow) -> None:
    window.quit_action.trigger()
    assert not window.isVisible()


def _run_main_py(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_main_py_help_exits_zero() -> None:
    result = _run_main_py("--help")
    assert result.returncode == 0, result.stderr
    assert "--quit-after-ms" in result.stdout


def test_main_py_rejects_a_bad_option_value() -> None:
    result = _run_main_py("--quit-after-ms", "soon")
    assert result.returncode == 2
    assert "milliseconds" in result.stderr


def test_main_py_starts_opens_a_clip_and_quits_cleanly(red_clip: Path, tmp_path: Path) -> None:
    result = _run_main_py("--quit-after-ms", "300", str(red_clip))
    assert result.returncode == 0, result.stderr
    assert "Cannot open" not in result.stderr
    assert "Traceback" not in result.stderr

    broken = _random_bytes_mp4(tmp_path)
    result = _run_main_py("--quit-after-ms", "100", str(broken))
    assert result.returncode == 0, result.stderr
    assert "Cannot open broken.mp4" in result.stderr
    assert "Traceback" not in result.stderr


def test_thread_guard_records_and_detects_a_running_thread(dangling_qthreads_guard: dict) -> None:
    thread = QThread()
    thread.start()  # the default run() spins an event loop until quit()
    try:
        assert dangling_qthreads_guard[id(thread)][0] is thread
        assert running_qthreads([thread], timeout_s=0.05) == [thread]
    finally:
        thread.quit()
        assert thread.wait(2000)
    assert running_qthreads([thread], timeout_s=0.05) == []


def test_thread_guard_fails_a_test_that_leaks_a_thread(tmp_path: Path) -> None:
    # Run a tiny suite with this conftest in a separate pytest, so the failure it must report stays there.
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nqt_api = pyside6\n")
    (tmp_path / "test_leak.py").write_text(
        "from PySide6.QtCore import QThread\n"
        "KEEP = []\n\n"
        "def test_leaks(qapp):\n"
        "    thread = QThread()\n"
        "    KEEP.append(thread)\n"
        "    thread.start()\n\n"
        "def test_clean(qapp):\n"
        "    thread = QThread()\n"
        "    thread.start()\n"
        "    thread.quit()\n"
        "    thread.wait()\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "pytestqt.plugin",
            "test_leak.py",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},  # only pytest-qt: a much faster start
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    # test_leaks itself passes; its teardown is the error.
    assert "2 passed, 1 error" in output
    assert "ERROR test_leak.py::test_leaks" in output
    assert "left 1 QThread(s) running" in output
    assert "test_leak.py" in output  # the report shows where the thread was started


def test_start_up_warms_the_engine_behind_a_splash_and_freezes_its_objects(
    qtbot, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import app.main
    import app.main_window
    import app.worker

    events: list[str] = []

    class Window(QWidget):  # stands in for the main window: start-up's order is what is tested
        def __init__(self, **_kwargs: object) -> None:
            super().__init__()
            events.append("window")
            qtbot.addWidget(self)

        def show(self) -> None:
            splash = next(w for w in QApplication.topLevelWidgets() if type(w).__name__ == "QSplashScreen")
            events.append(
                f"show (splash visible: {splash.isVisible()}, frozen: {gc.get_freeze_count() > 100_000})"
            )
            super().show()

        def shutdown(self) -> None:
            events.append("shutdown")

    warm_up = app.worker.warm_up_engine
    monkeypatch.setattr(app.worker, "warm_up_engine", lambda: (events.append("warm-up"), warm_up()))
    monkeypatch.setattr(app.main_window, "MainWindow", Window)
    monkeypatch.setattr(app.main_window, "apply_theme", lambda _app: None)
    names = QApplication.organizationName(), QApplication.applicationName()
    try:
        assert app.main.main(["--quit-after-ms", "0"]) == 0
    finally:
        gc.unfreeze()
        QApplication.setOrganizationName(names[0])
        QApplication.setApplicationName(names[1])
    # The imports a first load needs happen before the window exists; start-up's objects (Qt's and
    # torch's modules at least) are frozen before it shows, the splash still up until it does.
    assert events == ["warm-up", "window", "show (splash visible: True, frozen: True)", "shutdown"]
    assert not any(
        type(w).__name__ == "QSplashScreen" and w.isVisible() for w in QApplication.topLevelWidgets()
    )

"""Shared test setup: headless Qt, a private VAURA_HOME and settings folder, a guard against leaked threads.

The environment is set when pytest imports this file, which happens before any test module is imported and
so before Qt or pyqtgraph are loaded anywhere.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import torch
    from PySide6.QtCore import QThread

# Tests never open real windows; set VAURA_TEST_QT_PLATFORM=xcb (under xvfb-run) to watch them.
os.environ["QT_QPA_PLATFORM"] = os.environ.get("VAURA_TEST_QT_PLATFORM", "offscreen")
os.environ["PYQTGRAPH_QT_LIB"] = "PySide6"

# One private folder per session so tests never touch the user's models or settings.
SESSION_DIR = Path(tempfile.mkdtemp(prefix="vaura-tests-"))
VAURA_HOME = SESSION_DIR / "vaura-home"
VAURA_HOME.mkdir()
os.environ["VAURA_HOME"] = str(VAURA_HOME)
os.environ["XDG_CONFIG_HOME"] = str(SESSION_DIR / "config")
os.environ["XDG_DATA_HOME"] = str(SESSION_DIR / "data")  # preferences.json (the chosen models folder)

DANGLING_THREAD_WAIT_S = 2.0

# Threads a test leaked. Kept referenced forever: destroying a running QThread aborts the whole process.
_leaked_threads: list[QThread] = []


def pytest_configure(config: pytest.Config) -> None:
    from PySide6.QtCore import QSettings

    settings_dir = str(SESSION_DIR / "settings")
    for settings_format in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(settings_format, QSettings.Scope.UserScope, settings_dir)
        QSettings.setPath(settings_format, QSettings.Scope.SystemScope, settings_dir)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


@pytest.fixture
def vaura_home() -> Path:
    """The session's VAURA_HOME folder (empty unless a test puts models there)."""
    return VAURA_HOME


def running_qthreads(threads: Iterable[QThread], timeout_s: float) -> list[QThread]:
    """The threads still running after waiting up to `timeout_s`.

    Events are processed while waiting: a worker's `finished -> thread.quit` connection is queued to the
    GUI thread, so a thread that is about to stop needs the event loop to turn.
    """
    import shiboken6
    from PySide6.QtCore import QCoreApplication

    threads = list(threads)
    deadline = time.monotonic() + timeout_s
    while True:
        # A thread deleted by deleteLater() has finished, and its wrapper can no longer be asked.
        alive = [thread for thread in threads if shiboken6.isValid(thread) and thread.isRunning()]
        if not alive or time.monotonic() >= deadline:
            return alive
        if QCoreApplication.instance() is not None:
            QCoreApplication.processEvents()
        alive[0].wait(10)


def _pool_still_busy(timeout_s: float) -> int:
    from PySide6.QtCore import QCoreApplication, QThreadPool

    pool = QThreadPool.globalInstance()
    deadline = time.monotonic() + timeout_s
    while pool.activeThreadCount() and time.monotonic() < deadline:
        if QCoreApplication.instance() is not None:
            QCoreApplication.processEvents()
        pool.waitForDone(10)
    return pool.activeThreadCount()


@pytest.fixture(autouse=True)
def dangling_qthreads_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[int, tuple[QThread, str]]]:
    """Fail a test that leaves a QThread (or global QThreadPool work) running.

    Every `QThread.start()` call made from Python is recorded with the stack that made it, so the failure
    says where the leaked thread came from. Yields the record, keyed by id(thread).
    """
    from PySide6.QtCore import QThread

    started: dict[int, tuple[QThread, str]] = {}
    original_start = QThread.start

    def recording_start(self: QThread, *args: object, **kwargs: object) -> None:
        started[id(self)] = (self, "".join(traceback.format_stack()[-8:-1]))
        original_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", recording_start)
    yield started

    alive = running_qthreads([thread for thread, _ in started.values()], DANGLING_THREAD_WAIT_S)
    busy_pool_threads = _pool_still_busy(DANGLING_THREAD_WAIT_S)
    if not alive and not busy_pool_threads:
        return
    report = []
    for thread in alive:
        report.append(f"{thread!r} started at:\n{started[id(thread)][1]}")
        # Try to stop it so the following tests are not disturbed; keep it referenced in case that fails.
        thread.quit()
        thread.wait(int(DANGLING_THREAD_WAIT_S * 1000))
        _leaked_threads.append(thread)
    if busy_pool_threads:
        report.append(f"{busy_pool_threads} QThreadPool worker(s) still busy")
    pytest.fail(f"the test left {len(alive)} QThread(s) running:\n" + "\n".join(report), pytrace=False)


Color = tuple[int, int, int]


@pytest.fixture
def make_video_clip() -> Callable[..., Path]:
    """Factory writing a small MPEG-4 clip whose frames are solid colours (cycled from `colors`)."""

    def make(
        path: Path,
        colors: Sequence[Color] = ((200, 40, 40),),
        frames: int = 6,
        size: tuple[int, int] = (64, 48),
        fps: int = 12,
    ) -> Path:
        import av
        import numpy as np

        width, height = size
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("mpeg4", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index in range(frames):
                rgb = np.empty((height, width, 3), dtype=np.uint8)
                rgb[:] = colors[index % len(colors)]
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return path

    return make


@pytest.fixture(scope="session")
def release_model() -> torch.nn.Module:
    """A `test`-preset V-AURA with seeded random weights (the model behind `release_tarball`)."""
    import torch

    from vaura_core.model.config import preset
    from vaura_core.model.vaura import build_model

    torch.manual_seed(0)
    return build_model(preset("test"), "cpu")


@pytest.fixture(scope="session")
def release_tarball(release_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """`release_model` written as the official release tarball (24-08-01T08-34-26.tar.gz), as bytes."""
    from tests.official_layout import write_release_tarball

    path = tmp_path_factory.mktemp("release") / "24-08-01T08-34-26.tar.gz"
    write_release_tarball(release_model, path)
    return path.read_bytes()

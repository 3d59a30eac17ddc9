"""The model manager dialog: listing, the models folder, downloads from a real local server, import, remove.

Downloads go to an HTTP server on 127.0.0.1 (tests.test_download.LocalServer) serving a release tarball
in the official layout of a tiny model; nothing of the download code is mocked. Questions the dialog
would ask a user are answered by replacing its `confirm`, `choose_folder`, `ask_name` and `choose_preset`
attributes, so no test ever blocks on a modal window.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PySide6.QtCore import QSettings

from app import model_manager
from app.main_window import MainWindow
from app.model_manager import COL_LOCATION, COL_SIZE, COL_STATUS, ModelManagerDialog, human_bytes
from app.settings import AppSettings
from app.worker import EngineHost
from tests.gui_helpers import quiet_window
from tests.model_fixtures import install_random_model
from tests.official_layout import write_lightning_ckpt
from tests.test_download import LocalServer
from vaura_core.weights import download as dl
from vaura_core.weights.catalog import CatalogEntry, HttpFile
from vaura_core.weights.registry import (
    DEFAULT_MODEL,
    DOWNLOADS,
    chosen_models_root,
    default_models_root,
    is_model_dir,
)

JOB_TIMEOUT_MS = 120_000
CHUNK = dl.CHUNK_SIZE
# The gated server stops sending here: the client has then written exactly PAUSED_AT_PART bytes.
PAUSE_AT = 3 * CHUNK + 100
PAUSED_AT_PART = 3 * CHUNK


class _GatedWriter:
    """The handler's socket writer, holding back a large body after `pause_at` bytes until the gate opens."""

    def __init__(self, raw: Any, server: GatedServer) -> None:
        self._raw = raw
        self._server = server

    def write(self, data: bytes) -> int:
        server = self._server
        if len(data) <= server.pause_at or server.paused.is_set():
            return self._raw.write(data)
        server.paused.set()
        self._raw.write(data[: server.pause_at])
        self._raw.flush()
        server.gate.wait(30)
        with contextlib.suppress(OSError):  # the client cancelled and hung up
            self._raw.write(data[server.pause_at :])
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class GatedServer(LocalServer):
    """LocalServer whose first large response stalls mid-body, like a slow link, until `gate` is set."""

    def __init__(self, pause_at: int) -> None:
        self.pause_at = pause_at
        self.paused = threading.Event()
        self.gate = threading.Event()
        super().__init__()

    def _handler(self) -> type:
        base = super()._handler()
        server = self

        class Gated(base):  # type: ignore[misc, valid-type]
            def setup(self) -> None:
                super().setup()
                self.wfile = _GatedWriter(self.wfile, server)

        return Gated


@pytest.fixture
def tarball(release_tarball: bytes) -> bytes:
    assert len(release_tarball) > 2 * PAUSE_AT  # the cancel test needs bytes after the pause
    return release_tarball


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def gated_server() -> Iterator[GatedServer]:
    srv = GatedServer(PAUSE_AT)
    srv.start()
    yield srv
    srv.gate.set()  # never leave a handler thread waiting
    srv.stop()


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def root(tmp_path: Path, settings: AppSettings) -> Path:
    folder = tmp_path / "models"
    settings.models_root = folder
    return folder


def _entry(url: str, data: bytes, approx: int | None = None) -> CatalogEntry:
    remote = HttpFile(
        url=url,
        filename="rel.tar.gz",
        sha256=hashlib.sha256(data).hexdigest(),
        approx_bytes=len(data) if approx is None else approx,
    )
    return CatalogEntry("rel", "test release", files=(remote,), config_hint="test", license="test licence")


class Answers:
    """Records the dialog's questions and answers them from a script (default: yes)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.answer = True

    def __call__(self, title: str, text: str) -> bool:
        self.asked.append((title, text))
        return self.answer


@pytest.fixture
def make_dialog(qtbot, settings: AppSettings) -> Iterator[Any]:
    dialogs: list[ModelManagerDialog] = []

    def make(**kwargs: Any) -> ModelManagerDialog:
        dialog = ModelManagerDialog(settings, **kwargs)
        qtbot.addWidget(dialog)
        dialog.confirm = Answers()
        dialog.show()
        dialogs.append(dialog)
        return dialog

    yield make
    for dialog in dialogs:
        dialog.shutdown()  # a failed test must not leave a download thread behind


def _wait_job(qtbot, dialog: ModelManagerDialog, start: Any) -> tuple[str, str, str]:
    with qtbot.waitSignal(dialog.job_finished, timeout=JOB_TIMEOUT_MS) as blocker:
        assert start() is True
    return tuple(blocker.args)  # type: ignore[return-value]


# --- listing and the models folder ----------------------------------------------------------------


def test_lists_the_builtin_model_and_the_catalogue(make_dialog, root: Path) -> None:
    dialog = make_dialog()
    names = dialog.model_names()
    assert names[0] == DEFAULT_MODEL and "vaura" in names
    assert dialog.cell(DEFAULT_MODEL, COL_STATUS) == "Built in"
    assert "resources" in dialog.cell(DEFAULT_MODEL, COL_LOCATION)
    assert dialog.cell(DEFAULT_MODEL, COL_SIZE).endswith("B")
    assert dialog.cell("vaura", COL_STATUS) == "Available to download"
    assert dialog.cell("vaura", COL_SIZE) == "about 3.4 GB download"
    assert dialog.folder_edit.text() == str(root)
    assert "Free space on this drive:" in dialog.free_label.text()

    dialog.select(DEFAULT_MODEL)
    assert dialog.use_button.isEnabled()
    assert not dialog.remove_button.isEnabled() and not dialog.download_button.isEnabled()
    dialog.select("vaura")
    assert dialog.download_button.isEnabled() and not dialog.use_button.isEnabled()


def test_welcome_text_says_what_works_offline_and_that_nothing_downloads_unasked(make_dialog, root) -> None:
    text = make_dialog(welcome=True).intro.text()
    assert "vaura-tiny" in text and "offline" in text and "Nothing is downloaded unless you ask" in text


def test_changing_the_folder_updates_the_list_and_the_settings(
    make_dialog, settings: AppSettings, root: Path, tmp_path: Path, qtbot
) -> None:
    elsewhere = tmp_path / "other drive" / "models"
    install_random_model(elsewhere, "elsewhere")
    dialog = make_dialog()
    assert "elsewhere" not in dialog.model_names()

    dialog.choose_folder = lambda start: elsewhere  # what the folder picker would answer
    with qtbot.waitSignal(dialog.models_changed):
        dialog.change_folder_button.click()
    assert dialog.models_root == elsewhere and dialog.folder_edit.text() == str(elsewhere)
    assert dialog.cell("elsewhere", COL_STATUS) == "Installed"
    assert settings.models_root == elsewhere
    assert AppSettings(settings.store).models_root == elsewhere  # saved, not only remembered
    assert chosen_models_root() == elsewhere  # and the command line follows the choice
    assert "nothing was moved" in dialog.status.text()

    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    assert not dialog.set_models_root(not_a_folder)
    assert str(not_a_folder) in dialog.status.text() and settings.models_root == elsewhere

    assert dialog.set_models_root(None)
    assert settings.models_root_is_default and dialog.models_root == default_models_root()
    assert chosen_models_root() is None
    assert "elsewhere" not in dialog.model_names()


# --- downloads ------------------------------------------------------------------------------------


def test_download_asks_then_installs_with_progress(make_dialog, server, tarball: bytes, root: Path, qtbot):
    url = server.add("/v-aura_public/rel.tar.gz", tarball)
    dialog = make_dialog(catalog={"rel": _entry(url, tarball)})
    assert dialog.cell("rel", COL_STATUS) == "Available to download"
    updates: list[tuple[int, int | None]] = []
    dialog.download_progress.connect(lambda done, total: updates.append((done, total)))
    changed: list[bool] = []
    dialog.models_changed.connect(lambda: changed.append(True))

    kind, outcome, message = _wait_job(qtbot, dialog, lambda: dialog.download("rel"))

    assert (kind, outcome) == ("download", "done"), message
    title, question = dialog.confirm.asked[0]  # type: ignore[attr-defined]
    assert title == "Download rel"
    assert f"about {human_bytes(len(tarball))} from 127.0.0.1" in question
    assert f"Destination: {root / 'rel'}" in question and "Free space there:" in question
    assert "partial file is kept" in question and "Licence: test licence" in question
    assert len(updates) >= 2 and updates[-1] == (len(tarball), len(tarball))
    assert [done for done, _ in updates] == sorted(done for done, _ in updates)
    assert is_model_dir(root / "rel") and not (root / DOWNLOADS / "rel").exists()
    assert dialog.cell("rel", COL_STATUS) == "Installed" and changed
    assert "downloaded and installed" in dialog.status.text()
    assert not dialog.busy and not dialog.progress.isVisible() and dialog.use_button.isEnabled()
    assert [r.method for r in server.requests] == ["GET"]


def test_saying_no_downloads_nothing(make_dialog, server, tarball: bytes, root: Path) -> None:
    url = server.add("/rel.tar.gz", tarball)
    dialog = make_dialog(catalog={"rel": _entry(url, tarball)})
    dialog.confirm.answer = False  # type: ignore[attr-defined]
    assert not dialog.download("rel")
    assert server.requests == [] and not dialog.busy
    assert "Nothing was downloaded" in dialog.status.text()


def test_cancel_keeps_the_partial_file_and_the_next_download_resumes(
    make_dialog, gated_server: GatedServer, tarball: bytes, root: Path, qtbot
) -> None:
    url = gated_server.add("/rel.tar.gz", tarball)
    dialog = make_dialog(catalog={"rel": _entry(url, tarball)})
    part = root / DOWNLOADS / "rel" / "rel.tar.gz.part"

    with qtbot.waitSignal(dialog.job_finished, timeout=JOB_TIMEOUT_MS) as blocker:
        assert dialog.download("rel")
        assert dialog.cancel_button.isVisible() and not dialog.download_button.isEnabled()
        qtbot.waitUntil(lambda: part.is_file() and part.stat().st_size >= PAUSED_AT_PART, timeout=30_000)
        dialog.cancel_button.click()
        gated_server.gate.set()  # the next chunk arrives, then the download sees the cancel
    kind, outcome, message = blocker.args
    assert (kind, outcome) == ("download", "cancelled")
    kept = part.stat().st_size
    assert PAUSED_AT_PART <= kept < len(tarball)
    assert f"partial file ({human_bytes(kept)}) is kept" in message and "Download resumes it" in message
    assert dialog.cell("rel", COL_STATUS) == "Partly downloaded"
    dialog.select("rel")
    assert dialog.download_button.text() == "Resume Download" and dialog.download_button.isEnabled()

    kind, outcome, message = _wait_job(qtbot, dialog, lambda: dialog.download("rel"))
    assert (kind, outcome) == ("download", "done"), message
    assert "Resumes the earlier download" in dialog.confirm.asked[-1][1]  # type: ignore[attr-defined]
    assert gated_server.requests[-1].headers["Range"] == f"bytes={kept}-"
    assert is_model_dir(root / "rel") and not part.exists()


def test_closing_during_a_download_asks_then_cancels_and_waits(
    make_dialog, gated_server: GatedServer, tarball: bytes, root: Path, qtbot
) -> None:
    url = gated_server.add("/rel.tar.gz", tarball)
    dialog = make_dialog(catalog={"rel": _entry(url, tarball)})
    part = root / DOWNLOADS / "rel" / "rel.tar.gz.part"
    assert dialog.download("rel")
    qtbot.waitUntil(lambda: part.is_file() and part.stat().st_size >= PAUSED_AT_PART, timeout=30_000)

    dialog.confirm.answer = False  # type: ignore[attr-defined]
    dialog.close()
    assert dialog.isVisible() and dialog.busy
    assert "Cancel the download" in dialog.confirm.asked[-1][0]  # type: ignore[attr-defined]

    dialog.confirm.answer = True  # type: ignore[attr-defined]
    opener = threading.Timer(0.3, gated_server.gate.set)  # the stalled link recovers while close() waits
    opener.start()
    started = time.monotonic()
    dialog.close()
    opener.join()
    assert not dialog.isVisible() and not dialog.busy
    assert time.monotonic() - started >= 0.2  # it waited for the download thread to stop
    assert part.is_file() and not (root / "rel").exists()


def test_too_little_free_space_is_refused_before_asking(
    make_dialog, server, tarball: bytes, root: Path, monkeypatch
) -> None:
    url = server.add("/rel.tar.gz", tarball)
    dialog = make_dialog(catalog={"rel": _entry(url, tarball, approx=2_000_000_000)})

    class Usage:
        free = 1_500_000_000

    monkeypatch.setattr(model_manager.shutil, "disk_usage", lambda _path: Usage())
    assert not dialog.download("rel")
    assert dialog.confirm.asked == []  # type: ignore[attr-defined]
    assert server.requests == [] and not dialog.busy
    text = dialog.status.text()
    assert "Not enough free space to install rel" in text and str(root) in text
    assert "only 1.5 GB is free" in text and "Change…" in text


def test_download_errors_are_shown_in_the_dialog(make_dialog, server, tarball: bytes, root: Path, qtbot):
    url = server.url("/missing.tar.gz")  # the server answers 404
    dialog = make_dialog(catalog={"rel": _entry(url, tarball)})
    kind, outcome, message = _wait_job(qtbot, dialog, lambda: dialog.download("rel"))
    assert (kind, outcome) == ("download", "failed")
    assert "HTTP 404" in message and url in message and "Traceback" not in message
    assert dialog.status.text() == message and not dialog.busy


# --- remove and import ----------------------------------------------------------------------------


def test_remove_asks_and_builtins_cannot_be_removed(make_dialog, root: Path, qtbot) -> None:
    install_random_model(root, "spare")
    dialog = make_dialog()
    dialog.select(DEFAULT_MODEL)
    assert not dialog.remove_button.isEnabled()
    assert not dialog.remove_model(DEFAULT_MODEL)
    assert "cannot be removed" in dialog.status.text() and dialog.confirm.asked == []  # type: ignore[attr-defined]

    dialog.select("spare")
    assert dialog.remove_button.isEnabled()
    dialog.confirm.answer = False  # type: ignore[attr-defined]
    assert not dialog.remove_model()
    assert is_model_dir(root / "spare")

    dialog.confirm.answer = True  # type: ignore[attr-defined]
    kind, outcome, message = _wait_job(qtbot, dialog, dialog.remove_model)
    assert (kind, outcome) == ("remove", "done"), message
    assert str(root / "spare") in dialog.confirm.asked[-1][1]  # type: ignore[attr-defined]
    assert not (root / "spare").exists() and "spare" not in dialog.model_names()


def test_import_a_local_checkpoint_asks_for_sizes_and_names(
    make_dialog, release_model: torch.nn.Module, root: Path, tmp_path: Path, qtbot
) -> None:
    ckpt = write_lightning_ckpt(release_model, tmp_path / "foley-v2.ckpt")
    dialog = make_dialog()
    presets_asked: list[str] = []
    dialog.choose_preset = lambda message: presets_asked.append(message) or "test"
    finished: list[tuple[str, str, str]] = []
    dialog.job_finished.connect(lambda *args: finished.append(args))

    # Without hparams the sizes are unknown: the dialog asks which preset, then imports again.
    assert dialog.import_paths([ckpt])
    qtbot.waitUntil(lambda: any(outcome == "done" for _, outcome, _ in finished), timeout=JOB_TIMEOUT_MS)
    assert [(kind, outcome) for kind, outcome, _ in finished] == [("import", "failed"), ("import", "done")]
    assert "config hint" in presets_asked[0]
    assert is_model_dir(root / "foley-v2") and dialog.cell("foley-v2", COL_STATUS) == "Installed"

    # The same name again: asked for another one; no answer imports nothing.
    questions: list[tuple[str, str]] = []
    dialog.ask_name = lambda message, suggestion: questions.append((message, suggestion)) and None
    assert not dialog.import_paths([ckpt], config_hint="test")
    assert "'foley-v2' is already installed" in questions[0][0] and questions[0][1] == "foley-v2-2"
    assert "Not imported" in dialog.status.text()

    dialog.ask_name = lambda message, suggestion: suggestion
    kind, outcome, message = _wait_job(qtbot, dialog, lambda: dialog.import_paths([ckpt], config_hint="test"))
    assert (kind, outcome) == ("import", "done"), message
    assert is_model_dir(root / "foley-v2-2")

    missing = tmp_path / "nope.ckpt"
    assert not dialog.import_paths([missing])
    assert f"Cannot import {missing}: no such file" in dialog.status.text()


def test_use_this_model_emits_and_closes(make_dialog, root: Path, qtbot) -> None:
    install_random_model(root, "chosen")
    dialog = make_dialog()
    with qtbot.waitSignal(dialog.model_chosen) as blocker:
        assert dialog.use_model("chosen")
    assert blocker.args == ["chosen"] and not dialog.isVisible()
    assert not dialog.use_model("vaura")  # not installed


# --- the main window ------------------------------------------------------------------------------


def _window(qtbot, settings: AppSettings, tmp_path: Path, **options: Any) -> MainWindow:
    return quiet_window(qtbot, settings, tmp_path, **options)


def test_first_run_shows_the_manager_once(qtbot, settings: AppSettings, root: Path, tmp_path: Path) -> None:
    plain = _window(qtbot, settings, tmp_path)  # tests and tools: never
    qtbot.wait(50)
    assert plain._model_dialog is None and not settings.first_run_done
    plain.close()

    first = _window(qtbot, settings, tmp_path, first_run=True)
    qtbot.waitUntil(lambda: first._model_dialog is not None and first._model_dialog.isVisible())
    dialog = first._model_dialog
    assert dialog is not None and not dialog.isModal() and "Welcome" in dialog.intro.text()
    assert settings.first_run_done
    first.close()
    assert not dialog.isVisible()

    again = _window(qtbot, settings, tmp_path, first_run=True)
    qtbot.wait(50)
    assert again._model_dialog is None
    again.close()


def test_window_lists_and_uses_models_from_the_chosen_folder(
    qtbot, settings: AppSettings, root: Path, tmp_path: Path
) -> None:
    install_random_model(root, "in-my-folder")
    window = _window(qtbot, settings, tmp_path)
    combo = window.parameters.model_combo
    assert "in-my-folder" in [combo.itemData(i) for i in range(combo.count())]

    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Models")
    assert window.models_action in menu.actions()
    window.models_action.trigger()
    dialog = window._model_dialog
    assert dialog is not None and dialog.isVisible() and dialog.models_root == root

    # "Use This Model" makes the window load it from the chosen folder on its engine thread.
    with qtbot.waitSignal(window.engine.model_ready, timeout=JOB_TIMEOUT_MS) as ready:
        dialog.use_model("in-my-folder")
    assert ready.args[0] == "in-my-folder" and settings.model == "in-my-folder"
    assert combo.currentData() == "in-my-folder"
    window.close()


def test_engine_host_loads_from_the_given_models_root(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "somewhere"
    install_random_model(folder, "only-here")
    host = EngineHost(compute_threads=1)
    try:
        with qtbot.waitSignal(host.model_failed, timeout=JOB_TIMEOUT_MS) as failed:
            host.load_model("only-here", "cpu", "fp32")  # the default folder does not have it
        assert "not installed" in failed.args[0]
        with qtbot.waitSignal(host.model_ready, timeout=JOB_TIMEOUT_MS) as ready:
            host.load_model("only-here", "cpu", "fp32", models_root=folder)
        assert ready.args[0] == "only-here"
    finally:
        assert host.shutdown(10_000)
        assert not host.thread.isRunning()

"""The engine thread: one long-lived QThread that owns the model and runs every generation request.

`EngineHost` lives in the GUI thread and is the only object the window talks to. It creates one
`QThread` and one `EngineWorker` (the worker-object pattern: the worker is moved to the thread, and
the host reaches it only through queued signals), starts the thread once, and keeps it until
`shutdown()`. Requests therefore run one at a time, in the order they were made, on the thread that
loaded the model, and none of them ever blocks the GUI's event loop.

    warm_up_engine()                                   # at start-up, before the window is shown
    host = EngineHost()
    host.model_ready.connect(on_ready)                 # (name, device)
    host.takes_ready.connect(on_takes)                 # (request_id, list[Take])
    host.load_model("vaura-tiny")
    request_id = host.generate(GenerateRequest(clip, params, seeds=[1, 2, 3]))
    host.cancel()                                      # stops within one decode step
    host.shutdown()                                    # from closeEvent: cancels and joins the thread

Every request ends with exactly one of `takes_ready`, `failed` or `cancelled`, carrying its id.
Messages in `failed` and `model_failed` are meant for the user (they name the file and the problem);
tracebacks of unexpected errors go to the log. Progress fractions are those of the current stage
("analysing video" while a clip's features are computed, then "window k/n"); eta_seconds is None
until the engine can estimate it.

Keeping the event loop smooth (no stall above 50 ms while the engine works) takes three things
besides the thread: `warm_up_engine()` before the window is shown (the first model load would
otherwise import C extensions in the engine thread, holding the GIL for hundreds of milliseconds),
a 1 ms GIL switch interval while a host exists (set by the host, restored by `shutdown`), and
torch's CPU threads limited to leave the GUI a core (`compute_threads`, default: all cores but one).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from app.requests import EngineRequest, GenerateRequest, RegenerateRequest
from vaura_core.engine.device import resolve_device, resolve_dtype
from vaura_core.engine.engine import Engine, Progress, Take
from vaura_core.engine.features import FeatureCache
from vaura_core.errors import Cancelled, VauraError
from vaura_core.generation.generate import CancelToken
from vaura_core.weights.registry import ModelRegistry

log = logging.getLogger(__name__)

PROGRESS_MAX_HZ = 15.0
DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000
# Between torch calls the engine thread runs Python and holds the GIL; a GUI thread that wants it
# waits up to this long (Python's default is 5 ms, and one event-loop turn may need it several times).
GIL_SWITCH_INTERVAL = 0.001


@dataclass(frozen=True)
class ModelStatus:
    """The loaded model, as the GUI needs to know it (grid snapping, track sample rate, status bar)."""

    name: str
    device: str
    dtype: str
    sample_rate: int
    segment_seconds: float  # the model's 0.64 s grid
    window_seconds: float


class ProgressThrottle:
    """Lets a progress report through when it changed, a new fraction at most `max_hz` times a second.

    A new stage always passes: it is what the status line names, and it changes once per window, far
    less often than the decode steps report fractions. A fraction of the same stage passes when it
    differs in its third decimal and the interval has passed: a decode loop reports hundreds of steps
    a second and the GUI needs a few updates of a visible bar. On a fast machine a whole window can
    finish inside one interval.
    """

    def __init__(self, max_hz: float = PROGRESS_MAX_HZ, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / max_hz
        self._clock = clock
        self._last_time: float | None = None
        self._last_key: tuple[float, str] | None = None

    def offer(self, fraction: float, stage: str) -> bool:
        key = (round(fraction, 3), stage)
        if key == self._last_key:
            return False
        now = self._clock()
        same_stage = self._last_key is not None and self._last_key[1] == stage
        if same_stage and self._last_time is not None and now - self._last_time < self._interval:
            return False
        self._last_time, self._last_key = now, key
        return True


def default_compute_threads() -> int:
    """torch's CPU threads for the engine: its default, less one core kept for the GUI and audio."""
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1))


def warm_up_engine() -> None:
    """Import everything a model load needs, in the calling thread: call it at start-up.

    The first load imports the codec library and the parts of torch it loads lazily: seconds of
    C-extension imports, each holding the GIL for up to hundreds of milliseconds. In the engine
    thread, with the window already live, they would freeze it; before the window is shown (or
    behind a splash screen) they cost only start-up time. Building a small model on the meta device
    runs the same code paths as a real load without allocating anything.
    """
    import safetensors.torch  # noqa: F401 (loaded lazily by the weights store)

    from vaura_core.model.config import preset
    from vaura_core.model.vaura import build_model
    from vaura_core.weights import store  # noqa: F401

    build_model(preset("test"), device="meta")


def _describe_unexpected(what: str, exc: BaseException) -> str:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{what} failed unexpectedly ({detail}); the log has the details"


class EngineWorker(QObject):
    """Owns the model, the engine and the clip feature cache; lives in the engine thread.

    Only `EngineHost` should call its slots (through queued signals). Its signals are emitted in the
    engine thread; the host relays them to the GUI thread.
    """

    model_loading = Signal(str)
    model_loaded = Signal(object)  # ModelStatus
    model_failed = Signal(str)
    request_started = Signal(int)
    progress = Signal(int, float, object, str)
    takes_ready = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)

    def __init__(self, compute_threads: int | None = None) -> None:
        super().__init__()
        self.feature_cache = FeatureCache()
        self._compute_threads = compute_threads
        self._previous_threads: int | None = None
        self._engine: Engine | None = None
        self._load_error: str | None = None
        self._stopping = threading.Event()

    def request_stop(self) -> None:
        """Callable from any thread: loads still queued are skipped (a load cannot be cancelled)."""
        self._stopping.set()

    # --- thread life ------------------------------------------------------------------------------

    @Slot()
    def begin(self) -> None:
        """Runs first in the engine thread: limit torch's CPU threads so the GUI keeps a core."""
        self._previous_threads = torch.get_num_threads()
        torch.set_num_threads(self._compute_threads or default_compute_threads())

    @Slot()
    def finish(self) -> None:
        """Runs last in the engine thread: drop the model, restore torch's threads, end the loop."""
        self._engine = None
        self.feature_cache = FeatureCache()
        if self._previous_threads is not None:
            torch.set_num_threads(self._previous_threads)
        thread = QThread.currentThread()
        if thread is not None:
            thread.quit()

    # --- model ------------------------------------------------------------------------------------

    @Slot(str, str, str, str)
    def load_model(self, name: str, device: str, precision: str, models_root: str = "") -> None:
        """`models_root` is the folder of downloaded and imported models ("": the default one)."""
        if self._stopping.is_set():
            return
        self.model_loading.emit(name)
        self._engine = None
        self.feature_cache = FeatureCache()  # features of another model are useless
        try:
            torch_device = resolve_device(device)
            dtype = resolve_dtype(precision, torch_device)
            registry = ModelRegistry(Path(models_root) if models_root else None)
            model = registry.load(name, device=torch_device, dtype=dtype)
        except (VauraError, ValueError) as exc:
            self._load_error = f"model '{name}' is not loaded: {exc}"
            self.model_failed.emit(str(exc))
            return
        except Exception as exc:
            log.exception("loading model %r on %s (%s) failed", name, device, precision)
            self._load_error = f"model '{name}' is not loaded"
            self.model_failed.emit(_describe_unexpected(f"loading model '{name}'", exc))
            return
        model.eval()
        self._engine = Engine(model, name)
        self._load_error = None
        cfg = model.cfg
        self.model_loaded.emit(
            ModelStatus(
                name=name,
                device=str(torch_device),
                dtype=str(dtype).removeprefix("torch."),
                sample_rate=cfg.codec.sample_rate,
                segment_seconds=cfg.segment_seconds,
                window_seconds=cfg.window_seconds,
            )
        )

    # --- requests ---------------------------------------------------------------------------------

    @Slot(int, object, object)
    def run_request(self, request_id: int, request: EngineRequest, token: CancelToken) -> None:
        if token.is_cancelled():
            self.cancelled.emit(request_id)
            return
        engine = self._engine
        if engine is None:
            self.failed.emit(request_id, self._load_error or "no model is loaded yet; choose a model first")
            return
        self.request_started.emit(request_id)
        clip_name = request.clip_path.name
        throttle = ProgressThrottle()

        def report(p: Progress) -> None:
            if throttle.offer(p.fraction, p.stage):
                self.progress.emit(request_id, p.fraction, p.eta_seconds, p.stage)

        try:
            takes = self._run(engine, request, report, token)
        except Cancelled:
            self.cancelled.emit(request_id)
            return
        except VauraError as exc:  # MediaError and friends: the message already names the file
            self.failed.emit(request_id, str(exc))
            return
        except ValueError as exc:  # a range outside the clip, a stride the model cannot use
            self.failed.emit(request_id, f"{clip_name}: {exc}")
            return
        except torch.OutOfMemoryError:
            log.exception("out of memory generating for %s", request.clip_path)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # give the failed batch's memory back before the next try
            self.failed.emit(
                request_id,
                f"{clip_name}: not enough memory on {engine.model.device} for {len(request.seeds)} "
                "variation(s); try fewer variations, a shorter selection or another device",
            )
            return
        except Exception as exc:
            log.exception("request %d on %s failed", request_id, request.clip_path)
            self.failed.emit(request_id, f"{clip_name}: " + _describe_unexpected("generation", exc))
            return
        # A cancel that arrives after the last step still wins: a cancelled request never delivers.
        if token.is_cancelled():
            self.cancelled.emit(request_id)
        else:
            self.takes_ready.emit(request_id, takes)

    def _run(
        self,
        engine: Engine,
        request: EngineRequest,
        report: Callable[[Progress], None],
        token: CancelToken,
    ) -> list[Take]:
        cfg = engine.cfg
        if request.stride_segments >= cfg.window_segments:
            raise ValueError(
                f"a stride of {request.stride_segments} segments is not shorter than the model's "
                f"{cfg.window_seconds:.2f} s window"
            )
        clip = self.feature_cache.get(
            engine.model, engine.name, request.clip_path, progress=report, cancel=token
        )
        seeds = list(request.seeds)
        if isinstance(request, GenerateRequest):
            return engine.generate(
                clip,
                request.params,
                seeds,
                start=request.start,
                end=request.end,
                stride_segments=request.stride_segments,
                chains=request.chains,
                candidates=request.candidates,
                progress=report,
                cancel=token,
            )
        if isinstance(request, RegenerateRequest):
            return engine.regenerate(
                clip,
                request.track,
                request.start,
                request.end,
                request.params,
                seeds,
                stride_segments=request.stride_segments,
                crossfade=request.crossfade,
                candidates=request.candidates,
                progress=report,
                cancel=token,
            )
        raise TypeError(f"unknown request type {type(request).__name__}")


class EngineHost(QObject):
    """The GUI thread's handle on the engine thread. Create one per application; call `shutdown()`.

    Signals (all emitted in the GUI thread):
      model_loading(name), model_ready(name, device), model_failed(message)
      started(request_id): the request left the queue and is running
      progress(request_id, fraction, eta_seconds | None, stage): at most ~15 Hz, only on change
      takes_ready(request_id, takes: list[Take]), failed(request_id, message), cancelled(request_id)
      busy_changed(busy): whether any generate/regenerate request is queued or running
    """

    model_loading = Signal(str)
    model_ready = Signal(str, str)
    model_failed = Signal(str)
    started = Signal(int)
    progress = Signal(int, float, object, str)
    takes_ready = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)
    busy_changed = Signal(bool)

    # Queued into the engine thread (the worker's slots run there, in order).
    _load_requested = Signal(str, str, str, str)
    _run_requested = Signal(int, object, object)
    _finish_requested = Signal()

    def __init__(self, parent: QObject | None = None, *, compute_threads: int | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._pending: dict[int, CancelToken] = {}  # queued or running requests
        self._loading = 0
        self._model: ModelStatus | None = None
        self._closed = False
        self._previous_switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._previous_switch_interval, GIL_SWITCH_INTERVAL))

        # The thread has no parent: a parent destroyed first would destroy it while running. The
        # host keeps the only references, and `shutdown()` joins it before they go.
        self._thread = QThread()
        self._thread.setObjectName("vaura-engine")
        self._worker = EngineWorker(compute_threads)
        self._worker.moveToThread(self._thread)

        # Connections after moveToThread and before start (they are queued both ways).
        self._thread.started.connect(self._worker.begin)
        self._thread.finished.connect(self._worker.deleteLater)
        self._load_requested.connect(self._worker.load_model)
        self._run_requested.connect(self._worker.run_request)
        self._finish_requested.connect(self._worker.finish)
        self._worker.model_loading.connect(self._on_model_loading)
        self._worker.model_loaded.connect(self._on_model_loaded)
        self._worker.model_failed.connect(self._on_model_failed)
        self._worker.request_started.connect(self._on_started)
        self._worker.progress.connect(self._on_progress)
        self._worker.takes_ready.connect(self._on_takes_ready)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)

        app = QCoreApplication.instance()
        if app is not None:  # a safety net for windows that forget to call shutdown()
            app.aboutToQuit.connect(self._on_about_to_quit)
        self._thread.start()

    # --- state ------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while a generate or regenerate request is queued or running."""
        return bool(self._pending)

    @property
    def loading(self) -> bool:
        """True while a model load is queued or running."""
        return self._loading > 0

    @property
    def model(self) -> ModelStatus | None:
        """The loaded model, or None before the first successful load (or after a failed one)."""
        return self._model

    @property
    def worker(self) -> EngineWorker:
        """The worker (for diagnostics and tests: its `feature_cache.computed` counts encodes)."""
        return self._worker

    @property
    def thread(self) -> QThread:
        return self._thread

    # --- commands ---------------------------------------------------------------------------------

    def load_model(
        self, name: str, device: str = "auto", precision: str = "auto", models_root: Path | None = None
    ) -> None:
        """Load `name` in the background (after any queued request); answers model_ready/failed.

        `models_root` is where installed models are looked up (None: the registry's default folder).
        """
        if self._closed:
            return
        self._loading += 1
        self._load_requested.emit(name, device, precision, "" if models_root is None else str(models_root))

    def generate(self, request: GenerateRequest) -> int:
        """Queue a whole-clip or range generation; returns its request id."""
        return self._submit(request)

    def regenerate(self, request: RegenerateRequest) -> int:
        """Queue a region regeneration; returns its request id."""
        return self._submit(request)

    def cancel(self, request_id: int | None = None) -> None:
        """Cancel one request, or (None) every queued and running one. Safe to call at any time.

        The token is set here, in the GUI thread, so the running request stops at its next decode
        step without waiting for the engine thread's event loop; `cancelled` follows.
        """
        tokens = self._pending.values() if request_id is None else [self._pending.get(request_id)]
        for token in tokens:
            if token is not None:
                token.cancel()

    def shutdown(self, timeout_ms: int = DEFAULT_SHUTDOWN_TIMEOUT_MS) -> bool:
        """Cancel everything, stop the engine thread and wait for it. True when it has finished.

        Call it from the window's closeEvent. A model load cannot be interrupted: if one outlasts
        `timeout_ms` this returns False with the thread still finishing; call it again before the
        application exits. No signals are emitted after shutdown.
        """
        if not self._closed:
            self._closed = True
            self.cancel()
            self._worker.request_stop()
            self._finish_requested.emit()
        if self._thread.isRunning() and not self._thread.wait(max(0, int(timeout_ms))):
            log.warning("the engine thread is still busy %d ms after shutdown was asked", timeout_ms)
            return False
        self._pending.clear()
        sys.setswitchinterval(self._previous_switch_interval)
        return True

    def _submit(self, request: EngineRequest) -> int:
        request_id = next(self._ids)
        token = CancelToken()
        if self._closed:
            return request_id  # nothing will answer: the application is closing
        was_busy = self.busy
        self._pending[request_id] = token
        self._run_requested.emit(request_id, request, token)
        if not was_busy:
            self.busy_changed.emit(True)
        return request_id

    def _finish(self, request_id: int) -> bool:
        """Forget a request; False when it was not pending (already answered, or after shutdown)."""
        if self._closed or self._pending.pop(request_id, None) is None:
            return False
        if not self._pending:
            self.busy_changed.emit(False)
        return True

    # --- relays from the engine thread ----------------------------------------------------------

    @Slot(str)
    def _on_model_loading(self, name: str) -> None:
        if not self._closed:
            self.model_loading.emit(name)

    @Slot(object)
    def _on_model_loaded(self, status: ModelStatus) -> None:
        self._loading = max(0, self._loading - 1)
        self._model = status
        if not self._closed:
            self.model_ready.emit(status.name, status.device)

    @Slot(str)
    def _on_model_failed(self, message: str) -> None:
        self._loading = max(0, self._loading - 1)
        self._model = None
        if not self._closed:
            self.model_failed.emit(message)

    @Slot(int)
    def _on_started(self, request_id: int) -> None:
        if not self._closed and request_id in self._pending:
            self.started.emit(request_id)

    @Slot(int, float, object, str)
    def _on_progress(self, request_id: int, fraction: float, eta: object, stage: str) -> None:
        if not self._closed and request_id in self._pending:
            self.progress.emit(request_id, fraction, eta, stage)

    @Slot(int, object)
    def _on_takes_ready(self, request_id: int, takes: object) -> None:
        if self._finish(request_id):
            self.takes_ready.emit(request_id, takes)

    @Slot(int, str)
    def _on_failed(self, request_id: int, message: str) -> None:
        if self._finish(request_id):
            self.failed.emit(request_id, message)

    @Slot(int)
    def _on_cancelled(self, request_id: int) -> None:
        if self._finish(request_id):
            self.cancelled.emit(request_id)

    @Slot()
    def _on_about_to_quit(self) -> None:
        self.shutdown()

"""Short jobs off the GUI thread (autosaves, exports, audio decoding, preview frames).

`SerialExecutor` runs callables one at a time, in order, on one Python worker thread, and hands each
result (or exception) back to a callback that runs in the GUI thread. The model never runs here: it has
its own long-lived QThread (`app.worker`). One executor per concern keeps a resource that must not be
used from two threads at once (a recovery folder, a decoder) on a single thread.

    jobs = SerialExecutor("autosave", parent=window)
    jobs.submit(job.run, on_done=lambda _: saved(), on_error=lambda exc: warn(str(exc)))
    ...
    jobs.shutdown()          # from closeEvent: waits for the job in progress, drops the queue
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)

DoneCallback = Callable[[Any], None]
ErrorCallback = Callable[[BaseException], None]


class SerialExecutor(QObject):
    """One worker thread; callbacks come back through a queued signal, so they run in the GUI thread."""

    _finished = Signal(object, object, object, object)  # on_done, on_error, result, error

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending = 0
        # Queued even when emitted from the GUI thread (a job done before its callback was attached):
        # a callback never runs inside submit(), before the caller's next line.
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @property
    def busy(self) -> bool:
        """Whether a submitted job has not delivered its callback yet."""
        return self._pending > 0

    def submit(
        self,
        work: Callable[[], Any],
        on_done: DoneCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> Future[Any] | None:
        """Queue `work`; None once the executor is shut down (the job is dropped)."""
        if self._pool is None:
            return None
        self._pending += 1
        future = self._pool.submit(work)
        future.add_done_callback(lambda f: self._relay(f, on_done, on_error))
        return future

    def _relay(
        self, future: Future[Any], on_done: DoneCallback | None, on_error: ErrorCallback | None
    ) -> None:
        # Runs in the worker thread (or in submit() for a job that finished at once): never touch widgets.
        try:
            error = future.exception()
            result = None if error is not None else future.result()
        except CancelledError as cancelled:
            result, error = None, cancelled
        try:
            self._finished.emit(on_done, on_error, result, error)
        except RuntimeError:  # the QObject is gone: the window closed while the job ran
            log.debug("%s: a result arrived after shutdown", self.name)

    @Slot(object, object, object, object)
    def _deliver(self, on_done: object, on_error: object, result: object, error: object) -> None:
        self._pending = max(0, self._pending - 1)
        if isinstance(error, BaseException):
            if isinstance(error, CancelledError):
                return
            if callable(on_error):
                on_error(error)
            else:
                log.error("%s job failed", self.name, exc_info=error)
        elif callable(on_done):
            on_done(result)

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Block until the queue is empty (tests); callbacks are delivered later by the event loop."""
        if self._pool is None:
            return True
        done: Future[None] = self._pool.submit(lambda: None)
        try:
            done.result(timeout=timeout_s)
        except TimeoutError:
            return False
        return True

    def shutdown(self, wait: bool = True) -> None:
        """Drop queued jobs and (with `wait`) let the running one finish. Later submits are ignored."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

"""Work off the GUI thread: a queue of small jobs drained by one QRunnable at a time on the global pool.

Results come back through a signal of a relay QObject that lives in the GUI thread, so the slots that
receive them run there (queued connections) and may touch widgets. One drainer at a time keeps a
resource that is meant for one thread at a time (a `ThumbnailCache`, a decoder) safe, and lets a view
that moved drop the jobs it no longer needs (`replace`). `shutdown` waits for the running job, so
nothing is left running when the owner goes away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

Job = tuple[Hashable, Callable[[], object]]  # (key reported with the result, the work)
# A pause between jobs: decoding holds the GIL in many short stretches, and without a real gap the GUI
# thread queues behind them (measured: 40-60 ms event-loop stalls while thumbnails decode, under 20 ms
# with this pause).
_YIELD_S = 0.002


class _Relay(QObject):
    done = Signal(object, object)  # key, result
    failed = Signal(object, str)  # key, message


class _Drainer(QRunnable):
    def __init__(self, queue: SerialJobQueue) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._queue = queue

    def run(self) -> None:
        self._queue._drain()


class SerialJobQueue:
    """Runs submitted jobs one after another on `QThreadPool.globalInstance()`.

    Connect `done(key, result)` and `failed(key, message)` to slots of QObjects in the GUI thread.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._relay = _Relay()
        self.done = self._relay.done
        self.failed = self._relay.failed
        self._lock = threading.Lock()
        self._pending: deque[Job] = deque()
        self._running = False
        self._stopped = False
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, key: Hashable, work: Callable[[], object]) -> None:
        self.extend([(key, work)])

    def extend(self, jobs: Iterable[Job]) -> None:
        with self._lock:
            if self._stopped:
                return
            self._pending.extend(jobs)
            self._start_locked()

    def replace(self, jobs: Iterable[Job]) -> None:
        """Drop the jobs not started yet and queue `jobs` instead (the one running finishes)."""
        with self._lock:
            if self._stopped:
                return
            self._pending.clear()
            self._pending.extend(jobs)
            self._start_locked()

    def cancel_pending(self) -> None:
        with self._lock:
            self._pending.clear()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + int(self._running)

    def is_idle(self) -> bool:
        return self._idle.is_set()

    def wait_idle(self, timeout_s: float) -> bool:
        return self._idle.wait(timeout_s)

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Drop pending jobs, refuse new ones, wait for the running one; True if nothing is left running."""
        with self._lock:
            self._stopped = True
            self._pending.clear()
        return self._idle.wait(timeout_s)

    def restart(self) -> None:
        """Accept jobs again after `shutdown`."""
        with self._lock:
            self._stopped = False

    def _start_locked(self) -> None:
        if self._running or not self._pending:
            return
        self._running = True
        self._idle.clear()
        QThreadPool.globalInstance().start(_Drainer(self))

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending or self._stopped:
                    self._running = False
                    self._idle.set()
                    return
                key, work = self._pending.popleft()
            try:
                result = work()
            except Exception as exc:  # reported to the GUI; a job must never kill the pool thread
                log.debug("%s job %r failed", self.name, key, exc_info=True)
                self._emit(self._relay.failed, key, str(exc) or type(exc).__name__)
            else:
                self._emit(self._relay.done, key, result)
            time.sleep(_YIELD_S)

    def _emit(self, signal: Signal, key: Hashable, value: object) -> None:
        try:
            signal.emit(key, value)
        except RuntimeError:  # the relay's C++ side is gone: the application is shutting down
            log.debug("%s: result for %r dropped", self.name, key)

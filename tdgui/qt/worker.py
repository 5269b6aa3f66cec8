"""One helper that runs blocking work (network, keyring, disk) on a thread pool, results via signals."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)

_POOL: QThreadPool | None = None


def pool() -> QThreadPool:
    """The app's own pool (a few threads: a keyring call may hang for seconds, never block the UI)."""
    global _POOL
    if _POOL is None:
        _POOL = QThreadPool()
        _POOL.setMaxThreadCount(4)
        _POOL.setExpiryTimeout(30_000)
    return _POOL


class _Relay(QObject):
    """Lives in the GUI thread; the worker emits, Qt queues the call onto the GUI thread.

    Owned by the application object, never by a Python reference: whatever thread drops the
    last reference, the relay is deleted on the GUI thread (deleteLater), and its callbacks,
    which hold windows and dialogs, are dropped there too. A QObject, or the last reference to
    a widget, freed on a worker thread can crash a later event loop turn (a full suite run
    segfaulted once in pytest-qt's event processing, 2026-12-03).
    """

    ready = Signal()

    def __init__(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None,
        on_error: Callable[[BaseException], None] | None,
        context: QObject | None,
    ) -> None:
        super().__init__(QCoreApplication.instance())
        #: the job's function: kept here, not in the job, so that its closure is dropped here too
        self.fn: Callable[[], Any] | None = fn
        self._on_done = on_done
        self._on_error = on_error
        self._context = context
        #: (True, value) or (False, exception), set by the worker just before `ready`
        self.outcome: tuple[bool, Any] | None = None
        self.ready.connect(self._deliver)

    @Slot()
    def _deliver(self) -> None:
        outcome, on_done, on_error, context = self.outcome, self._on_done, self._on_error, self._context
        self.outcome = self._on_done = self._on_error = self._context = self.fn = None
        self.deleteLater()  # on a later turn of the event loop: never free a QObject in its own event
        if outcome is None or (context is not None and not shiboken6.isValid(context)):
            return
        ok, value = outcome
        if ok:
            if on_done is not None:
                on_done(value)
        elif on_error is not None:
            on_error(value)
        else:
            log.warning("background task failed: %s", value)


class _Job(QRunnable):
    def __init__(self, relay: _Relay) -> None:
        super().__init__()
        self._relay: _Relay | None = relay
        self.setAutoDelete(True)

    def run(self) -> None:
        # The job keeps nothing once the answer is out: the pool deletes it on this thread.
        relay, self._relay = self._relay, None
        if relay is None or relay.fn is None:
            return
        relay.outcome = _call(relay.fn)
        relay.ready.emit()


def _call(fn: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, fn()
    except Exception as exc:  # delivered to on_error in the GUI thread
        return False, exc


def run_in_background(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    *,
    context: QObject | None = None,
    on: QThreadPool | None = None,
) -> None:
    """Run `fn()` on the pool (or `on`); `on_done(result)` / `on_error(exc)` run later in the GUI thread.

    Must be called from the GUI thread. With `context`, the callbacks are skipped once that
    object has been deleted (a window closed while its job ran).
    """
    if QCoreApplication.instance() is None:
        raise RuntimeError("run_in_background needs the Qt application (it delivers on its thread)")
    (on or pool()).start(_Job(_Relay(fn, on_done, on_error, context)))


def wait_for_idle(msecs: int = 30_000) -> bool:
    """Wait for running jobs to end (used at exit and in tests); True if all finished."""
    return pool().waitForDone(msecs)

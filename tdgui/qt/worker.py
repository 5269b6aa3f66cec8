"""One helper that runs blocking work (network, keyring, disk) on a thread pool, results via signals."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

log = logging.getLogger(__name__)

_POOL: QThreadPool | None = None
#: Relays waiting for their job; kept here so Python does not collect them mid-flight.
_PENDING: set[_Relay] = set()


def pool() -> QThreadPool:
    """The app's own pool (a few threads: a keyring call may hang for seconds, never block the UI)."""
    global _POOL
    if _POOL is None:
        _POOL = QThreadPool()
        _POOL.setMaxThreadCount(4)
        _POOL.setExpiryTimeout(30_000)
    return _POOL


class _Relay(QObject):
    """Lives in the GUI thread; the worker emits, Qt queues the call onto the GUI thread."""

    done = Signal(object)
    failed = Signal(object)

    def __init__(
        self,
        on_done: Callable[[Any], None] | None,
        on_error: Callable[[BaseException], None] | None,
        context: QObject | None,
    ) -> None:
        super().__init__()
        self._on_done = on_done
        self._on_error = on_error
        self._context = context
        self.done.connect(self._deliver_done)
        self.failed.connect(self._deliver_error)

    def _alive(self) -> bool:
        return self._context is None or shiboken6.isValid(self._context)

    def _release(self) -> None:
        # Dropped on a later turn of the event loop: never free a QObject inside its own event.
        QTimer.singleShot(0, functools.partial(_PENDING.discard, self))

    @Slot(object)
    def _deliver_done(self, value: object) -> None:
        self._release()
        if self._on_done is not None and self._alive():
            self._on_done(value)

    @Slot(object)
    def _deliver_error(self, error: object) -> None:
        self._release()
        if not isinstance(error, BaseException):
            return
        if self._on_error is not None and self._alive():
            self._on_error(error)
        elif self._on_error is None:
            log.warning("background task failed: %s", error)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._fn = fn
        self._relay = relay
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            value = self._fn()
        except Exception as exc:  # delivered to on_error in the GUI thread
            self._relay.failed.emit(exc)
        else:
            self._relay.done.emit(value)


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
    relay = _Relay(on_done, on_error, context)
    _PENDING.add(relay)
    (on or pool()).start(_Job(fn, relay))


def wait_for_idle(msecs: int = 30_000) -> bool:
    """Wait for running jobs to end (used at exit and in tests); True if all finished."""
    return pool().waitForDone(msecs)

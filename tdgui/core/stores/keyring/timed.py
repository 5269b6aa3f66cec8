"""Keyring calls with a deadline: a hung Secret Service is reported within 3 s, not waited on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import keyring.backend
import keyring.errors

from tdgui.core.errors import StoreUnavailable, TdguiError
from tdgui.core.stores.keyring.backend import map_error, resolve_backend
from tdgui.core.stores.keyring.secret_service import shared_session

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Per keyring call. A store operation makes a quick probe first, so one hung call is
#: reported within 3 s in all (docs/design.md §5: "clear error within 3 s").
CALL_TIMEOUT = 2.5


class TimedKeyring:
    """get/set/delete of one keyring service, each given up after `timeout` seconds."""

    def __init__(self, service: str, timeout: float = CALL_TIMEOUT) -> None:
        self.service = service
        self.timeout = float(timeout)
        # A keyring call that timed out and is still running in its worker: while it hangs,
        # later calls fail at once instead of piling up more hung threads.
        self.stuck: threading.Thread | None = None
        self._resolved: keyring.backend.KeyringBackend | None = None
        # The backend of the operation the calling thread is in (see operation()).
        self._local = threading.local()
        # Until the first call after resolving the backend: the resolution (keyring probes
        # D-Bus, slow on a loaded box) and that call share one `timeout`, so a keyring that
        # hangs from the start is still reported within 3 s (row 9 measured 3.0-3.4 s under
        # load with a full timeout for each).
        self._first_deadline: float | None = None

    def backend(self) -> keyring.backend.KeyringBackend:
        """The keyring backend to use, refusing plaintext; first use probes D-Bus (timed).

        Resolved once per store: a call costs a thread and a D-Bus look-up (~8 ms).
        """
        current: keyring.backend.KeyringBackend | None = getattr(self._local, "backend", None)
        if current is not None:
            return current
        if self._resolved is None:
            deadline = time.monotonic() + self.timeout
            self._resolved = self.call(resolve_backend)
            self._first_deadline = deadline
        return self._resolved

    @contextmanager
    def operation(self) -> Iterator[None]:
        """One store operation (read, write, delete): its calls share one Secret Service
        connection and session (see secret_service.SharedSession); other backends as is."""
        if getattr(self._local, "backend", None) is not None:
            yield  # already inside one
            return
        shared: Any = shared_session(self.backend())
        if shared is None:
            yield
            return
        self._local.backend = shared
        try:
            yield
        finally:
            self._local.backend = None
            # A call still hung inside the connection keeps it: closing its socket under it
            # could hand the descriptor number to the next file opened.
            if not self.hung():
                try:
                    shared.close()
                except OSError as exc:
                    log.debug("closing the Secret Service connection: %s", exc)

    def hung(self) -> bool:
        return self.stuck is not None and self.stuck.is_alive()

    def get(self, username: str) -> str | None:
        backend = self.backend()
        return self.call(lambda: backend.get_password(self.service, username))

    def set(self, username: str, value: str, *, secret: str | None = None) -> None:
        """Store `value`; `secret`: text an error message must not show (the value itself)."""
        backend = self.backend()
        self.call(lambda: backend.set_password(self.service, username, value), secret=secret)

    def delete(self, username: str) -> None:
        backend = self.backend()

        def delete() -> None:
            try:
                backend.delete_password(self.service, username)
            except keyring.errors.PasswordDeleteError:
                pass  # missing already (every backend reports "not found" this way)

        self.call(delete)

    def call(self, fn: Callable[[], T], *, secret: str | None = None) -> T:
        """Run one keyring call in a daemon thread; give up after `timeout` seconds.

        A hung Secret Service (or D-Bus, or an unanswered unlock prompt) blocks forever inside
        jeepney; a daemon thread can be abandoned, the caller cannot.
        """
        if self.hung():
            raise StoreUnavailable(self.timeout_message() + " (an earlier call still waits)")
        outcome: list[tuple[bool, object]] = []

        def run() -> None:
            try:
                outcome.append((True, fn()))
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append((False, exc))

        timeout = self.timeout
        if self._first_deadline is not None:
            # At least a short while: a working keyring answers a call in ~0.05 s.
            timeout = max(0.5, min(timeout, self._first_deadline - time.monotonic()))
            self._first_deadline = None
        worker = threading.Thread(target=run, name="tdgui-keyring-call", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive() or not outcome:
            self.stuck = worker
            log.warning("keyring call gave up after %g s (service %r)", self.timeout, self.service)
            raise StoreUnavailable(self.timeout_message())
        ok, result = outcome[0]
        if ok:
            return cast(T, result)
        assert isinstance(result, BaseException)
        if isinstance(result, TdguiError):
            raise result
        if not isinstance(result, Exception):
            raise result  # KeyboardInterrupt, SystemExit: not a keyring failure
        error, safe = map_error(result, secret)
        if safe:
            raise error from result
        raise error from None  # the original may carry the secret: do not chain it

    def timeout_message(self) -> str:
        return (
            f"the keyring did not answer within {self.timeout:g} s (Secret Service hung, or "
            "an unlock prompt is waiting): unlock your keyring and retry, or choose an "
            "explicit file store with --store file"
        )

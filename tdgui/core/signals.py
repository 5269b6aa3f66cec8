"""Signals never cut a token exchange in half: SIGINT/SIGTERM/SIGHUP wait until the tokens are stored.

Under refresh-token rotation (RFC 6749 §6, RFC 9700 §4.14.2) the provider forgets the old
refresh token the moment it answers; a process that dies between that answer and the store
write loses the grant, and the user must log in again. So from just before the request until
the answer is durably stored, these signals are held and then honoured. A second SIGINT (a
second Ctrl-C) while one is held stops at once: the person at the terminal asked twice.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

DEFERRED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

#: What a person at a terminal reads when their Ctrl-C is held (set by the CLI).
_notice: Callable[[str], None] | None = None


def set_notice(notice: Callable[[str], None] | None) -> None:
    """Where to tell the user that a signal is held (the CLI: stderr); None: the log only."""
    global _notice
    _notice = notice


@contextmanager
def critical_section(what: str) -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP for the block, then deliver them as if they came now.

    Only the main thread can install handlers; elsewhere (a GUI worker thread, a script's
    thread) the block runs unprotected, which the desktop app avoids by doing token work in
    child processes whose main thread this is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous: dict[int, Any] = {}

    def hold(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and signal.SIGINT in held:
            # A second Ctrl-C: the user insists. The request may still be lost; they were told.
            raise KeyboardInterrupt
        if not held:
            message = (
                f"tdgui: finishing {what} first, so the new refresh token is not lost "
                "(press Ctrl-C again to stop now and risk a new login)"
            )
            log.warning("signal %d held until %s is stored", signum, what)
            if _notice is not None:
                _notice(message)
        held.append(signum)

    for signum in DEFERRED:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue  # ignored by whoever started us (nohup: SIGHUP), so nothing to hold
        try:
            previous[signum] = signal.signal(signum, hold)
        except (ValueError, OSError):  # not settable here (e.g. an embedded interpreter)
            continue
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(held):  # each held kind once, in arrival order
            signal.raise_signal(signum)

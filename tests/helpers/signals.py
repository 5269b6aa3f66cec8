"""Children that are sent a signal start with it at its default, whatever the suite was started under."""

from __future__ import annotations

import signal


def default_signals() -> None:
    """A Popen preexec_fn: the child starts with INT/TERM/HUP at their defaults, as from a terminal.

    Signals ignored on entry cannot be trapped by a shell (POSIX), and tdgui keeps them ignored
    too: a suite started under `nohup` (SIGHUP ignored) made row 36's SIGHUP case wait out the
    child's 60 s sleep.
    """
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)

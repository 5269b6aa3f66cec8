"""Where the desktop app cannot show a window, it says so; Ctrl-C, logout or `kill` quit it cleanly."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping

from PySide6.QtCore import QObject, QSocketNotifier, QTimer

log = logging.getLogger(__name__)

#: Printed (with exit status 2) when `tdgui` starts on Linux with no display to show a window on
#: (issue 14, defect 4: `make run` used to start it on an invisible Xvfb, where nobody saw it).
NO_DISPLAY = (
    "tdgui: no display found, so the desktop app cannot show a window here (DISPLAY and "
    "WAYLAND_DISPLAY are unset). Run it on your desktop, or over `ssh -X`; on this machine the "
    "command line works: `tdgui --help`."
)


def display_problem(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """The message to print when no window can be shown; None when one can (or Qt was told where).

    Only Linux/BSD desktops are checked: Windows and macOS always have their own window system.
    An explicit QT_QPA_PLATFORM (offscreen in tests, xcb, wayland) is the caller's choice.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin", "cygwin")):
        return None
    if environ.get("QT_QPA_PLATFORM") or environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return NO_DISPLAY


#: Ctrl-C in a terminal (SIGINT), the session ending or `kill` (SIGTERM), the terminal closed
#: (SIGHUP): each quits the way the tray's Quit does, instead of dying with its work half done.
QUIT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class InterruptQuit(QObject):
    """QUIT_SIGNALS quit the app through `quit` (the shell's own quit: logins closed, state saved).

    While Qt's event loop runs, Python's signal handler only runs when Python code next runs,
    which in an idle app may be never: Ctrl-C in `make run` did nothing. The C-level handler
    writes the signal number to a socket (signal.set_wakeup_fd); a QSocketNotifier on the other
    end wakes the loop at once, so the idle app still does no polling.
    """

    def __init__(self, quit: Callable[[], None], signals: tuple[int, ...] = QUIT_SIGNALS) -> None:
        super().__init__()
        self._quit = quit
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno())
        # A signal ignored by whoever started the app stays ignored: `nohup tdgui &` asked for
        # the app to outlive its terminal (the shells' rule for signals ignored on entry).
        self._previous = {
            number: signal.signal(number, self._on_signal)
            for number in signals
            if signal.getsignal(number) is not signal.SIG_IGN
        }
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)
        self.received: list[int] = []

    def _on_signal(self, number: int, _frame: object) -> None:
        self.received.append(number)
        log.info("signal %d: quitting", number)
        # On the loop's next turn, not here: the handler runs between any two bytecodes of the
        # GUI thread, maybe inside a slot halfway through its work.
        QTimer.singleShot(0, self._quit)

    def _drain(self) -> None:
        # Reading the byte is enough: the Python-level handler runs as soon as Python code runs,
        # which this slot is.
        try:
            self._reader.recv(64)
        except OSError:
            pass

    def close(self) -> None:
        self._notifier.setEnabled(False)
        signal.set_wakeup_fd(self._previous_fd)
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._reader.close()
        self._writer.close()

"""Row 1 child: process start → the sandbox login page loaded in tdgui's real login window.

    TD_CONFIG_DIR=... python bench/qt_probe_login.py ACCOUNT [--timeout SECONDS]

The parent (bench/bench_qt.py) has started a sandbox whose CA and leaf certificate live in
TD_CONFIG_DIR and added ACCOUNT (a sandbox account, memory store) to that config.

Where the app runs its login view in a child process (tdgui.qt.login.child), this script *is*
that child: it runs `tdgui --login-child` through tdgui.cli.main, reading the login spec the
parent wrote to its stdin exactly as the app's child does; the only change is a subclass of
tdgui.qt.login.window.LoginWindow that notes the time at the page's load and then cancels.
(The in-process login window of earlier versions is gone, and with it this probe's other mode.)

At the page's load (LoginWindow.page_loaded, emitted with loadFinished) it prints

    PROBE {"loaded": 1.234, "marks": {"python": 0.04, ..., "navigating": 0.9}}

on stdout (besides the child's own result line). All times are seconds since *process start*,
measured exactly as bench/bare_webengine_app.py does (kernel start time, /proc/self/stat).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Any

from bare_webengine_app import _seconds_since_process_start

MARKS: dict[str, float] = {}


def mark(name: str) -> None:
    MARKS.setdefault(name, round(_seconds_since_process_start(), 4))


def child_design() -> bool:
    """Does the app run its login view in a child process (`tdgui --login-child`)?"""
    return importlib.util.find_spec("tdgui.qt.login.child") is not None


def as_login_child() -> int:
    # Our own copy of stdout: the login child points fd 1 at stderr for everything but its result.
    probe_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    from PySide6.QtCore import QTimer

    import tdgui.qt.login.window as login_module

    mark("engine_and_login_imported")  # PySide6.QtWebEngine*, the login window: the child imports both
    base: Any = login_module.LoginWindow

    class TimedLoginWindow(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            mark("window_constructing")  # QApplication exists, spec read
            super().__init__(*args, **kwargs)
            mark("window_created")
            self.address.textChanged.connect(self._probe_navigating)
            self.page_loaded.connect(self._probe_loaded)

        def _probe_navigating(self, _text: str) -> None:
            mark("navigating")  # the address bar is first set when navigation starts

        def _probe_loaded(self, _url: str) -> None:
            if "loaded" in MARKS:
                return
            mark("loaded")
            probe_out.write("PROBE " + json.dumps({"loaded": MARKS["loaded"], "marks": MARKS}) + "\n")
            probe_out.flush()
            QTimer.singleShot(0, self.cancel)  # the child then reports "cancelled" and exits

    login_module.LoginWindow = TimedLoginWindow  # type: ignore[misc]
    from tdgui.cli import main

    return int(main(["--login-child"]))


def main(argv: list[str]) -> int:
    mark("python")
    if not child_design():
        print("qt_probe_login: this tdgui has no login child (tdgui.qt.login.child)", file=sys.stderr)
        return 2
    return as_login_child()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

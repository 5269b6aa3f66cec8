"""`tdgui --login-child`: the short-lived process that hosts the login web view.

Chromium's browser side lives in whichever process creates the web view and never gives its
memory back, so the app runs the view here and this process exits after one login.

Protocol (see tdgui.qt.login_process for the parent):
- stdin, first line: the LoginSpec as JSON. Later lines are commands: `cancel`, `close`,
  `raise`, `browser`. End of stdin (the parent went away) cancels the login.
- stdout: exactly one JSON line, the result: `{"outcome": "callback", "url": ...}` with the
  callback URL exactly as caught (the parent checks the state and exchanges the code), or
  `{"outcome": "cancelled"|"closed"|"network"|"timeout"|"certificate"|"failed"|"browser",
  "message": ...}`. Each result also carries `"engine": [Qt WebEngine, Chromium]` versions.
- stderr: this process's log lines (masked), for the parent's DEBUG log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("tdgui.qt.login_child")

FILL_LOGIN = (
    "document.getElementById('username').value='demo';"
    "document.getElementById('password').value='demo';"
    "document.getElementById('submit').click();"
)
CLICK_ALLOW = "document.getElementById('allow').click();"
CLICK_DENY = "document.getElementById('deny').click();"
COMMANDS = ("cancel", "close", "raise", "browser")


class _MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from tdgui.core.logs import SECRETS

        record.msg = SECRETS.mask(record.getMessage())
        record.args = None
        return True


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _write_line(out: IO[str], data: dict[str, Any]) -> None:
    out.write(json.dumps(data, separators=(",", ":")) + "\n")
    out.flush()


def main() -> int:
    """Read the spec, show the login window, print one result line, exit."""
    # The result pipe is private: anything else that writes to stdout (a library, Chromium)
    # goes to stderr, so the parent reads exactly one line from us.
    result_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _setup_logging()

    from tdgui.qt.app import prepare_environment
    from tdgui.qt.login_common import LoginSpec

    try:
        line = sys.stdin.readline()
        if not line.strip():
            raise ValueError("no login spec on stdin")
        spec = LoginSpec.from_json(line)
    except (ValueError, KeyError, TypeError) as exc:
        _write_line(result_out, {"outcome": "failed", "message": f"bad login spec: {exc}"})
        return 2
    prepare_environment()
    return _run(spec, result_out)


def _run(spec: Any, result_out: IO[str]) -> int:
    import PySide6.QtWebEngineWidgets  # noqa: F401 - before the QApplication
    from PySide6.QtCore import (
        QCoreApplication,
        QEvent,
        QObject,
        Qt,
        QTimer,
        Signal,
        Slot,
        qInstallMessageHandler,
    )
    from PySide6.QtWebEngineCore import qWebEngineChromiumVersion, qWebEngineVersion
    from PySide6.QtWidgets import QApplication

    from tdgui.core.logs import SECRETS
    from tdgui.qt.app import _qt_message_handler
    from tdgui.qt.login import LoginResult, LoginWindow

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("tdgui")
    app.setApplicationDisplayName("tdgui")
    app.setDesktopFileName("tdgui")
    app.setQuitOnLastWindowClosed(False)
    qInstallMessageHandler(_qt_message_handler)
    engine = [str(qWebEngineVersion()), str(qWebEngineChromiumVersion())]

    class Child(QObject):
        command = Signal(str)

        def __init__(self) -> None:
            super().__init__()
            self.done = False
            self.loads = 0
            self.window = LoginWindow(None, spec.account, spec=spec)
            self.window.finished.connect(self.on_finished)
            self.window.callback_received.connect(self.on_callback)
            self.window.browser_requested.connect(self.on_browser)
            self.window.page_loaded.connect(self.on_page_loaded)
            self.command.connect(self.on_command, Qt.ConnectionType.QueuedConnection)

        def report(self, data: dict[str, Any]) -> None:
            if self.done:
                return
            self.done = True
            data["engine"] = engine
            try:
                _write_line(result_out, data)
            except OSError:
                log.info("the parent is gone; the result was not delivered")
            self.window.teardown_engine()
            self.window.hide()
            QTimer.singleShot(0, app.quit)

        @Slot(str)
        def on_callback(self, url: str) -> None:
            SECRETS.add(url)
            self.report({"outcome": "callback", "url": url})

        @Slot()
        def on_browser(self) -> None:
            self.report({"outcome": "browser", "message": "The login continues in the system browser."})

        @Slot(object)
        def on_finished(self, result: LoginResult) -> None:
            self.report({"outcome": result.outcome.value, "message": result.message})

        @Slot(str)
        def on_command(self, command: str) -> None:
            if self.done:
                return
            window = self.window
            if command == "raise":
                window.show()
                window.raise_()
                window.activateWindow()
            elif command == "close":
                window.close()
            elif command == "browser":
                window.use_system_browser()
            else:  # "cancel" or the end of stdin
                window.cancel()

        @Slot(str)
        def on_page_loaded(self, url: str) -> None:
            self.loads += 1
            if self.loads == 1 and spec.screenshot:
                QTimer.singleShot(300, self.take_screenshot)  # let the page paint first
            elif self.loads == 1 and self.autofill:
                self.window.run_sandbox_script(FILL_LOGIN)
            elif self.loads == 2 and self.autofill:
                consent = CLICK_DENY if spec.autofill_consent == "deny" else CLICK_ALLOW
                self.window.run_sandbox_script(consent)

        @property
        def autofill(self) -> bool:
            # Only ever on the local sandbox, whose certificate this view pins.
            return bool(spec.autofill_sandbox and spec.is_sandbox)

        @Slot()
        def take_screenshot(self) -> None:
            if self.done:
                return
            path = Path(spec.screenshot)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self.window.grab().save(str(path)):
                log.warning("could not write the screenshot %s", path)
            if self.autofill:
                self.window.run_sandbox_script(FILL_LOGIN)

    child = Child()

    def read_commands() -> None:
        for raw in sys.stdin:
            command = raw.strip().lower()
            if command in COMMANDS:
                child.command.emit(command)
        child.command.emit("cancel")  # the parent closed the pipe or went away

    threading.Thread(target=read_commands, name="login-commands", daemon=True).start()
    child.window.start()
    app.exec()
    child.window.teardown_engine()
    # Run the pending deleteLater()s (view, page, profile) before Qt goes down.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    if not child.done:
        _write_line(result_out, {"outcome": "failed", "message": "The login window ended without a result."})
    return 0

"""`tdgui --login-child`: the short-lived process that hosts the login web view.

Chromium's browser side lives in whichever process creates the web view and never gives its
memory back, so the app runs the view here and this process exits after one login. The wire
is tdgui.qt.login.protocol: a LoginSpec line on stdin, then Command lines (end of stdin
cancels); exactly one ChildResult line on stdout; this process's masked log on stderr.

It imports only what the view needs (flow, providers, logs, the protocol): no token service,
config or store, so it never holds a token, a client secret or a PKCE verifier.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer, Signal, Slot, qInstallMessageHandler

from tdgui.core.login_outcome import LoginOutcome
from tdgui.core.navigation import display_url
from tdgui.qt.login.hooks import CHROMIUM_FLAGS_VAR, TestHooks, loopback_mapped_hosts, take_from_environment
from tdgui.qt.login.protocol import ChildResult, Command, LoginSpec, ProtocolError, ResultKind

if TYPE_CHECKING:
    from tdgui.qt.login.window import LoginWindow

log = logging.getLogger(__name__)

FILL_LOGIN = (
    "document.getElementById('username').value='demo';"
    "document.getElementById('password').value='demo';"
    "document.getElementById('submit').click();"
)
CLICK_ALLOW = "document.getElementById('allow').click();"
CLICK_DENY = "document.getElementById('deny').click();"


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


def _write(out: IO[str], result: ChildResult) -> None:
    out.write(result.to_json() + "\n")
    out.flush()


def main() -> int:
    """Read the spec, show the login window, print one result line, exit."""
    # The result pipe is private: anything else that writes to stdout (a library, Chromium)
    # goes to stderr, so the parent reads exactly one line from us.
    result_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _setup_logging()
    try:
        line = sys.stdin.readline()
        if not line.strip():
            raise ProtocolError("no login spec on stdin")
        spec = LoginSpec.from_json(line)
    except ProtocolError as exc:
        _write(result_out, ChildResult(ResultKind.ENDED, LoginOutcome.FAILED, f"bad login spec: {exc}"))
        return 2
    from tdgui.qt.app import prepare_environment

    hooks = take_from_environment(os.environ, spec)
    prepare_environment()
    return _run(spec, hooks, result_out)


def _run(spec: LoginSpec, hooks: TestHooks | None, result_out: IO[str]) -> int:
    import PySide6.QtWebEngineWidgets  # noqa: F401 - before the QApplication
    from PySide6.QtWebEngineCore import qWebEngineChromiumVersion, qWebEngineVersion
    from PySide6.QtWidgets import QApplication

    from tdgui.qt.app import _qt_message_handler
    from tdgui.qt.login.window import LoginWindow

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("tdgui")
    app.setApplicationDisplayName("tdgui")
    app.setDesktopFileName("tdgui")
    app.setQuitOnLastWindowClosed(False)
    qInstallMessageHandler(_qt_message_handler)

    class Child(QObject):
        command = Signal(object)

        def __init__(self) -> None:
            super().__init__()
            self.window = LoginWindow(spec)
            self.window.engine = (str(qWebEngineVersion()), str(qWebEngineChromiumVersion()))
            self.window.done.connect(self.on_done)
            self.command.connect(self.on_command, Qt.ConnectionType.QueuedConnection)
            self.script = _HookScript(self.window, hooks) if hooks is not None else None
            if hooks is not None and hooks.emulator_leaf_sha256:
                hosts = loopback_mapped_hosts(os.environ.get(CHROMIUM_FLAGS_VAR, ""))
                self.window.test_leaf = (hooks.emulator_leaf_sha256, hosts)

        @Slot(object)
        def on_done(self, result: ChildResult) -> None:
            try:
                _write(result_out, result)
            except OSError:
                log.info("the parent is gone; the result was not delivered")
            self.window.hide()
            QTimer.singleShot(0, app.quit)

        @Slot(object)
        def on_command(self, command: Command) -> None:
            window = self.window
            if window.result is not None:
                return
            if command is Command.RAISE:
                window.show()
                window.raise_()
                window.activateWindow()
            elif command is Command.CLOSE:
                window.close()
            elif command is Command.BROWSER:
                window.use_system_browser()
            else:
                window.cancel()

    child = Child()

    def read_commands() -> None:
        for raw in sys.stdin:
            try:
                child.command.emit(Command.from_json(raw))
            except ProtocolError as exc:
                log.warning("ignored a command line: %s", exc)
        child.command.emit(Command.CANCEL)  # the parent closed the pipe or went away

    threading.Thread(target=read_commands, name="login-commands", daemon=True).start()
    child.window.start()
    app.exec()
    child.window.teardown_engine()
    # Run the pending deleteLater()s (view, page, profile) before Qt goes down.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    if spec.device_dir is not None:
        from tdgui.qt.login.device import prune_device_dir

        prune_device_dir(Path(spec.device_dir))  # cookies only stay (remember this device)
    if child.window.result is None:
        _write(
            result_out,
            ChildResult(ResultKind.ENDED, LoginOutcome.FAILED, "The login window ended without a result."),
        )
    return 0


class _HookScript:
    """TEST ONLY (tdgui.qt.login.hooks): drives the sandbox's pages as a user would."""

    def __init__(self, window: LoginWindow, hooks: TestHooks) -> None:
        self.window, self.hooks = window, hooks
        #: "visit" (go to hooks.visit first), "visiting", "returning" (to the login page),
        #: "form" (the login form next), "consent", "idle"
        self.step = "visit" if hooks.visit else "form"
        self.login_page = display_url(window.spec.url)
        self.shot_taken = not hooks.screenshot
        window.page_loaded.connect(self.on_loaded)
        window.guarded.connect(self.on_guarded)

    def on_loaded(self, url: str) -> None:
        if self.step == "visiting":
            return  # the visited page itself (e.g. the popup page): wait for the guard
        if self.step == "returning":
            # Only the login page counts: a late load of the visited page (its onload may open
            # the popup before Qt reports the load) must not be taken for the login form.
            if url != self.login_page:
                return
            self.step = "form"
        if not self.shot_taken:
            self.shot_taken = True
            QTimer.singleShot(300, self.take_screenshot)  # let the page paint first
            return
        self.advance()

    def take_screenshot(self) -> None:
        window = self.window
        if window.result is not None or self.hooks.screenshot is None:
            return
        path = Path(self.hooks.screenshot)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(path)):
            log.warning("could not write the screenshot %s", path)
        self.advance()

    def advance(self) -> None:
        window, hooks = self.window, self.hooks
        if window.result is not None:
            return
        if self.step == "visit" and hooks.visit:
            self.step = "visiting"
            window.navigate(hooks.visit)
        elif self.step == "form" and hooks.autofill:
            self.step = "consent"
            window.run_sandbox_script(FILL_LOGIN)
        elif self.step == "consent":
            self.step = "idle"
            window.run_sandbox_script(CLICK_DENY if hooks.consent == "deny" else CLICK_ALLOW)

    def on_guarded(self) -> None:
        # The guard stopped the visit (a blocked navigation or a refused popup): back to the
        # login page, then on as without a visit.
        if self.hooks.continue_when_blocked:
            if self.window.continue_button.isVisible():
                self.step = "idle"
                self.window.continue_button.click()
            return
        if self.step == "visiting":
            self.step = "returning"
            QTimer.singleShot(0, lambda: self.window.navigate(self.window.spec.url))

"""`tdgui --login-child`: the short-lived process that hosts the login web view.

Chromium's browser side lives in whichever process creates the web view and never gives its
memory back, so the app runs the view here and this process exits after one login. The wire
is tdgui.qt.login.protocol: a LoginSpec line on stdin, then Command lines (end of stdin
cancels); exactly one ChildResult line on stdout; this process's masked log on stderr.

It imports only what the view needs (flow, providers, logs, the protocol): no token service,
config or store, so it never holds a token, a client secret or a PKCE verifier.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer, Signal, Slot, qInstallMessageHandler

from tdgui.core.login_outcome import LoginOutcome
from tdgui.qt.login.hooks import CHROMIUM_FLAGS_VAR, TestHooks, loopback_mapped_hosts, take_from_environment
from tdgui.qt.login.protocol import ChildResult, Command, LoginSpec, ProtocolError, ResultKind

if TYPE_CHECKING:
    from tdgui.qt.login.window import LoginWindow

log = logging.getLogger(__name__)

#: TEST ONLY: acts on what the sandbox page shows, not on the order its loads were reported
#: (a late report of an earlier page must not press a button the page does not have): fills
#: and submits the login form, or presses the consent button; answers what it did.
DRIVE_SANDBOX_PAGE = """(function (fill, consent) {
  var user = document.getElementById('username');
  if (user && fill) {
    user.value = 'demo';
    document.getElementById('password').value = 'demo';
    document.getElementById('submit').click();
    return 'form';
  }
  var button = consent ? document.getElementById(consent) : null;
  if (button) { button.click(); return 'consent'; }
  return '';
})(%s, %s)"""
#: How long the script waits on a visited page for the guard before it goes back anyway (the
#: test then fails on its counts instead of waiting out the whole login timeout).
GUARD_PATIENCE_MS = 10_000
#: How long a page script may take to answer before the page is looked at again.
SCRIPT_PATIENCE_MS = 5_000
#: How soon a page with nothing to act on yet is looked at again. Load reports alone are not
#: enough: the login page opened while the popup page was still loading (left on its refusal)
#: can end with a report for the popup page and none of its own (seen in CI 2026-12-03; Qt's
#: load signals are known to be unreliable in such races, QTBUG-87089), so the page is also
#: looked at every LOOK_AGAIN_MS until the form is filled and the consent given.
LOOK_AGAIN_MS = 500


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
    from tdgui.qt.gui_gc import GuiThreadCollector
    from tdgui.qt.login.window import LoginWindow

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    GuiThreadCollector(app)
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
        #: "visit" (go to hooks.visit first), "visiting" (wait for the guard there), "driving"
        #: (fill the form, then press the consent button, each once, when the page has it)
        self.step = "visit" if hooks.visit else "driving"
        self.filled = self.consented = not hooks.autofill
        #: a page script is out and has not answered: another load report does not send a second
        self.script_out = False
        self.scripts_sent = 0
        self.last_did: object = None
        self.look_again_timer = QTimer(singleShot=True, interval=LOOK_AGAIN_MS)
        self.look_again_timer.timeout.connect(self.look_again)
        #: from the visit's navigation, restarted by each load of the visited page
        self.guard_timer = QTimer(singleShot=True, interval=GUARD_PATIENCE_MS)
        self.guard_timer.timeout.connect(self.guard_silent)
        self.shot_taken = not hooks.screenshot
        window.page_loaded.connect(self.on_loaded)
        window.guarded.connect(self.on_guarded)
        if self.step == "driving" and self.shot_taken:
            self.look_again_timer.start()  # should the first page's load never be reported

    def _go(self, step: str) -> None:
        # Logged, so a login test that times out shows the step the script waited in.
        log.info("test hooks: %s -> %s", self.step, step)
        self.step = step

    def on_loaded(self, url: str) -> None:
        log.info("test hooks: loaded %s in step %s", url, self.step)
        if self.step == "visiting":
            # The visited page itself (e.g. the popup page): the guard acts on it.
            self.guard_timer.start()
            return
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
        window = self.window
        if window.result is not None:
            return
        if self.step == "visit" and self.hooks.visit:
            self._go("visiting")
            window.navigate(self.hooks.visit)
            self.guard_timer.start()  # should its load never be reported
        elif self.step == "driving" and not (self.filled and self.consented):
            if self.script_out:
                return  # looked at again once the script out has answered (look_again_timer)
            consent = "null" if self.consented else json.dumps(self.hooks.consent)
            script = DRIVE_SANDBOX_PAGE % ("false" if self.filled else "true", consent)
            self.script_out = True
            self.scripts_sent += 1
            window.run_sandbox_script(script, self.on_driven)
            sent = self.scripts_sent
            QTimer.singleShot(SCRIPT_PATIENCE_MS, lambda: self.script_silent(sent))

    def on_driven(self, did: object) -> None:
        if did != self.last_did:  # not every look again at a page with nothing on it yet
            log.info("test hooks: the page script did %r", did)
        self.last_did = did
        self.script_out = False
        if did == "form":
            self.filled = True
        elif did == "consent":
            self.consented = True
        if not (self.filled and self.consented):
            self.look_again_timer.start()  # one pending look at a time

    def look_again(self) -> None:
        if not self.script_out:
            self.advance()

    def script_silent(self, sent: int) -> None:
        # A page that went away under the script may never answer it: look at the page again.
        if self.script_out and sent == self.scripts_sent:
            log.warning("test hooks: the page script did not answer; looking at the page again")
            self.script_out = False
            self.advance()

    def guard_silent(self) -> None:
        if self.step == "visiting" and self.window.result is None:
            log.warning("test hooks: the guard did not act on the visited page; back to the login page")
            self.on_guarded()

    def on_guarded(self) -> None:
        # The guard stopped the visit (a blocked navigation or a refused popup): back to the
        # login page, then on as without a visit.
        if self.hooks.continue_when_blocked:
            if self.window.continue_button.isVisible():
                self._go("idle")
                self.window.continue_button.click()
            return
        if self.step == "visiting":
            self._go("driving")
            QTimer.singleShot(0, lambda: self.window.navigate(self.window.spec.url))
            self.look_again_timer.start()  # in case that load is never reported either

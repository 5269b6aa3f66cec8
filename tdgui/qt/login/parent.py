"""The app's side of a login: prepare it, run the web view in `tdgui --login-child`, exchange the code.

The parent prepares the login (begin_login: keyring, state, PKCE verifier), starts the child,
writes the LoginSpec (no secret, no verifier) to its stdin and reads one ChildResult from its
stdout (tdgui.qt.login.protocol). A caught callback URL comes back as it was caught; the state
check, the code exchange and the store write happen here. When the child exits, all of
Chromium's memory goes with it; this module never imports Qt WebEngine.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices

from tdgui.core import flow
from tdgui.core.login_outcome import (
    CANCELLED_MESSAGE,
    CLOSED_MESSAGE,
    DEFAULT_LOGIN_TIMEOUT,
    LoginOutcome,
    LoginResult,
    classify_error,
    success_message,
    timeout_message,
)
from tdgui.core.logs import SECRETS
from tdgui.core.ops import InProcessOps, TokenOps
from tdgui.core.service import TokenService
from tdgui.core.tokens import TokenTimes
from tdgui.qt.login.browser_wait import BrowserWaitWindow
from tdgui.qt.login.device import prune_device_dir
from tdgui.qt.login.hooks import ENV_VAR as HOOKS_ENV_VAR
from tdgui.qt.login.hooks import TestHooks
from tdgui.qt.login.prepare import Prepared, prepare
from tdgui.qt.login.protocol import ChildResult, Command, ProtocolError, ResultKind
from tdgui.qt.worker import run_in_background

log = logging.getLogger(__name__)

#: (Qt WebEngine, Chromium) versions as the last login child reported them (About dialog).
ENGINE_VERSIONS: tuple[str, str] | None = None
#: The child's own timer ends the login; the parent kills a child that overran it by this much.
WATCHDOG_GRACE = 15.0
#: How long a child asked to stop may take before it is killed.
STOP_GRACE_MS = 3_000
#: At most this much of the child's stderr is kept for the log.
_STDERR_LIMIT = 64 * 1024


def child_command() -> list[str]:
    """The login child's command line: this same program (or bundle) with --login-child."""
    if getattr(sys, "frozen", False):  # PyInstaller: the executable is tdgui itself
        return [sys.executable, "--login-child"]
    return [sys.executable, "-m", "tdgui", "--login-child"]


class LoginProcess(QObject):
    """One login for one account in a child process; emits `finished(LoginResult)` exactly once."""

    finished = Signal(object)
    #: the child process is running (its pid)
    child_started = Signal(int)
    #: the child process has exited (for whatever reason)
    child_exited = Signal()
    _open_in_browser = Signal(str)

    def __init__(
        self,
        service: TokenService,
        name: str,
        *,
        ops: TokenOps | None = None,
        timeout: float = DEFAULT_LOGIN_TIMEOUT,
        test_hooks: TestHooks | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        #: where begin/finish run: the app passes its ops-child runner (tdgui.core.ops)
        self.ops: TokenOps = ops or InProcessOps(service)
        self.name = name
        self.timeout = timeout
        #: TEST ONLY: scripts the sandbox's pages in the child (tdgui.qt.login.hooks)
        self.test_hooks = test_hooks
        self.result: LoginResult | None = None
        self.process: QProcess | None = None
        self.pid: int | None = None
        #: the child's one result line, once it came
        self.child_result: ChildResult | None = None
        self.browser_window: BrowserWaitWindow | None = None
        self._pending: flow.PendingLogin | None = None
        self._device_dir: str | None = None
        self._spec_line = b""
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._exchanging = False
        self._browser_cancel: threading.Event | None = None
        self._started = time.monotonic()
        self._watchdog = QTimer(self)
        self._watchdog.setSingleShot(True)
        self._watchdog.timeout.connect(self._on_watchdog)
        self._open_in_browser.connect(self._open_url)

    # -- state ------------------------------------------------------------------------------
    def is_running(self) -> bool:
        """Is the child process (still) running?"""
        proc = self.process
        return proc is not None and proc.state() != QProcess.ProcessState.NotRunning

    @property
    def child_outcome(self) -> str | None:
        """How the child ended: "callback", "browser" or a LoginOutcome value; None before."""
        result = self.child_result
        if result is None:
            return None
        if result.kind is ResultKind.ENDED and result.outcome is not None:
            return result.outcome.value
        return result.kind.value

    # -- start ------------------------------------------------------------------------------
    def start(self) -> None:
        """Prepare the login (keyring: off the GUI thread), then start the child with its spec."""
        self._started = time.monotonic()
        self._watchdog.start(max(1, int((self.timeout + WATCHDOG_GRACE) * 1000)))
        service, ops, name = self.service, self.ops, self.name
        run_in_background(
            lambda: prepare(service, ops, name), self._on_prepared, self._on_error, context=self
        )

    @Slot(object)
    def _on_prepared(self, prepared: Prepared) -> None:
        if self.result is not None:
            return
        self._pending = prepared.pending
        self._device_dir = prepared.device_dir
        remaining = max(1.0, self.timeout - (time.monotonic() - self._started))
        self._spec_line = (prepared.spec(self.name, remaining).to_json() + "\n").encode("utf-8")
        proc = QProcess(self)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        proc.setProcessEnvironment(self._child_environment())
        proc.started.connect(self._on_child_started)
        proc.readyReadStandardOutput.connect(self._on_stdout)
        proc.readyReadStandardError.connect(self._on_stderr)
        proc.finished.connect(self._on_child_finished)
        proc.errorOccurred.connect(self._on_child_error)
        self.process = proc
        program, *arguments = child_command()
        log.info("starting the login window process for %s", self.name)
        proc.start(program, arguments)

    def _child_environment(self) -> QProcessEnvironment:
        """This process's environment; test hooks only when asked for, never inherited."""
        env = QProcessEnvironment.systemEnvironment()
        env.remove(HOOKS_ENV_VAR)
        if self.test_hooks is not None:
            env.insert(HOOKS_ENV_VAR, self.test_hooks.to_json())
        return env

    @Slot()
    def _on_child_started(self) -> None:
        proc = self.process
        if proc is None:
            return
        self.pid = int(proc.processId())
        proc.write(self._spec_line)
        self._spec_line = b""
        if self.result is not None:  # cancelled while it started
            self._stop_child()
        self.child_started.emit(self.pid)

    # -- the child's output -----------------------------------------------------------------
    @Slot()
    def _on_stdout(self) -> None:
        proc = self.process
        if proc is None:
            return
        self._stdout += bytes(proc.readAllStandardOutput().data())
        while b"\n" in self._stdout and self.child_result is None:
            line, _, rest = bytes(self._stdout).partition(b"\n")
            self._stdout = bytearray(rest)
            self._on_child_line(line)

    @Slot()
    def _on_stderr(self) -> None:
        proc = self.process
        if proc is None:
            return
        data = bytes(proc.readAllStandardError().data())
        room = _STDERR_LIMIT - len(self._stderr)
        if room > 0:
            self._stderr += data[:room]

    def _on_child_line(self, line: bytes) -> None:
        try:
            result = ChildResult.from_json(line)
        except ProtocolError as exc:
            if b'"v"' in line:  # a protocol line, but not ours: say so instead of waiting
                self.child_result = ChildResult(ResultKind.ENDED, LoginOutcome.FAILED, str(exc))
                self._finish(
                    LoginOutcome.FAILED, f"The login window sent a result this tdgui cannot read: {exc}."
                )
            else:
                log.debug("ignored a line from the login child that is not a result (%d bytes)", len(line))
            return
        self.child_result = result
        if result.engine is not None:
            global ENGINE_VERSIONS
            ENGINE_VERSIONS = result.engine
        if result.blocked or result.popups_refused:
            log.info(
                "the login view blocked %d navigation(s) (%s) and refused %d popup(s)",
                len(result.blocked),
                ", ".join(result.blocked),
                result.popups_refused,
            )
        if result.kind is ResultKind.CALLBACK and result.url:
            SECRETS.add(result.url)
            self._on_callback(result.url)
        elif result.kind is ResultKind.BROWSER:
            self.use_system_browser()
        elif result.outcome is LoginOutcome.TIMEOUT:
            # The child had what was left of the timeout; the user set (and is told) all of it.
            self._finish(LoginOutcome.TIMEOUT, timeout_message(self.timeout))
        elif result.outcome is not None:
            self._finish(result.outcome, SECRETS.mask(result.message) or "The login did not complete.")

    def _on_callback(self, url: str) -> None:
        if self.result is not None or self._pending is None:
            return
        self._exchanging = True
        self._watchdog.stop()
        ops, pending = self.ops, self._pending
        run_in_background(
            lambda: ops.finish_login(pending, url), self._on_tokens, self._on_error, context=self
        )

    @Slot(int, QProcess.ExitStatus)
    def _on_child_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._on_stdout()
        self._log_stderr()
        crashed = status == QProcess.ExitStatus.CrashExit
        log.info("the login window process ended (%s)", "crashed" if crashed else f"exit code {code}")
        if self._device_dir is not None:
            prune_device_dir(Path(self._device_dir))  # cookies only stay (remember this device)
        if self.child_result is None and self.result is None:
            how = "crashed" if crashed else f"exited with code {code}"
            self._finish(
                LoginOutcome.FAILED,
                f"The login window stopped unexpectedly ({how}) before the login finished. "
                "Nothing was changed; see the log for details.",
            )
        self.child_exited.emit()

    @Slot(QProcess.ProcessError)
    def _on_child_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart:
            return  # a crash also ends in finished()
        proc = self.process
        reason = proc.errorString() if proc is not None else "unknown error"
        log.error("could not start the login window process: %s", reason)
        self._finish(LoginOutcome.FAILED, f"Could not start the login window: {reason}.")
        self.child_exited.emit()

    def _log_stderr(self) -> None:
        if not self._stderr:
            return
        text = SECRETS.mask(bytes(self._stderr).decode("utf-8", "replace"))
        self._stderr.clear()
        for line in text.splitlines():
            if line.strip():
                log.debug("login child: %s", line)

    # -- results ----------------------------------------------------------------------------
    @Slot(object)
    def _on_tokens(self, times: TokenTimes) -> None:
        self._exchanging = False  # the GUI keeps when the tokens expire, never the tokens
        self._finish(LoginOutcome.SUCCESS, success_message(self.name, times), times)

    @Slot(object)
    def _on_error(self, error: BaseException) -> None:
        self._exchanging = False
        self._finish(*classify_error(error))

    @Slot()
    def _on_watchdog(self) -> None:
        self._finish(LoginOutcome.TIMEOUT, timeout_message(self.timeout))

    def _finish(self, outcome: LoginOutcome, message: str, times: TokenTimes | None = None) -> None:
        if self.result is not None:
            return
        self._watchdog.stop()
        if self._browser_cancel is not None:
            self._browser_cancel.set()
        if self.browser_window is not None:
            self.browser_window.cancel_requested.disconnect(self.cancel)
            self.browser_window.close()
            self.browser_window.deleteLater()
            self.browser_window = None
        self.result = LoginResult(self.name, outcome, message, time.monotonic() - self._started, times)
        log.info("login to %s ended: %s", self.name, outcome.value)
        self._stop_child()
        self.finished.emit(self.result)

    # -- control ----------------------------------------------------------------------------
    def send_command(self, command: Command | str) -> bool:
        """Send a Command to the running child; False if it is not running."""
        proc = self.process
        if not self.is_running() or proc is None or self.pid is None:
            return False
        command = command if isinstance(command, Command) else Command(command)
        proc.write(command.to_json().encode("utf-8") + b"\n")
        return True

    def bring_to_front(self) -> None:
        if self.browser_window is not None:
            self.browser_window.show()
            self.browser_window.raise_()
            self.browser_window.activateWindow()
        else:
            self.send_command(Command.RAISE)

    def show(self) -> None:
        self.bring_to_front()

    def cancel(self) -> None:
        self._finish(LoginOutcome.CANCELLED, CANCELLED_MESSAGE)

    def close(self) -> None:
        """The login is abandoned (window closed, app quitting): CLOSED unless already decided."""
        if not self._exchanging or self._browser_cancel is not None:
            self._finish(LoginOutcome.CLOSED, CLOSED_MESSAGE)
        self._stop_child()

    def shutdown(self, wait_ms: int = STOP_GRACE_MS) -> None:
        """Close and wait (briefly, blocking) for the child to end; killed if it does not."""
        self.close()
        proc = self.process
        if proc is not None and self.is_running() and not proc.waitForFinished(wait_ms):
            proc.kill()
            proc.waitForFinished(1_000)

    def _stop_child(self) -> None:
        """Ask the child to end (it tears its engine down and exits); kill it if it lingers."""
        proc = self.process
        if proc is None or not self.is_running():
            return
        if self.pid is not None:
            proc.write(Command.CANCEL.to_json().encode("utf-8") + b"\n")
            proc.closeWriteChannel()
        QTimer.singleShot(STOP_GRACE_MS, self, self._kill_child)

    @Slot()
    def _kill_child(self) -> None:
        proc = self.process
        if proc is not None and self.is_running():
            log.warning("the login window process did not exit; killing it")
            proc.kill()

    # -- system browser ---------------------------------------------------------------------
    @Slot()
    def use_system_browser(self) -> None:
        """The system-browser login (loopback redirect, RFC 8252 §7.3), run here in the parent."""
        if self.result is not None or self._exchanging:
            return
        self._watchdog.stop()
        self._stop_child()
        cancel = threading.Event()
        self._browser_cancel = cancel
        remaining = max(1.0, self.timeout - (time.monotonic() - self._started))
        # In process, the platform's URL handler opens the browser; a child ops process its own.
        ops, name, opener = self.ops, self.name, self._open_in_browser.emit
        self._exchanging = True
        window = BrowserWaitWindow(name)
        window.cancel_requested.connect(self.cancel)
        self.browser_window = window
        window.show()
        run_in_background(
            lambda: ops.browser_login(name, timeout=remaining, cancel=cancel, open_browser=opener),
            self._on_tokens,
            self._on_error,
            context=self,
        )

    @Slot(str)
    def _open_url(self, url: str) -> None:
        opened = QDesktopServices.openUrl(QUrl(url))
        if self.browser_window is not None:
            self.browser_window.show_url(url, opened=opened)  # the link to copy (defect 10)

"""`tdgui gui --self-test`: a full login and refresh through the real windows against a private sandbox."""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The whole self-test gives up after this long.
OVERALL_TIMEOUT = 60.0
#: The login child fills the sandbox's form (demo/demo) and allows; off, the login never ends.
AUTOFILL = True


class StepFailed(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@contextmanager
def _private_environment() -> Iterator[Path]:
    """A throwaway TD_CONFIG_DIR/TD_LOG_DIR set before anything reads the config; restored afterwards."""
    saved = {key: os.environ.get(key) for key in ("TD_CONFIG_DIR", "TD_LOG_DIR", "TD_SANDBOX_URL")}
    with tempfile.TemporaryDirectory(prefix="tdgui-selftest-") as tmp:
        os.environ["TD_CONFIG_DIR"] = str(Path(tmp) / "config")
        os.environ["TD_LOG_DIR"] = str(Path(tmp) / "logs")
        os.environ.pop("TD_SANDBOX_URL", None)
        try:
            yield Path(tmp) / "config"
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


#: A dark palette for the second screenshot (Material-like greys; text contrast > 12:1).
DARK_COLOURS = {
    "Window": "#202124",
    "WindowText": "#e8eaed",
    "Base": "#17181a",
    "AlternateBase": "#2a2b2e",
    "Text": "#e8eaed",
    "Button": "#303134",
    "ButtonText": "#e8eaed",
    "ToolTipBase": "#3c4043",
    "ToolTipText": "#e8eaed",
    "Highlight": "#8ab4f8",
    "HighlightedText": "#202124",
    "Link": "#8ab4f8",
    "PlaceholderText": "#9aa0a6",
    "Mid": "#5f6368",
}


@contextmanager
def dark_palette(app: Any) -> Iterator[None]:
    """The app in a dark palette, as a dark desktop gives it, then back to what it was.

    The colour-scheme hint (Qt >= 6.8) is what a platform theme follows; the explicit palette is
    what makes it dark where the platform has no theme (offscreen, bare Xvfb)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QPalette

    saved = app.palette()
    hints = app.styleHints()
    scheme = hints.colorScheme() if hasattr(hints, "colorScheme") else None
    palette = QPalette(saved)
    for role, colour in DARK_COLOURS.items():
        palette.setColor(getattr(QPalette.ColorRole, role), QColor(colour))
    if hasattr(hints, "setColorScheme"):
        hints.setColorScheme(Qt.ColorScheme.Dark)
    app.setPalette(palette)
    try:
        yield
    finally:
        app.setPalette(saved)
        if scheme is not None:
            hints.setColorScheme(scheme)


def run_self_test(screenshot_dir: Path | None) -> int:
    """Log in to a private sandbox through the real main window and login view, refresh, report.

    The login takes the app's real path: main window -> LoginProcess -> the login child process
    (web view; it fills the sandbox form and saves login.png) -> code exchange in this process.
    """
    from tdgui.qt.app import prepare_environment

    prepare_environment()
    started = time.monotonic()
    try:
        with _private_environment() as config_dir:
            summary = _run(config_dir, screenshot_dir, started + OVERALL_TIMEOUT)
    except StepFailed as exc:
        print(f"self-test failed at {exc.step}: {exc.reason}", flush=True)
        return 1
    except Exception as exc:  # the summary line must still name what broke
        from tdgui.core.logs import SECRETS

        print(f"self-test failed at setup: {SECRETS.mask(repr(exc))}", flush=True)
        return 1
    print(f"self-test passed: {summary}", flush=True)
    return 0


def _run(config_dir: Path, screenshot_dir: Path | None, deadline: float) -> str:
    from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QTimer, SignalInstance
    from PySide6.QtWidgets import QApplication, QWidget

    from tdgui.core.config import Settings, sandbox_account
    from tdgui.core.environment import Environment
    from tdgui.core.login_outcome import LoginResult
    from tdgui.core.root import build_core
    from tdgui.qt.app import build_shell
    from tdgui.qt.gui_gc import GuiThreadCollector
    from tdgui.qt.shell import Shell
    from tdgui.qt.worker import wait_for_idle
    from tdgui.sandbox import SandboxServer, sandbox_state_dir

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    GuiThreadCollector(app)

    class Waiter:
        """Connects before the action, then runs an event loop until the signal or the deadline."""

        def __init__(self, signal: SignalInstance, step: str, accept: Callable[..., bool] | None = None):
            self.signal, self.step, self.accept = signal, step, accept
            self.args: tuple[Any, ...] | None = None
            self.loop = QEventLoop()
            signal.connect(self._on)

        def _on(self, *args: Any) -> None:
            if self.args is None and (self.accept is None or self.accept(*args)):
                self.args = args
                self.loop.quit()

        def wait(self) -> tuple[Any, ...]:
            remaining = deadline - time.monotonic()
            if self.args is None and remaining > 0:
                QTimer.singleShot(int(remaining * 1000), self.loop.quit)
                self.loop.exec()
            self.signal.disconnect(self._on)
            if self.args is None:
                raise StepFailed(self.step, f"timed out after {OVERALL_TIMEOUT:g} s")
            return self.args

    def pause(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def shoot(widget: QWidget, name: str) -> None:
        if screenshot_dir is None:
            return
        screenshot_dir.mkdir(parents=True, exist_ok=True)
        if not widget.grab().save(str(screenshot_dir / name)):
            raise StepFailed("screenshot", f"could not write {screenshot_dir / name}")

    step = "sandbox"
    try:
        server = SandboxServer(sandbox_state_dir(config_dir), port=0).start()
    except Exception as exc:
        raise StepFailed(step, str(exc)) from None
    shell: Shell | None = None
    try:
        # The app's own wiring (the root `tdgui` uses: token operations in child processes), on a
        # private config dir whose file store goes with it (no keyring needed for the self-test).
        core = build_core(Environment.from_os())
        if core.config.directory != config_dir:
            raise StepFailed("setup", "the private config directory was not taken")
        account = dataclasses.replace(
            sandbox_account("selftest", "schwab", sandbox_url=server.base_url), store="file"
        )
        core.accounts.add(account)
        service = core.service
        shell = build_shell(core, Settings(), use_tray=False, open_add_on_first_run=False)
        controller, window = shell.controller, shell.window
        shell.start(show=True)
        waiter = Waiter(controller.statuses_changed, "main window")
        controller.reload()
        waiter.wait()
        if window.selected_name() != "selftest":
            raise StepFailed("main window", "the sandbox account is not listed")

        login_started = time.monotonic()
        finished = Waiter(controller.login_finished, "login")
        login_png = screenshot_dir / "login.png" if screenshot_dir is not None else None
        if login_png is not None:
            screenshot_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            login_png.unlink(missing_ok=True)
        login = controller.open_login("selftest", autofill_sandbox=AUTOFILL, screenshot=login_png)
        result = finished.wait()[0]
        assert isinstance(result, LoginResult)
        if not result.ok:
            raise StepFailed("login", result.message)
        login_seconds = time.monotonic() - login_started
        if login.is_running():
            Waiter(login.child_exited, "login window exit").wait()
        if login_png is not None and not login_png.is_file():
            raise StepFailed("screenshot", f"the login window did not write {login_png}")

        view = window.status_view

        def shows_tokens(*_: Any) -> bool:
            status = view.status
            return status is not None and status.access_expires_at is not None

        if not shows_tokens():
            Waiter(controller.statuses_changed, "status", shows_tokens).wait()
        first = view.status
        assert first is not None and first.access_expires_at is not None
        tokens_before = service.read_tokens(service.account("selftest"))

        refresh_started = time.monotonic()
        refreshed = Waiter(controller.refresh_finished, "refresh")
        view.refresh_button.click()
        if view.refresh_button.isEnabled():
            raise StepFailed("refresh", "the Refresh button stayed enabled while refreshing")
        _, ok, message = refreshed.wait()
        if not ok:
            raise StepFailed("refresh", message)
        refresh_seconds = time.monotonic() - refresh_started

        def moved(*_: Any) -> bool:
            status = view.status
            return (
                status is not None
                and status.access_expires_at is not None
                and status.access_expires_at > (first.access_expires_at or 0)
            )

        if not moved():
            Waiter(controller.statuses_changed, "status after refresh", moved).wait()
        tokens_after = service.read_tokens(service.account("selftest"))
        if tokens_before is None or tokens_after is None:
            raise StepFailed("refresh", "no tokens stored")
        if tokens_after.access_token == tokens_before.access_token:
            raise StepFailed("refresh", "the access token did not change")
        if not view.refresh_button.isEnabled():
            raise StepFailed("refresh", "the Refresh button was not enabled again")
        pause(100)
        shoot(window, "status.png")
        if screenshot_dir is not None:
            with dark_palette(app):
                pause(100)
                shoot(window, "status-dark.png")
        return f"login {login_seconds:.1f} s, refresh {refresh_seconds:.2f} s"
    finally:
        if shell is not None:
            shell.shutdown()
            shell.window.deleteLater()
        wait_for_idle(10_000)
        server.stop()
        app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)

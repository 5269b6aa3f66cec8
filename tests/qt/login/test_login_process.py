"""The login in its own process: real child (`python -m tdgui --login-child`), real sandbox, real exchange."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from tdgui.core.config import sandbox_account
from tdgui.core.login_outcome import LoginOutcome
from tdgui.core.service import TokenService
from tdgui.qt.login import parent as login_parent
from tdgui.qt.login.hooks import ENV_VAR as HOOKS_ENV_VAR
from tdgui.qt.login.hooks import TestHooks
from tdgui.qt.login.parent import LoginProcess
from tdgui.sandbox import SandboxServer

from .helpers import AUTOFILL, FakeBrowser, free_port, start_login, wait_child_gone, wait_result


def add_callback_account(service: TokenService, sandbox: SandboxServer) -> str:
    """A sandbox account whose callback (the loopback listener's port) is a free port, not 8182."""
    account = replace(
        sandbox_account("demo", sandbox_url=sandbox.base_url),
        callback_url=f"https://127.0.0.1:{free_port()}/",
    )
    service.config.add_account(account.validate())
    return account.name


@pytest.mark.parametrize("flavor", ["schwab", "tdameritrade"])
def test_full_login_through_the_child(
    qtbot: QtBot,
    service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    flavor: str,
) -> None:
    name = add_sandbox_account("demo", flavor)
    caught: list[str] = []
    real_finish = service.finish_login

    def finish_login(pending: object, url: str) -> object:
        caught.append(url)
        return real_finish(pending, url)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "finish_login", finish_login)
    caplog.set_level(logging.DEBUG, logger="tdgui")
    shot = tmp_path / "shots" / "login.png"
    login = start_login(qtbot, service, name, hooks=replace(AUTOFILL, screenshot=str(shot)))
    result = wait_result(qtbot, login)
    assert result.outcome is LoginOutcome.SUCCESS, result.message
    assert "Logged in" in result.message
    tokens = service.read_tokens(service.account(name))
    # The GUI gets when the tokens expire, never the tokens themselves.
    assert tokens is not None and result.times == tokens.times()
    assert not hasattr(result, "tokens")
    assert sandbox.stats()["successful_code_exchanges"] == 1
    assert shot.stat().st_size > 2_000
    # The web engine went with the child.
    wait_child_gone(qtbot, login)
    assert login.child_outcome == "callback"
    # The callback URL (the code) crossed the pipe exactly as caught and was never logged.
    assert len(caught) == 1 and "code=" in caught[0]
    code = caught[0].split("code=", 1)[1].split("&", 1)[0]
    assert code and code not in caplog.text


def test_cancel_stops_the_child(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    login = start_login(qtbot, service, name)
    with qtbot.waitSignal(login.finished, timeout=5_000) as blocker:
        login.cancel()
    assert blocker.args[0].outcome is LoginOutcome.CANCELLED
    assert "cancelled" in blocker.args[0].message
    wait_child_gone(qtbot, login)
    assert service.read_tokens(service.account(name)) is None


def test_child_window_closed(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    login = start_login(qtbot, service, name)
    assert login.send_command("close")  # as if the user closed the login window
    result = wait_result(qtbot, login)
    assert result.outcome is LoginOutcome.CLOSED, result.message
    assert login.child_outcome == "closed"
    wait_child_gone(qtbot, login)


def test_child_killed_is_a_failure(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    login = start_login(qtbot, service, name)
    assert login.process is not None
    login.process.kill()
    result = wait_result(qtbot, login)
    assert result.outcome is LoginOutcome.FAILED
    assert "stopped unexpectedly (crashed)" in result.message


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("import os, sys; sys.stdin.readline(); os.abort()", "crashed"),
        ("import sys; sys.stdin.readline(); print('not json'); sys.exit(0)", "exited with code 0"),
        ("import sys; sys.exit(7)", "exited with code 7"),
    ],
)
def test_child_crash_or_garbage(
    qtbot: QtBot,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    script: str,
    expected: str,
) -> None:
    name = add_sandbox_account()
    monkeypatch.setattr(login_parent, "child_command", lambda: [sys.executable, "-c", script])
    login = LoginProcess(service, name)
    with qtbot.waitSignal(login.finished, timeout=15_000) as blocker:
        login.start()
    result = blocker.args[0]
    assert result.outcome is LoginOutcome.FAILED
    assert expected in result.message and "Nothing was changed" in result.message


def test_child_cannot_start(
    qtbot: QtBot,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    name = add_sandbox_account()
    monkeypatch.setattr(login_parent, "child_command", lambda: [str(tmp_path / "no-such-program")])
    login = LoginProcess(service, name)
    with qtbot.waitSignal(login.finished, timeout=15_000) as blocker:
        login.start()
    assert blocker.args[0].outcome is LoginOutcome.FAILED
    assert "Could not start the login window" in blocker.args[0].message


def test_denied_consent(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    login = start_login(qtbot, service, name, hooks=TestHooks(autofill=True, consent="deny"))
    result = wait_result(qtbot, login)
    assert result.outcome is LoginOutcome.DENIED, result.message
    assert "denied" in result.message
    assert service.read_tokens(service.account(name)) is None
    assert sandbox.stats()["code_exchanges"] == 0
    wait_child_gone(qtbot, login)


def test_child_timeout(
    qtbot: QtBot,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The parent's watchdog runs from the start, the child's 2 s from its window: on a loaded
    # machine the child's start-up alone may take longer than the watchdog's usual grace.
    monkeypatch.setattr(login_parent, "WATCHDOG_GRACE", 120.0)
    name = add_sandbox_account()
    login = start_login(qtbot, service, name, timeout=2.0)
    result = wait_result(qtbot, login)
    assert result.outcome is LoginOutcome.TIMEOUT, result.message
    assert "within 2 s" in result.message
    assert login.child_outcome == "timeout"


def test_sandbox_stopped_is_a_network_error(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    sandbox.stop()
    login = start_login(qtbot, service, name)
    result = wait_result(qtbot, login)
    assert result.outcome is LoginOutcome.NETWORK, result.message
    assert "Could not load" in result.message


def test_log_in_with_system_browser(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_callback_account(service, sandbox)
    browser = FakeBrowser(str(sandbox.certs.ca_file))
    QDesktopServices.setUrlHandler("https", browser, "open")  # type: ignore[arg-type]
    try:
        login = start_login(qtbot, service, name)
        assert login.send_command("browser")  # the "Log in with my browser instead" button
        result = wait_result(qtbot, login)
        assert result.outcome is LoginOutcome.SUCCESS, result.message
        assert login.child_outcome == "browser"
        # The one-time start URL on the loopback listener, not the authorization URL (its
        # `state` would be on the browser's command line: issue 11 #10, row 27).
        callback = service.account(name).callback_url.rstrip("/")
        assert len(browser.opened) == 1 and browser.opened[0].startswith(callback + "/tdgui-login/")
        assert "state" not in browser.opened[0]
        assert service.read_tokens(service.account(name)) is not None
        assert login.browser_window is None
        wait_child_gone(qtbot, login)
    finally:
        QDesktopServices.unsetUrlHandler("https")
        for thread in browser.threads:
            thread.join(10)


def test_browser_login_cancelled(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_callback_account(service, sandbox)
    opened: list[str] = []

    class Nowhere(QObject):
        """A browser that never logs in."""

        @Slot(QUrl)
        def open(self, url: QUrl) -> None:
            opened.append(url.toString())

    browser = Nowhere()
    QDesktopServices.setUrlHandler("https", browser, "open")  # type: ignore[arg-type]
    try:
        login = start_login(qtbot, service, name)
        login.send_command("browser")
        qtbot.waitUntil(lambda: login.browser_window is not None and bool(opened), timeout=15_000)
        assert login.browser_window is not None
        with qtbot.waitSignal(login.finished, timeout=5_000) as blocker:
            login.browser_window.cancel_button.click()
        assert blocker.args[0].outcome is LoginOutcome.CANCELLED
        assert service.read_tokens(service.account(name)) is None
    finally:
        QDesktopServices.unsetUrlHandler("https")


PARENT_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication
    from tdgui.core.config import Config, Settings, sandbox_account
    from tdgui.core.service import TokenService
    from tdgui.core.stores.memory import MemoryStore
    from tdgui.qt.app import prepare_environment
    from tdgui.qt.shell import Shell

    prepare_environment()
    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    config_dir = Path(os.environ["TD_CONFIG_DIR"])
    service = TokenService(Config(config_dir), store_override=MemoryStore())
    service.config.add_account(sandbox_account("p", "schwab", sandbox_url=sys.argv[1]))
    shell = Shell(service, Settings(), use_tray=False, open_add_on_first_run=False, quit_app=lambda: None)
    shell.controller.login_autofill_sandbox = True
    shell.start(show=True)
    results = []
    loop = QEventLoop()
    shell.controller.login_finished.connect(lambda r: (results.append(r), loop.quit()))
    QTimer.singleShot(40_000, loop.quit)
    shell.open_login("p")
    loop.exec()
    login = shell.controller.login_windows["p"]
    if login.is_running():
        wait = QEventLoop()
        login.child_exited.connect(wait.quit)
        QTimer.singleShot(10_000, wait.quit)
        wait.exec()
    engine = sorted(m for m in sys.modules if "WebEngine" in m)
    print(json.dumps({
        "ok": bool(results) and results[0].ok,
        "message": results[0].message if results else "no result",
        "child_running": login.is_running(),
        "child_pid": login.pid,
        "webengine_modules": engine,
    }))
    shell.shutdown()
    """
)


def test_app_process_never_loads_the_web_engine(
    sandbox: SandboxServer, isolated_config: Path, tmp_path: Path
) -> None:
    """The app (main window + a completed login) runs in a fresh process: it must not load Chromium."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT)
    env = dict(os.environ, TD_CONFIG_DIR=str(isolated_config))
    done = subprocess.run(
        [sys.executable, str(script), sandbox.base_url], capture_output=True, text=True, timeout=90, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], report["message"]
    assert report["webengine_modules"] == []
    assert not report["child_running"]
    with pytest.raises(ProcessLookupError):
        os.kill(int(report["child_pid"]), 0)
    assert sandbox.stats()["successful_code_exchanges"] == 1


def test_child_of_another_protocol_version(
    qtbot: QtBot,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A child from another install answers in protocol v99: a clear failure, not a hang or a guess."""
    name = add_sandbox_account()
    script = (
        "import sys; sys.stdin.readline(); "
        'print(\'{"v":99,"kind":"callback","url":"https://127.0.0.1:8182/?code=x&state=y"}\', flush=True); '
        "sys.stdin.read()"
    )
    monkeypatch.setattr(login_parent, "child_command", lambda: [sys.executable, "-c", script])
    login = LoginProcess(service, name)
    with qtbot.waitSignal(login.finished, timeout=15_000) as blocker:
        login.start()
    result = blocker.args[0]
    assert result.outcome is LoginOutcome.FAILED
    assert "version 99" in result.message and "speaks 2" in result.message
    wait_child_gone(qtbot, login)


def test_test_hooks_never_inherited(
    qtbot: QtBot,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stray TDGUI_LOGIN_TEST_HOOKS in the app's environment does not reach a production child."""
    name = add_sandbox_account()
    monkeypatch.setenv(HOOKS_ENV_VAR, AUTOFILL.to_json())
    plain = LoginProcess(service, name)
    assert not plain._child_environment().contains(HOOKS_ENV_VAR)
    hooked = LoginProcess(service, name, test_hooks=TestHooks(consent="deny"))
    assert TestHooks.from_json(hooked._child_environment().value(HOOKS_ENV_VAR)) == TestHooks(consent="deny")
    # And end to end: with the inherited variable, nobody fills the form, so the login times out.
    login = start_login(qtbot, service, name, timeout=4.0)
    result = wait_result(qtbot, login, timeout=25_000)
    assert result.outcome is LoginOutcome.TIMEOUT, result.message


CHILD_IMPORTS = textwrap.dedent(
    """
    import json, sys
    from tdgui.cli import main
    code = main(["--login-child"])
    with open(sys.argv[1], "w") as out:
        json.dump(sorted(m for m in sys.modules if m.startswith("tdgui")), out)
    raise SystemExit(code)
    """
)


def test_child_imports_only_what_the_view_needs(
    qtbot: QtBot,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A whole login through the real child entry: no service, config, store or export module in it."""
    name = add_sandbox_account()
    modules_file = tmp_path / "modules.json"
    monkeypatch.setattr(
        login_parent, "child_command", lambda: [sys.executable, "-c", CHILD_IMPORTS, str(modules_file)]
    )
    login = start_login(qtbot, service, name, hooks=AUTOFILL)
    result = wait_result(qtbot, login)
    assert result.ok, result.message
    wait_child_gone(qtbot, login)
    modules = set(json.loads(modules_file.read_text()))
    assert {"tdgui.qt.login.child", "tdgui.qt.login.window", "tdgui.core.flow"} <= modules  # it ran
    forbidden = {"tdgui.core.service", "tdgui.core.config", "tdgui.core.export"}
    forbidden |= {"tdgui.qt.login.parent", "tdgui.qt.login.prepare"}
    assert not modules & forbidden
    assert not [m for m in modules if m.startswith("tdgui.core.stores")]

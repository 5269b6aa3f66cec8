"""Issue 14, defects 4 and 5: the sandbox demo picks a store that works, and survives an app restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tdgui.core.config import Settings
from tdgui.core.service import TokenService
from tdgui.qt import demo
from tdgui.qt.shell import Shell

from .login.helpers import LOGIN_TIMEOUT_MS


def start_shell(qtbot: QtBot, shell: Shell) -> Shell:
    qtbot.addWidget(shell.window)
    with qtbot.waitSignal(shell.controller.statuses_changed, timeout=10_000):
        shell.start()
    return shell


def try_sandbox_and_log_in(qtbot: QtBot, shell: Shell) -> None:
    shell.controller.login_autofill_sandbox = True  # the login child fills demo/demo and allows
    with qtbot.waitSignal(shell.controller.login_finished, timeout=LOGIN_TIMEOUT_MS) as blocker:
        shell.window.action_try_sandbox.trigger()  # the Help menu entry, there with accounts too
    assert blocker.args[0].ok, blocker.args[0].message


def test_demo_sandbox_restarts_with_the_app_and_refresh_works(qtbot: QtBot, service: TokenService) -> None:
    quits: list[int] = []
    first = start_shell(qtbot, Shell(service, Settings(), use_tray=False, quit_app=lambda: quits.append(1)))
    try_sandbox_and_log_in(qtbot, first)
    account = service.config.account(demo.DEMO_ACCOUNT)
    assert account.sandbox_url and demo.answers(account.sandbox_url)
    first.shutdown()  # the app quits: its in-process sandbox stops with it
    assert not demo.answers(account.sandbox_url)

    second = Shell(service, Settings(), use_tray=False, quit_app=lambda: quits.append(2))
    with qtbot.waitSignal(second.demo_restarted, timeout=30_000) as restarted:
        start_shell(qtbot, second)
    url = restarted.args[0]
    assert demo.answers(url)
    qtbot.waitUntil(lambda: service.config.account(demo.DEMO_ACCOUNT).sandbox_url == url, timeout=15_000)
    with qtbot.waitSignal(second.controller.refresh_finished, timeout=30_000) as refreshed:
        second.controller.refresh(demo.DEMO_ACCOUNT)
    name, ok, message = refreshed.args
    assert name == demo.DEMO_ACCOUNT and ok, message
    # "Try the sandbox" stays reachable now that an account exists (the welcome page is gone).
    assert second.window.stack.currentWidget() is second.window.status_view
    assert second.window.action_try_sandbox.isEnabled()
    second.shutdown()


def test_try_the_sandbox_without_a_keyring_uses_the_file_store(
    qtbot: QtBot, isolated_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Secret Service (a bare Xvfb, a server): the demo is not refused after the login."""
    from tdgui.core.environment import Environment
    from tdgui.core.root import build_core
    from tdgui.qt.app import build_shell

    # The token operations run in `tdgui --ops-child` processes: they find no session bus.
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    core = build_core(Environment.from_os())
    shell = start_shell(qtbot, build_shell(core, Settings(), use_tray=False, open_add_on_first_run=False))
    saved: list[tuple[bool, str]] = []
    shell.controller.account_saved.connect(lambda ok, message: saved.append((ok, message)))
    try_sandbox_and_log_in(qtbot, shell)
    assert saved and saved[0][0], saved
    assert "No system keyring" in saved[0][1] and "file" in saved[0][1]
    assert core.config.account(demo.DEMO_ACCOUNT).store == "file"
    shell.shutdown()

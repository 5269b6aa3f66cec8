"""Issue 14, defect 12: CLI changes reach the running window; the token rows fit the smallest window."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from PySide6.QtWidgets import QLabel, QProgressBar, QWidget
from pytestqt.qtbot import QtBot

from tdgui.core.config import Settings
from tdgui.core.service import TokenService
from tdgui.qt.shell import Shell


def shown_shell(qtbot: QtBot, service: TokenService) -> Shell:
    shell = Shell(service, Settings(), use_tray=False, open_add_on_first_run=False, quit_app=lambda: None)
    qtbot.addWidget(shell.window)
    with qtbot.waitSignal(shell.controller.statuses_changed, timeout=10_000):
        shell.start()
    qtbot.waitExposed(shell.window)
    return shell


def listed(shell: Shell) -> list[str]:
    accounts = shell.window.accounts
    return [accounts.item(row).text() for row in range(accounts.count())]


def cli(*args: str) -> None:
    argv = [sys.executable, "-m", "tdgui", *args]
    result = subprocess.run(argv, env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_accounts_added_and_removed_with_the_cli_show_in_the_running_window(
    qtbot: QtBot, service: TokenService
) -> None:
    shell = shown_shell(qtbot, service)
    assert listed(shell) == []
    reloads: list[int] = []
    shell.controller.statuses_changed.connect(lambda: reloads.append(1))
    # First account: accounts.json (and maybe the config dir) did not exist when the app started.
    cli("accounts", "add", "fromcli", "--provider", "sandbox", "--store", "file")
    qtbot.waitUntil(lambda: listed(shell) == ["fromcli"], timeout=10_000)
    cli("accounts", "add", "second", "--provider", "sandbox", "--store", "file")
    qtbot.waitUntil(lambda: sorted(listed(shell)) == ["fromcli", "second"], timeout=10_000)
    cli("accounts", "remove", "second")
    qtbot.waitUntil(lambda: listed(shell) == ["fromcli"], timeout=10_000)
    shell.shutdown()


def test_token_rows_are_not_clipped_at_the_minimum_window_size(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str], login_direct
) -> None:
    login_direct(add_sandbox_account("fits"))
    shell = shown_shell(qtbot, service)
    window, view = shell.window, shell.window.status_view
    qtbot.waitUntil(lambda: view.status is not None and view.status.access_expires_at is not None)
    # The fullest view: a notice in the banner and a result line under the rows.
    window.show_notice("fits", "The refresh token of fits expires in 23 hours: log in again soon.")
    view.show_message("Refreshed; access token valid until 2026-12-03 10:52:23.", error=False)
    window.resize(1, 1)  # as small as the window manager lets a user drag it
    qtbot.waitUntil(lambda: window.width() <= window.minimumSizeHint().width() + 1)
    qtbot.wait(50)
    hint = view.minimumSizeHint()
    assert view.width() >= hint.width() and view.height() >= hint.height(), (view.size(), hint)
    clipped = []
    for child in view.findChildren(QWidget):
        if not child.isVisibleTo(view) or not isinstance(child, QLabel | QProgressBar):
            continue
        # What it needs to show its content, within the limits the view sets on purpose (the
        # bars are capped at 12 px high).
        need = child.minimumSizeHint().boundedTo(child.maximumSize())
        if isinstance(child, QLabel) and not child.wordWrap():
            need = need.expandedTo(child.sizeHint()).boundedTo(child.maximumSize())
        if child.width() < need.width() or child.height() < need.height():
            clipped.append(f"{child.objectName() or type(child).__name__} {child.size()} < {need}")
    assert clipped == []
    shell.shutdown()

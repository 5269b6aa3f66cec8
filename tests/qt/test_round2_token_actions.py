"""Issue 14, build 3: copy the access token, export a token file, and script snippets, from the window.

Real sandbox, real keyring (the file export and keep-synced registration are compared with a
real `tdgui export` process on the same tokens).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QApplication, QDialog
from pytestqt.qtbot import QtBot

from tdgui.core.config import Config
from tdgui.core.environment import Environment
from tdgui.core.ops import ChildOps
from tdgui.core.providers import SANDBOX_SCHWAB_CLIENT_ID
from tdgui.core.service import TokenService
from tdgui.qt.controller import Controller
from tdgui.qt.main_window import MainWindow
from tdgui.qt.token_actions import CLEAR_AFTER_MS, TokenActions
from tdgui.sandbox.driver import login_with_requests

from .test_round2_accessibility import nameless


def make_window(qtbot: QtBot, controller: Controller) -> MainWindow:
    win = MainWindow(controller)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        controller.reload()
    return win


def copied_token(qtbot: QtBot, actions: TokenActions) -> str:
    actions.copy_button.click()
    qtbot.waitUntil(lambda: actions.clipboard.timer.isActive(), timeout=20_000)
    return QApplication.clipboard().text()


def test_copy_token_clears_the_clipboard_after_the_delay(
    qtbot: QtBot,
    controller: Controller,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
    login_direct: Callable[[str], None],
) -> None:
    add_sandbox_account("alpha")
    login_direct("alpha")
    window = make_window(qtbot, controller)
    actions = window.token_actions
    assert actions.isVisible() and actions.name == "alpha"
    assert actions.clipboard.timer.interval() == CLEAR_AFTER_MS == 30_000
    token = copied_token(qtbot, actions)
    stored = service.read_tokens(service.account("alpha"))
    assert stored is not None and token == stored.access_token
    # Never on screen: not in the status line, the snippets or any label of the window.
    assert token not in actions.status.text() and token not in actions.script.toPlainText()
    assert "cleared in 30 s" in actions.status.text()
    # The delay is the guard's timer: firing it is what 30 s later does.
    with qtbot.waitSignal(actions.clipboard.cleared) as cleared:
        actions.clipboard.timer.timeout.emit()
    assert cleared.args == [True]
    assert QApplication.clipboard().text() == ""
    assert "cleared" in actions.status.text()


def test_copy_token_leaves_what_the_user_copied_since(
    qtbot: QtBot,
    controller: Controller,
    add_sandbox_account: Callable[..., str],
    login_direct: Callable[[str], None],
) -> None:
    add_sandbox_account("alpha")
    login_direct("alpha")
    window = make_window(qtbot, controller)
    # A real, short delay this time: the timer runs out by itself.
    window.token_actions.clipboard.timer.setInterval(1_500)  # long enough to be seen running
    copied_token(qtbot, window.token_actions)
    QApplication.clipboard().setText("my own note")
    with qtbot.waitSignal(window.token_actions.clipboard.cleared, timeout=5_000) as cleared:
        pass
    assert cleared.args == [False]
    assert QApplication.clipboard().text() == "my own note"


def test_copy_without_tokens_says_log_in(
    qtbot: QtBot, controller: Controller, add_sandbox_account: Callable[..., str]
) -> None:
    add_sandbox_account("fresh")
    window = make_window(qtbot, controller)
    QApplication.clipboard().setText("before")
    window.token_actions.copy_button.click()
    qtbot.waitUntil(lambda: "Could not copy" in window.token_actions.status.text(), timeout=20_000)
    assert QApplication.clipboard().text() == "before"
    assert not window.token_actions.clipboard.timer.isActive()


def run_cli_export(config: Path, name: str, fmt: str, out: Path) -> None:
    env = {**os.environ, "TD_CONFIG_DIR": str(config)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tdgui",
            "export",
            name,
            "--format",
            fmt,
            "--output",
            str(out),
            "--keep-synced",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_copy_and_export_through_the_ops_child_as_tdgui_export(
    qtbot: QtBot,
    isolated_config: Path,
    tmp_path: Path,
    add_sandbox_account: Callable[..., str],
    login_direct: Callable[[str], None],
) -> None:
    """Keyring store, so a `tdgui export` process reads the very tokens the window exports."""
    # The per-test service keeps tokens in memory; this test needs the real keyring store.
    service = TokenService(Config(isolated_config))
    add_sandbox_account("alpha")
    service.config.update_account("alpha", store="keyring")
    pending = service.begin_login("alpha")
    ca = isolated_config / "sandbox" / "ca.pem"
    service.finish_login(pending, login_with_requests(pending.url, ca))
    # As the desktop app runs it: every token operation in a `tdgui --ops-child` process.
    ops = ChildOps(Environment.from_os(), lead=lambda: service.lead)
    controller = Controller(service, ops=ops)
    try:
        window = make_window(qtbot, controller)
        actions = window.token_actions
        assert controller.ops("alpha") is ops
        stored = service.read_tokens(service.account("alpha"))
        assert stored is not None and copied_token(qtbot, actions) == stored.access_token
        for fmt in ("schwab-py", "tda-api"):
            ours, theirs = tmp_path / f"window-{fmt}.json", tmp_path / f"cli-{fmt}.json"
            dialog = actions.open_export()
            assert dialog is not None
            assert dialog.keep_synced.isChecked()
            assert nameless(dialog) == []
            dialog.format.setCurrentIndex(dialog.format.findData(fmt))
            dialog.path.setText(str(ours))
            with qtbot.waitSignal(controller.changed, timeout=30_000):
                dialog.done(QDialog.DialogCode.Accepted)
            assert str(ours) in actions.status.text() and "in sync" in actions.status.text()
            run_cli_export(isolated_config, "alpha", fmt, theirs)
            assert ours.read_bytes() == theirs.read_bytes()
            assert stat.S_IMODE(ours.stat().st_mode) == stat.S_IMODE(theirs.stat().st_mode) == 0o600
            assert json.loads(ours.read_text())["token"]["access_token"]
        exports = Config(isolated_config).find("alpha").exports  # type: ignore[union-attr]
        registered = {(e.format, Path(e.path).name) for e in exports}
        assert registered == {
            ("schwab-py", "window-schwab-py.json"),
            ("schwab-py", "cli-schwab-py.json"),
            ("tda-api", "window-tda-api.json"),
            ("tda-api", "cli-tda-api.json"),
        }
        # The snippet now names the exported schwab-py file.
        actions.script_button.click()
        assert str(tmp_path / "window-schwab-py.json") in actions.script.toPlainText()
    finally:
        controller.close_logins()


def test_snippet_panel_shows_the_account_name(
    qtbot: QtBot,
    controller: Controller,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
) -> None:
    add_sandbox_account("my-broker")
    window = make_window(qtbot, controller)
    actions = window.token_actions
    assert not actions.script.isVisible()
    actions.script_button.click()
    assert actions.script.isVisible()
    text = actions.script.toPlainText()
    assert "tdgui token my-broker" in text
    assert 'import tdgui\nsession = tdgui.session("my-broker")' in text
    assert "schwab.auth.client_from_token_file(" in text and 'app_secret="APP_SECRET"' in text
    assert "/path/to/token.json" in text  # nothing exported yet
    assert f'api_key="{SANDBOX_SCHWAB_CLIENT_ID}"' in text  # the app key is no secret

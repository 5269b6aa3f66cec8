"""Edit → Token store: file → OK moves the tokens, and the window shows it at once (issue 14, defect 1).

Before the fix the window kept "Tokens valid" and "Stored in: system keyring" while the
tokens stayed behind in the keyring, and Refresh then said "no tokens stored".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox
from pytestqt.qtbot import QtBot

from helpers.sandbox import add_sandbox_account, log_in
from tdgui.core.config import Config
from tdgui.core.service import TokenService
from tdgui.qt.controller import Controller
from tdgui.qt.main_window import MainWindow
from tdgui.qt.worker import wait_for_idle


@pytest.fixture
def real_controller(isolated_config: Path) -> Iterator[Controller]:
    """A controller on the real service of this test's config dir (real gnome-keyring, files)."""
    ctl = Controller(TokenService(Config(isolated_config)))
    yield ctl
    ctl.close_logins()
    wait_for_idle(10_000)


def test_store_change_moves_tokens_and_window_says_so(
    qtbot: QtBot, real_controller: Controller, sandbox: object, isolated_config: Path
) -> None:
    name = "w14dmove"
    add_sandbox_account(sandbox, name, store="keyring")  # type: ignore[arg-type]
    service = real_controller.service
    keyring = service.open_store("keyring")
    try:
        log_in(TokenService(Config(isolated_config)), name)
        assert keyring.read(f"{name}/tokens") is not None
        win = MainWindow(real_controller, open_add_on_first_run=False)
        qtbot.addWidget(win)
        win.show()
        with qtbot.waitSignal(real_controller.statuses_changed, timeout=10_000):
            real_controller.reload()
        qtbot.waitUntil(lambda: win.selected_name() == name, timeout=5000)
        view = win.status_view
        assert view.store.text() == "system keyring"

        dialog = win.open_edit_dialog()
        assert dialog is not None
        dialog.store.setCurrentText("file")
        ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok.isEnabled(), dialog.error.text()
        with qtbot.waitSignal(real_controller.account_saved, timeout=20_000) as saved:
            qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)
        assert saved.args[0] is True, saved.args
        assert "moved" in saved.args[1], saved.args

        # The tokens are in <config>/tokens/, 0600, and no longer in the keyring.
        token_file = isolated_config / "tokens" / f"{name}.tokens.json"
        assert token_file.is_file()
        assert token_file.stat().st_mode & 0o077 == 0
        assert keyring.read(f"{name}/tokens") is None
        assert service.account(name).store == "file"

        # The window tells the truth right after the save, without a manual reload.
        qtbot.waitUntil(lambda: view.store.text() == "file (plain text, 0600)", timeout=10_000)
        assert view.access.level == "valid", view.access.level
        assert "no tokens stored" not in view.message.text().lower()

        # Refresh works from the new store.
        before = service.read_tokens(service.account(name))
        assert before is not None
        qtbot.waitUntil(view.refresh_button.isEnabled, timeout=5000)
        with qtbot.waitSignal(real_controller.refresh_finished, timeout=20_000) as refreshed:
            view.refresh_button.click()
        assert refreshed.args[1] is True, refreshed.args
        after = service.read_tokens(service.account(name))
        assert after is not None and after.access_token != before.access_token
        assert keyring.read(f"{name}/tokens") is None
        qtbot.waitUntil(lambda: "Refreshed" in view.message.text(), timeout=5000)
        assert "no tokens stored" not in view.message.text().lower()
    finally:
        # The session keyring outlives this test: leave nothing of this account in it.
        for key in (f"{name}/tokens", f"{name}/secret"):
            keyring.delete(key)

"""Issue 14, defects 7-11: onboarding order, stale messages, keyboard safety, the close-to-tray hint."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox
from pytestqt.qtbot import QtBot

from tdgui.core.config import Settings
from tdgui.core.login_outcome import CANCELLED_MESSAGE, DENIED_MESSAGE, LoginOutcome, LoginResult
from tdgui.core.service import TokenService
from tdgui.qt.controller import Controller
from tdgui.qt.main_window import MainWindow
from tdgui.qt.shell import Shell
from tdgui.qt.status_view import COLOUR_EXPIRED


def make_window(qtbot: QtBot, controller: Controller) -> MainWindow:
    win = MainWindow(controller)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        controller.reload()
    return win


def test_first_start_shows_the_welcome_page_alone(qtbot: QtBot, controller: Controller) -> None:
    win = make_window(qtbot, controller)
    assert win.stack.currentWidget() is win.welcome
    assert win.account_dialog is None
    assert win.try_sandbox_button.isVisible() and win.welcome_add_button.isVisible()


def test_add_dialog_shows_no_error_before_typing(qtbot: QtBot, controller: Controller) -> None:
    win = make_window(qtbot, controller)
    dialog = win.open_add_dialog()
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert dialog.error.text() == "" and not ok.isEnabled()
    qtbot.keyClicks(dialog.name, "my account")
    assert "no spaces" in dialog.error.text()
    assert "'" + "my account" + "'" not in dialog.error.text()  # not core's raw repr
    dialog.reject()


def test_dialog_wording_names_no_flags_and_no_raw_values(qtbot: QtBot, controller: Controller) -> None:
    win = make_window(qtbot, controller)
    dialog = win.open_add_dialog()
    dialog.provider.setCurrentIndex(dialog.provider.findData("schwab"))
    dialog.name.setText("main")
    dialog.client_id.setText("k" * 32)
    dialog.callback.setText("")
    assert dialog.error.text().startswith("Enter the callback URL")
    assert "got" not in dialog.error.text()
    dialog.callback.setText("https://127.0.0.1:8182/")
    dialog.store.setCurrentText("file")
    assert "keyring" not in dialog.error.text() and "file" in dialog.error.text()
    dialog.secret.setText("s" * 16)
    dialog.client_id.setText("ж" * 32)  # Cyrillic: looks like a key, is not one
    assert "copy it again" in dialog.error.text()
    dialog.provider.setCurrentIndex(dialog.provider.findData("custom"))
    dialog.client_id.setText("abc")
    dialog.authorize_url.setText("")
    dialog.token_url.setText("")
    assert "--" not in dialog.error.text() and "authorize URL" in dialog.error.text()
    dialog.reject()


def test_after_adding_the_login_is_the_next_step(
    qtbot: QtBot, service: TokenService, controller: Controller
) -> None:
    win = make_window(qtbot, controller)
    dialog = win.open_add_dialog()
    dialog.provider.setCurrentIndex(dialog.provider.findData("schwab"))
    dialog.name.setText("main")
    dialog.client_id.setText("k" * 32)
    dialog.secret.setText("s" * 16)
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: win.selected_name() == "main", timeout=10_000)
    view = win.status_view
    assert view.login_button.isVisible() and view.login_button.isDefault()
    assert win.focusWidget() is view.login_button
    assert "Next: log in" in view.message.text()


def test_success_replaces_stale_messages_and_cancel_is_not_an_error(
    qtbot: QtBot, controller: Controller, add_sandbox_account: Callable[..., str]
) -> None:
    add_sandbox_account("alpha")
    win = make_window(qtbot, controller)
    bar = win.statusBar()
    controller.login_finished.emit(LoginResult("alpha", LoginOutcome.DENIED, DENIED_MESSAGE, 1.0))
    assert "denied" in bar.currentMessage()
    controller.login_finished.emit(LoginResult("alpha", LoginOutcome.SUCCESS, "Logged in.", 1.0))
    assert "denied" not in bar.currentMessage() and "Logged in" in bar.currentMessage()
    controller.login_finished.emit(LoginResult("alpha", LoginOutcome.CANCELLED, CANCELLED_MESSAGE, 1.0))
    assert COLOUR_EXPIRED not in win.status_view.message.styleSheet()
    # A failed refresh's "Login required" goes once a later refresh of that account succeeds.
    bar.showMessage("alpha: Login required: log in again", 60_000)
    controller.refresh_finished.emit("alpha", True, "Refreshed.")
    assert bar.currentMessage() == ""


def test_remove_defaults_to_no(
    qtbot: QtBot, controller: Controller, add_sandbox_account: Callable[..., str]
) -> None:
    add_sandbox_account("alpha")
    win = make_window(qtbot, controller)
    box = win.confirm_remove()
    assert box is not None
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.No)
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: win.confirm_box is None, timeout=5_000)
    assert controller.service.config.find("alpha") is not None


def test_closing_to_the_tray_says_the_app_still_runs(qtbot: QtBot, service: TokenService) -> None:
    shell = Shell(service, Settings(), use_tray=True, quit_app=lambda: None)
    qtbot.addWidget(shell.window)
    with qtbot.waitSignal(shell.controller.statuses_changed, timeout=10_000):
        shell.start()
    assert shell.tray.last_message is None
    shell.window.close()
    assert not shell.window.isVisible()
    assert shell.tray.last_message is not None and "still running" in shell.tray.last_message[0]
    shell.tray.last_message = None
    shell.show_window()
    shell.window.close()
    assert shell.tray.last_message is None  # once, not every time
    shell.shutdown()

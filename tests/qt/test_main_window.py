"""Main window, status view, Refresh button and the account dialog against a real sandbox."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox
from pytestqt.qtbot import QtBot

from tdgui.core.clock import ManualClock
from tdgui.core.config import Config
from tdgui.core.errors import ConfigError
from tdgui.core.service import TokenService
from tdgui.core.status import AccountStatus
from tdgui.core.stores.memory import MemoryStore
from tdgui.qt.controller import Controller
from tdgui.qt.main_window import MainWindow
from tdgui.qt.status_view import COLOUR_VALID
from tdgui.sandbox import SandboxServer


def make_window(qtbot: QtBot, controller: Controller) -> MainWindow:
    win = MainWindow(controller, open_add_on_first_run=False)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        controller.reload()
    return win


def test_status_and_refresh(
    qtbot: QtBot,
    service: TokenService,
    controller: Controller,
    add_sandbox_account: Callable[..., str],
    login_direct: Callable[[str], None],
) -> None:
    name = add_sandbox_account("alpha")
    login_direct(name)
    win = make_window(qtbot, controller)
    view = win.status_view
    assert win.selected_name() == name
    assert "alpha" in view.title.text()
    assert view.access.expires.text().startswith("until ")
    assert view.access.level == "valid" and view.refresh_token.level == "valid"
    assert COLOUR_VALID in view.access.bar.styleSheet()
    # Always available (issue 14, build 4), but not the default button while the tokens are fine.
    assert view.login_button.isVisible() and not view.login_button.isDefault()
    assert view.ticker.isActive()
    before = service.read_tokens(service.account(name))
    view.refresh_button.click()
    assert not view.refresh_button.isEnabled() and view.busy_bar.isVisible()
    with qtbot.waitSignal(controller.refresh_finished, timeout=10_000) as blocker:
        pass
    assert blocker.args[1] is True
    qtbot.waitUntil(lambda: view.refresh_button.isEnabled(), timeout=5_000)
    after = service.read_tokens(service.account(name))
    assert before is not None and after is not None and after.access_token != before.access_token
    assert "Refreshed" in view.message.text()
    assert not view.busy_bar.isVisible()
    win.hide()
    assert not view.ticker.isActive()  # no 1 s timer while hidden


def test_refresh_failure_is_inline(
    qtbot: QtBot,
    service: TokenService,
    sandbox: SandboxServer,
    controller: Controller,
    add_sandbox_account: Callable[..., str],
    login_direct: Callable[[str], None],
) -> None:
    name = add_sandbox_account("alpha")
    login_direct(name)
    win = make_window(qtbot, controller)
    before = service.read_tokens(service.account(name))
    sandbox.set_fault("500", 3)
    with qtbot.waitSignal(controller.refresh_finished, timeout=15_000) as blocker:
        win.status_view.refresh_button.click()
    assert blocker.args[1] is False
    text = win.status_view.message.text()
    assert text.startswith("Refresh failed:") and "Traceback" not in text
    assert service.read_tokens(service.account(name)) == before
    qtbot.waitUntil(lambda: "failed" in win.status_view.last_refresh.text(), timeout=5_000)
    assert win.status_view.refresh_button.isEnabled()


def test_log_in_again_when_refresh_token_dies(
    qtbot: QtBot, isolated_config, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    clock = ManualClock(start=__import__("time").time())
    service = TokenService(Config(isolated_config), clock=clock, store_override=MemoryStore())
    from tdgui.sandbox.driver import login_with_requests

    add_sandbox_account("alpha")
    pending = service.begin_login("alpha")
    service.finish_login(pending, login_with_requests(pending.url, sandbox.certs.ca_file))
    controller = Controller(service)
    win = make_window(qtbot, controller)
    assert not win.status_view.login_button.isDefault()  # always visible (issue 14, build 4)
    clock.advance(6.5 * 24 * 3600)  # Schwab: the refresh token dies 7 days after the login
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        controller.reload()
    assert win.status_view.login_button.isVisible() and win.status_view.login_button.isDefault()
    assert win.status_view.refresh_token.level == "soon"
    assert win.status_view.access.level == "expired"
    clock.advance(24 * 3600)
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        controller.reload()
    assert win.status_view.refresh_token.remaining.text() == "expired"
    assert "Login required" in win.status_view.state_label.text()


def test_account_dialog_validates_and_stores_secret(
    qtbot: QtBot, service: TokenService, controller: Controller
) -> None:
    win = make_window(qtbot, controller)
    assert win.stack.currentWidget() is win.welcome  # first run
    dialog = win.open_add_dialog()
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    dialog.provider.setCurrentIndex(dialog.provider.findData("schwab"))
    dialog.name.setText("main")
    dialog.client_id.setText("k" * 32)
    dialog.secret.setText("s" * 16)
    assert "api.schwabapi.com" in dialog.authorize_url.text()
    assert "developer portal exactly" in dialog.callback_note.text()
    dialog.callback.setText("https://localhost:8182/")
    assert not ok.isEnabled() and "127.0.0.1" in dialog.error.text()
    dialog.callback.setText("http://127.0.0.1:8182/")
    assert not ok.isEnabled() and "https" in dialog.error.text()
    dialog.callback.setText("https://127.0.0.1:8182/")
    assert ok.isEnabled(), dialog.error.text()
    dialog.client_id.setText("short")
    assert "usually 32 characters" in dialog.client_id_hint.text()
    dialog.client_id.setText("k" * 32)
    dialog.name.setText("bad name")
    assert not ok.isEnabled() and "no spaces" in dialog.error.text()
    dialog.name.setText("main")
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        ok.click()
    account = service.account("main")
    assert account.provider == "schwab" and account.client_id == "k" * 32
    assert service.secret_store(account).read("main/secret") == "s" * 16
    assert win.selected_name() == "main"
    # Edit: the secret is never shown again.
    edit = win.open_edit_dialog()
    assert edit is not None and edit.secret.text() == "" and edit.name.isReadOnly()
    assert edit.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
    edit.reject()


def test_remove_account(
    qtbot: QtBot,
    service: TokenService,
    controller: Controller,
    add_sandbox_account: Callable[..., str],
    login_direct: Callable[[str], None],
) -> None:
    add_sandbox_account("alpha")
    login_direct("alpha")
    win = make_window(qtbot, controller)
    box = win.confirm_remove()
    assert box is not None
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        box.button(QMessageBox.StandardButton.Yes).click()
    assert controller.statuses == {}
    assert service.config.accounts() == []
    assert win.stack.currentWidget() is win.welcome


def logged_in_on_a_manual_clock(
    config: Config, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> tuple[TokenService, ManualClock]:
    """Account "alpha" logged in to the sandbox, its service on a clock the test moves."""
    from tdgui.sandbox.driver import login_with_requests

    clock = ManualClock(start=time.time())
    service = TokenService(config, clock=clock, store_override=MemoryStore())
    add_sandbox_account("alpha")
    pending = service.begin_login("alpha")
    service.finish_login(pending, login_with_requests(pending.url, sandbox.certs.ca_file))
    return service, clock


def test_login_soon_follows_the_users_first_warning(
    qtbot: QtBot, isolated_config, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    """First warning 2 days ahead: state, bar and "Log in again" turn with it, not at a fixed day."""
    from tdgui.core.schedule import AccountState

    config = Config(isolated_config)
    service, clock = logged_in_on_a_manual_clock(config, sandbox, add_sandbox_account)
    clock.advance(5.5 * 24 * 3600)  # Schwab: 1.5 days of the 7 left
    assert service.status("alpha").state is not AccountState.LOGIN_SOON  # the default: a day
    config.save_settings(dataclasses.replace(config.settings(), login_warning_seconds=48 * 3600))
    assert service.status("alpha").state is AccountState.LOGIN_SOON
    assert service.status("alpha").to_json()["state"] == "login soon"
    assert "login_soon" not in service.status("alpha").to_json()  # the `--json` form is unchanged
    controller = Controller(service)
    win = make_window(qtbot, controller)
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        controller.reload()
    view = win.status_view
    assert view.state_label.text() == "Log in again soon: the refresh token expires within 2 days"
    assert view.refresh_token.level == "soon"
    assert view.login_button.isDefault()


def test_the_shown_state_follows_the_clock_with_nothing_else_happening(
    qtbot: QtBot, isolated_config, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    """The first warning's lead passes while the window is open: the state text turns by itself."""
    config = Config(isolated_config)
    service, clock = logged_in_on_a_manual_clock(config, sandbox, add_sandbox_account)
    config.save_settings(dataclasses.replace(config.settings(), login_warning_seconds=48 * 3600))
    tokens = service.read_tokens(service.account("alpha"))
    assert tokens is not None and tokens.refresh_expires_at is not None
    clock.current = tokens.refresh_expires_at - 48 * 3600 - 2  # 2 s before the lead
    win = make_window(qtbot, Controller(service))
    view = win.status_view
    assert not view.state_label.text().startswith("Log in again soon"), view.state_label.text()
    clock.advance(3)  # no reload, no refresh, no notification: only the clock moves
    qtbot.waitUntil(lambda: view.state_label.text().startswith("Log in again soon"), timeout=10_000)
    assert view.login_button.isDefault()


def test_a_failing_read_is_not_retried_at_once_by_the_clock(
    qtbot: QtBot,
    isolated_config,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A recheck moment passed while the accounts cannot be read: no read after read after read."""
    service, clock = logged_in_on_a_manual_clock(Config(isolated_config), sandbox, add_sandbox_account)
    controller = Controller(service)
    make_window(qtbot, controller)
    assert controller.recheck_timer.isActive()
    reads: list[float] = []

    def broken() -> list[AccountStatus]:
        reads.append(time.monotonic())
        raise ConfigError("accounts.json is damaged")

    monkeypatch.setattr(service, "statuses", broken)
    clock.advance(8 * 24 * 3600)  # every moment is past
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        controller.reload()
    qtbot.wait(1_500)
    assert len(reads) == 1 and controller.load_error is not None
    # The moment armed by the last read that worked still stands: tried again then, not now.
    assert controller.recheck_timer.remainingTime() > 60_000

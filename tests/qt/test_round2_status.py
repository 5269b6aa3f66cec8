"""Issue 14, defect 2: a dead refresh token is never shown as healthy; a stated lifetime is used."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tdgui.core.providers import schwab
from tdgui.core.schedule import AccountState
from tdgui.core.service import TokenService
from tdgui.core.tokens import TokenSet
from tdgui.qt.controller import Controller
from tdgui.qt.main_window import MainWindow
from tdgui.qt.status_view import COLOUR_EXPIRED
from tdgui.sandbox import SandboxServer, sandbox_state_dir
from tdgui.sandbox.driver import login_with_requests


@pytest.fixture
def three_minute_sandbox(isolated_config: Path) -> Iterator[SandboxServer]:
    """Schwab flavor, refresh tokens live 3 minutes (the app assumes Schwab's 7 days)."""
    server = SandboxServer(sandbox_state_dir(isolated_config), port=0, refresh_ttl=180).start()
    try:
        yield server
    finally:
        server.stop()


def test_refresh_token_refused_is_shown_dead_not_green(
    qtbot: QtBot,
    service: TokenService,
    three_minute_sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    server = three_minute_sandbox
    name = add_sandbox_account("short", url=server.base_url)
    pending = service.begin_login(name)
    service.finish_login(pending, login_with_requests(pending.url, server.certs.ca_file))
    server.advance_clock(240)  # the refresh token died on the server

    controller = Controller(service)
    win = MainWindow(controller, open_add_on_first_run=False)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        controller.reload()
    view = win.status_view
    with qtbot.waitSignal(controller.refresh_finished, timeout=15_000) as blocker:
        view.refresh_button.click()
    assert blocker.args[1] is False
    qtbot.waitUntil(lambda: controller.statuses[name].state is AccountState.LOGIN_REQUIRED, timeout=10_000)
    qtbot.waitUntil(lambda: view.status is not None and view.status.state is AccountState.LOGIN_REQUIRED)
    row = view.refresh_token
    assert "Login required" in view.state_label.text()
    assert row.level == "expired" and row.bar.value() == 0
    assert COLOUR_EXPIRED in row.bar.styleSheet()
    assert "6d" not in row.expires.text() and "until" not in row.expires.text()
    assert row.remaining.text() == "expired"
    assert view.login_button.isVisible()
    controller.close_logins()


def test_schwab_style_account_uses_the_lifetime_the_server_states() -> None:
    now = time.time()
    answer = {
        "access_token": "a" * 40,
        "refresh_token": "r" * 40,
        "expires_in": 1800,
        "refresh_token_expires_in": 180,
        "token_type": "Bearer",
    }
    tokens = TokenSet.from_response(answer, schwab(), now)
    assert tokens.refresh_expires_at == pytest.approx(now + 180, abs=1)
    # Without a stated lifetime Schwab's 7 days, counted from the login, still apply.
    del answer["refresh_token_expires_in"]
    tokens = TokenSet.from_response(answer, schwab(), now)
    assert tokens.refresh_expires_at == pytest.approx(now + 7 * 24 * 3600, abs=1)


def _no_cli_words(text: str) -> None:
    assert "`" not in text and "--" not in text and "tdgui login" not in text, text
    assert "refresh_token_authentication_error" not in text and "invalid_grant" not in text, text


def test_gui_messages_name_no_cli_commands_or_raw_codes(
    qtbot: QtBot,
    service: TokenService,
    three_minute_sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    server = three_minute_sandbox
    fresh = add_sandbox_account("fresh", url=server.base_url)  # never logged in
    dead = add_sandbox_account("dead", url=server.base_url)
    pending = service.begin_login(dead)
    service.finish_login(pending, login_with_requests(pending.url, server.certs.ca_file))
    server.advance_clock(240)
    controller = Controller(service)
    messages: dict[str, str] = {}
    controller.refresh_finished.connect(lambda name, ok, text: messages.__setitem__(name, text))
    with qtbot.waitSignals([controller.refresh_finished] * 2, timeout=15_000):
        controller.refresh(fresh)
        controller.refresh(dead)
    assert messages[fresh].startswith("Login required") and "log in" in messages[fresh]
    assert messages[dead].startswith("Login required")
    for text in messages.values():
        _no_cli_words(text)
    controller.close_logins()

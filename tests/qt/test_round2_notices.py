"""Issue 14, defects 3 and 11: one warning per account in banner and tray; the tray's per-account state."""

from __future__ import annotations

from collections.abc import Callable

from pytestqt.qtbot import QtBot

from tdgui.core.clock import ManualClock
from tdgui.core.config import Settings
from tdgui.core.service import TokenService
from tdgui.qt.scheduler import KIND_EXPIRED, KIND_EXPIRING
from tdgui.qt.shell import Shell
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests

HOUR = 3600.0


def login(service: TokenService, sandbox: SandboxServer, name: str) -> None:
    pending = service.begin_login(name)
    service.finish_login(pending, login_with_requests(pending.url, sandbox.certs.ca_file))


def test_three_warnings_at_once_are_three_notices(
    qtbot: QtBot,
    manual_service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    service = manual_service
    clock = service.clock
    assert isinstance(clock, ManualClock)
    login(service, sandbox, add_sandbox_account("old"))
    clock.advance(2 * HOUR)
    login(service, sandbox, add_sandbox_account("short"))
    login(service, sandbox, add_sandbox_account("other"))
    old = service.read_tokens(service.account("old"))
    assert old is not None and old.refresh_expires_at is not None
    # "old" died 30 min ago; "short" and "other" have 1 h 30 min left.
    clock.advance(old.refresh_expires_at + 0.5 * HOUR - clock.now())

    shell = Shell(service, Settings(), use_tray=True, open_add_on_first_run=False, quit_app=lambda: None)
    qtbot.addWidget(shell.window)
    received: list[tuple[str, str, str]] = []
    shell.scheduler.notification.connect(lambda *args: received.append(args))
    with qtbot.waitSignal(shell.controller.statuses_changed, timeout=10_000):
        shell.start()
    qtbot.waitUntil(lambda: len(received) == 3, timeout=10_000)
    kinds = {name: kind for name, kind, _ in received}
    assert kinds == {"old": KIND_EXPIRED, "short": KIND_EXPIRING, "other": KIND_EXPIRING}

    banner = shell.window.banner
    assert banner.isVisible()
    assert sorted(banner.accounts) == ["old", "other", "short"]
    for name in ("old", "short", "other"):
        assert name in banner.rows[name].label.text()
        assert banner.rows[name].login_button.isVisible()
    assert "1h 30m" in banner.rows["short"].label.text()
    # The tray: every warning pending, the balloon not tied to just the last one.
    tray = shell.tray
    # After the desktop notifier found no daemon (on its own thread): the balloon's list.
    qtbot.waitUntil(lambda: sorted(tray.notices) == ["old", "other", "short"], timeout=10_000)
    assert tray.last_notice_account is None
    # One row's Log in opens that account's login and leaves the others.
    with qtbot.waitSignal(shell.controller.login_started, timeout=10_000) as started:
        banner.rows["short"].login_button.click()
    assert started.args == ["short"]
    assert sorted(banner.accounts) == ["old", "other"]
    shell.shutdown()


def test_tray_shows_each_accounts_state_and_time_left(
    qtbot: QtBot,
    manual_service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    service = manual_service
    login(service, sandbox, add_sandbox_account("alpha"))
    add_sandbox_account("beta")  # never logged in
    shell = Shell(service, Settings(), use_tray=True, open_add_on_first_run=False, quit_app=lambda: None)
    qtbot.addWidget(shell.window)
    with qtbot.waitSignal(shell.controller.statuses_changed, timeout=10_000):
        shell.start()
    tip = shell.tray.icon.toolTip()
    assert "alpha: valid, next login by" in tip and ("6d 23h left)" in tip or "7d 00h left)" in tip)
    assert "beta: login required" in tip
    texts = {name: action.text() for name, action in shell.tray.login_actions.items()}
    assert texts["alpha"].startswith("Log in to alpha (valid, next login by")
    assert texts["beta"] == "Log in to beta (login required)"
    shell.shutdown()


def test_zero_accounts_is_not_green(qtbot: QtBot, service: TokenService) -> None:
    shell = Shell(service, Settings(), use_tray=True, open_add_on_first_run=False, quit_app=lambda: None)
    qtbot.addWidget(shell.window)
    with qtbot.waitSignal(shell.controller.statuses_changed, timeout=10_000):
        shell.start()
    assert shell.tray.level == "none"
    assert "valid" not in shell.tray.icon.toolTip() and "no accounts" in shell.tray.icon.toolTip()
    shell.shutdown()

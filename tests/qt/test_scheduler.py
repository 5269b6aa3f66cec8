"""The background scheduler with a ManualClock: fires at the right moment, backs off, warns."""

from __future__ import annotations

from collections.abc import Callable

from pytestqt.qtbot import QtBot

from tdgui.core.clock import ManualClock
from tdgui.core.config import Settings
from tdgui.core.service import TokenService
from tdgui.qt.controller import Controller
from tdgui.qt.scheduler import BACKOFF_START, KIND_EXPIRED, KIND_EXPIRING, RefreshScheduler
from tdgui.qt.shell import Shell
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests

DAY = 24 * 3600.0


def login(service: TokenService, sandbox: SandboxServer, name: str) -> None:
    pending = service.begin_login(name)
    service.finish_login(pending, login_with_requests(pending.url, sandbox.certs.ca_file))


def started(qtbot: QtBot, scheduler: RefreshScheduler) -> RefreshScheduler:
    with qtbot.waitSignal(scheduler.rescheduled, timeout=10_000):
        scheduler.start()
    return scheduler


def test_fires_at_the_right_moment(
    qtbot: QtBot,
    manual_service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    service = manual_service
    clock = service.clock
    assert isinstance(clock, ManualClock)
    login(service, sandbox, add_sandbox_account("alpha"))
    tokens = service.read_tokens(service.account("alpha"))
    assert tokens is not None
    scheduler = started(qtbot, RefreshScheduler(Controller(service)))
    due = tokens.access_expires_at - service.lead
    assert scheduler.next_wakeup_at == due
    assert scheduler.timer.isActive() and scheduler.timer.isSingleShot()
    assert abs(scheduler.timer.interval() - (due - clock.now()) * 1000) < 1500
    # Forced early: nothing is refreshed, the same moment is planned again.
    with qtbot.waitSignal(scheduler.rescheduled, timeout=10_000):
        scheduler.on_timer()
    assert sandbox.stats()["refresh_requests"] == 0
    assert scheduler.next_wakeup_at == due
    # At the moment: one refresh, then the next moment from the new tokens.
    clock.advance(due - clock.now() + 1)
    with qtbot.waitSignal(scheduler.refreshed, timeout=10_000) as blocker:
        scheduler.on_timer()
    assert blocker.args[:2] == ["alpha", True]
    assert scheduler.jumps == 1  # the wall clock moved ~25 min while no real time passed: noticed
    qtbot.waitUntil(
        lambda: scheduler.next_wakeup_at is not None and scheduler.next_wakeup_at > due, timeout=10_000
    )
    fresh = service.read_tokens(service.account("alpha"))
    assert fresh is not None and fresh.access_token != tokens.access_token
    assert scheduler.next_wakeup_at == fresh.access_expires_at - service.lead
    assert sandbox.stats()["successful_refreshes"] == 1
    scheduler.stop()
    assert not scheduler.timer.isActive()


def test_sleep_is_capped(
    qtbot: QtBot,
    manual_service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    login(manual_service, sandbox, add_sandbox_account("alpha"))
    scheduler = started(qtbot, RefreshScheduler(Controller(manual_service), max_sleep=10))
    assert scheduler.timer.interval() == 10_000  # wakes to re-check, e.g. after a suspend
    assert (
        scheduler.next_wakeup_at is not None and scheduler.next_wakeup_at - manual_service.clock.now() > 600
    )
    scheduler.stop()


def test_no_tokens_no_timer(
    qtbot: QtBot, manual_service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    add_sandbox_account("alpha")
    scheduler = started(qtbot, RefreshScheduler(Controller(manual_service)))
    assert scheduler.next_wakeup_at is None and not scheduler.timer.isActive()


def test_network_loss_backs_off(
    qtbot: QtBot,
    manual_service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    service = manual_service
    clock = service.clock
    assert isinstance(clock, ManualClock)
    login(service, sandbox, add_sandbox_account("alpha"))
    before = service.read_tokens(service.account("alpha"))
    scheduler = started(qtbot, RefreshScheduler(Controller(service)))
    assert scheduler.next_wakeup_at is not None
    clock.advance(scheduler.next_wakeup_at - clock.now() + 1)
    sandbox.stop()  # the network is gone
    with qtbot.waitSignal(scheduler.refreshed, timeout=15_000) as blocker:
        scheduler.on_timer()
    assert blocker.args[1] is False and "retrying in 30 s" in blocker.args[2]
    qtbot.waitUntil(lambda: scheduler.next_wakeup_at == scheduler.retry_at["alpha"], timeout=10_000)
    assert scheduler.retry_at["alpha"] == clock.now() + BACKOFF_START
    assert service.read_tokens(service.account("alpha")) == before
    # Within the back-off nothing is tried again.
    with qtbot.waitSignal(scheduler.rescheduled, timeout=10_000):
        scheduler.on_timer()
    assert scheduler.failures["alpha"] == 1
    # The network is back: the retry succeeds.
    sandbox.start()
    clock.advance(BACKOFF_START + 1)
    with qtbot.waitSignal(scheduler.refreshed, timeout=15_000) as blocker:
        scheduler.on_timer()
    assert blocker.args[1] is True, blocker.args
    assert "alpha" not in scheduler.retry_at
    scheduler.stop()


def test_notifies_before_and_after_refresh_token_expiry(
    qtbot: QtBot,
    manual_service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    service = manual_service
    clock = service.clock
    assert isinstance(clock, ManualClock)
    login(service, sandbox, add_sandbox_account("alpha"))
    tokens = service.read_tokens(service.account("alpha"))
    assert tokens is not None and tokens.refresh_expires_at is not None
    shell = Shell(service, Settings(), use_tray=False, open_add_on_first_run=False, quit_app=lambda: None)
    qtbot.addWidget(shell.window)
    received: list[tuple[str, str, str]] = []
    shell.scheduler.notification.connect(lambda *args: received.append(args))
    with qtbot.waitSignal(shell.scheduler.rescheduled, timeout=10_000):
        shell.start()
    assert received == []
    clock.advance(tokens.refresh_expires_at - DAY - clock.now() + 60)
    with qtbot.waitSignal(shell.scheduler.notification, timeout=10_000) as blocker:
        shell.scheduler.reschedule()
    assert blocker.args[:2] == ["alpha", KIND_EXPIRING]
    assert "expires in 23h 59m" in blocker.args[2]
    # No tray: an in-window banner; one click opens the login.
    assert shell.window.banner.isVisible() and "alpha" in shell.window.banner.rows["alpha"].label.text()
    with qtbot.waitSignal(shell.scheduler.rescheduled, timeout=10_000):
        shell.scheduler.reschedule()
    assert len(received) == 1  # told once, not on every wake-up
    shell.window.banner.rows["alpha"].login_button.click()
    assert "alpha" in shell.controller.login_windows
    shell.controller.login_windows["alpha"].cancel()
    clock.advance(DAY)
    with qtbot.waitSignal(shell.scheduler.notification, timeout=10_000) as blocker:
        shell.scheduler.reschedule()
    assert blocker.args[:2] == ["alpha", KIND_EXPIRED]
    shell.shutdown()


def test_notifications_off(
    qtbot: QtBot,
    manual_service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    service = manual_service
    clock = service.clock
    assert isinstance(clock, ManualClock)
    login(service, sandbox, add_sandbox_account("alpha"))
    clock.advance(6.5 * DAY)
    scheduler = RefreshScheduler(Controller(service))
    scheduler.notifications_enabled = False
    received: list[object] = []
    scheduler.notification.connect(lambda *args: received.append(args))
    started(qtbot, scheduler)
    assert received == []
    scheduler.stop()

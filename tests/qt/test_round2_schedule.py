"""Issue 14, defect 6: an access token shorter than the refresh lead must not cause a refresh loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tdgui.core.clock import ManualClock
from tdgui.core.schedule import AccountState
from tdgui.core.service import TokenService
from tdgui.qt.controller import Controller
from tdgui.qt.scheduler import RefreshScheduler
from tdgui.sandbox import SandboxServer, sandbox_state_dir
from tdgui.sandbox.driver import login_with_requests


@pytest.fixture
def short_sandbox(isolated_config: Path) -> Iterator[SandboxServer]:
    """A sandbox whose access tokens live 60 s (the refresh lead is 300 s)."""
    server = SandboxServer(sandbox_state_dir(isolated_config), port=0, access_ttl=60).start()
    try:
        yield server
    finally:
        server.stop()


def test_sixty_second_token_is_refreshed_once_per_lifetime_not_every_second(
    qtbot: QtBot,
    manual_service: TokenService,
    short_sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    service = manual_service
    clock = service.clock
    assert isinstance(clock, ManualClock)
    assert service.lead == 300.0
    name = add_sandbox_account("short", url=short_sandbox.base_url)
    pending = service.begin_login(name)
    service.finish_login(pending, login_with_requests(pending.url, short_sandbox.certs.ca_file))
    tokens = service.read_tokens(service.account(name))
    assert tokens is not None and tokens.access_expires_at - tokens.received_at == 60

    controller = Controller(service)
    scheduler = RefreshScheduler(controller)
    with qtbot.waitSignal(scheduler.rescheduled, timeout=10_000):
        scheduler.start()
    # Planned in the token's last quarter, not 300 s before its end (which is already past).
    assert scheduler.next_wakeup_at == tokens.access_expires_at - 15
    assert scheduler.timer.interval() >= 40_000
    # A fresh token is shown as valid, not as "due for refresh" for its whole life.
    assert {s.name: s.state for s in service.statuses()}[name] is AccountState.VALID

    for _ in range(3):  # three lifetimes: exactly three refreshes, each planned ~45 s ahead
        wake = scheduler.next_wakeup_at
        assert wake is not None
        clock.advance(wake - clock.now() + 0.5)
        with qtbot.waitSignal(scheduler.refreshed, timeout=10_000) as blocker:
            scheduler.on_timer()
        assert blocker.args[:2] == [name, True]
        qtbot.waitUntil(
            lambda w=wake: scheduler.next_wakeup_at is not None and scheduler.next_wakeup_at > w,
            timeout=10_000,
        )
        assert scheduler.next_wakeup_at - clock.now() > 40
        # Nothing else is due now: firing again early refreshes nothing.
        with qtbot.waitSignal(scheduler.rescheduled, timeout=10_000):
            scheduler.on_timer()
    assert short_sandbox.stats()["refresh_requests"] == 3
    scheduler.stop()


def test_short_token_is_not_shown_due_for_its_whole_life(
    qtbot: QtBot,
    service: TokenService,
    short_sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
) -> None:
    from tdgui.qt.main_window import MainWindow

    name = add_sandbox_account("short", url=short_sandbox.base_url)
    pending = service.begin_login(name)
    service.finish_login(pending, login_with_requests(pending.url, short_sandbox.certs.ca_file))
    controller = Controller(service)
    win = MainWindow(controller)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        controller.reload()
    view = win.status_view
    assert view.status is not None and view.status.state is AccountState.VALID
    assert "Tokens valid" in view.state_label.text()
    assert view.access.level == "valid"  # not amber from the first second
    controller.close_logins()

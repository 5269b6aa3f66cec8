"""Token operations in a `tdgui --ops-child` process: same results, typed errors, secrets kept."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from helpers.sandbox import add_sandbox_account, config_dir, start_sandbox
from tdgui.core.clock import SYSTEM_CLOCK, Clock, ManualClock
from tdgui.core.config import Config, sandbox_account
from tdgui.core.environment import Environment
from tdgui.core.errors import LoginFailed, LoginRequired, UsageError
from tdgui.core.ops import ChildOps
from tdgui.core.root import build_core
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    server = start_sandbox()
    yield server
    server.stop()


def child_ops(clock: Clock = SYSTEM_CLOCK) -> ChildOps:
    return ChildOps(Environment.from_os(), clock=clock, lead=lambda: 300.0)


def test_login_and_refresh_in_the_child_store_what_the_parent_reads(server: SandboxServer) -> None:
    add_sandbox_account(server, store="file")
    ops = child_ops()
    pending = ops.begin_login("demo")
    assert pending.state and pending.code_verifier and "state=" in pending.url
    times = ops.finish_login(pending, login_with_requests(pending.url, server.certs.ca_file))
    core = build_core(Environment.from_os())
    stored = core.service.read_tokens(core.config.account("demo"))
    assert stored is not None and stored.times() == times
    refreshed = ops.refresh("demo", force=True)
    assert refreshed.access_received_at > times.access_received_at
    assert server.stats()["code_exchanges"] == 1 and server.stats()["refresh_requests"] == 1
    assert core.service.status("demo").access_expires_at == refreshed.access_expires_at


def test_the_child_decides_on_the_parents_clock(server: SandboxServer) -> None:
    """A refresh that is not forced happens when it is due by the parent's (manual) clock."""
    add_sandbox_account(server, store="file")
    ops = child_ops()
    pending = ops.begin_login("demo")
    times = ops.finish_login(pending, login_with_requests(pending.url, server.certs.ca_file))
    assert ops.refresh("demo", force=False) == times  # not due: nothing sent
    assert server.stats()["refresh_requests"] == 0
    late = ManualClock(times.access_expires_at - 60)  # within the 5-minute lead
    assert child_ops(late).refresh("demo", force=False).access_received_at > times.access_received_at
    assert server.stats()["refresh_requests"] == 1


def test_errors_arrive_typed_and_without_secrets(server: SandboxServer) -> None:
    add_sandbox_account(server, store="file")
    ops = child_ops()
    with pytest.raises(LoginRequired, match="no tokens stored for 'demo'"):
        ops.refresh("demo", force=True)
    with pytest.raises(UsageError, match="no account named 'ghost'"):
        ops.refresh("ghost", force=False)
    pending = ops.begin_login("demo")
    forged = f"{pending.redirect_uri}?code=abc&state=not-{pending.state[:4]}"
    with pytest.raises(LoginFailed) as caught:
        ops.finish_login(pending, forged)
    assert pending.state not in str(caught.value)


def test_account_changes_in_the_child(server: SandboxServer) -> None:
    ops = child_ops()
    account = sandbox_account("kid", sandbox_url=server.base_url)
    ops.add_account(account, None)
    core = build_core(Environment.from_os())
    assert core.config.account("kid") == account
    with pytest.raises(UsageError, match="already exists"):
        ops.add_account(account, None)
    moved = ops.edit_account(dataclasses.replace(account, store="file"), None)
    assert not moved.moved and not moved.dropped  # no tokens yet: nothing to move
    ops.remove_account("kid")
    assert core.config.find("kid") is None
    assert not (config_dir() / "status" / "kid.json").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_cancelled_browser_login_ends_the_child(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_sandbox_account(server, store="file")
    Config().update_account("demo", callback_url=f"https://127.0.0.1:{free_port()}/")
    monkeypatch.setenv("BROWSER", "true")  # a browser that opens nothing: the login waits
    cancel = threading.Event()
    threading.Timer(1.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(LoginFailed, match="cancelled"):
        child_ops().browser_login("demo", timeout=60, cancel=cancel)
    assert time.monotonic() - started < 15


def test_a_browser_login_in_the_child_lets_the_parent_open_the_browser(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window offers the link to copy when no browser starts (issue 14, defect 10), so with
    an opener the child hands the start URL to the parent instead of starting a browser."""
    add_sandbox_account(server, store="file")
    Config().update_account("demo", callback_url=f"https://127.0.0.1:{free_port()}/")
    monkeypatch.setenv("BROWSER", "false")  # a browser the child started itself would do nothing
    ca = str(config_dir() / "sandbox" / "ca.pem")
    opened: list[str] = []
    callback_status: list[int] = []

    def open_browser(url: str) -> None:
        opened.append(url)

        def browse() -> None:
            with requests.Session() as http:
                redirect = login_with_requests(url, ca)
                callback_status.append(http.get(redirect, verify=ca, timeout=30).status_code)

        threading.Thread(target=browse, daemon=True).start()

    times = child_ops().browser_login("demo", timeout=60, cancel=threading.Event(), open_browser=open_browser)
    assert len(opened) == 1, opened
    assert "/tdgui-login/" in opened[0] and "state=" not in opened[0]
    assert callback_status == [200]
    core = build_core(Environment.from_os())
    stored = core.service.read_tokens(core.config.account("demo"))
    assert stored is not None and stored.times() == times
    assert server.stats()["code_exchanges"] == 1

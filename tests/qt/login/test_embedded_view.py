"""The embedded view's guards, through the path the product runs: LoginProcess → `tdgui --login-child`.

Every test starts the real child process (real QtWebEngine, offscreen) against a real HTTPS
sandbox; the sandbox's pages are driven by the test-only hooks (tdgui.qt.login.hooks). These
are the proof of docs/reliability.md's row 13: certificate errors refused except the pinned
sandbox leaf, off-list navigations blocked, popups refused, the callback caught before it is
loaded (nothing connects to the callback port), nothing written to disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tdgui.core.config import sandbox_account
from tdgui.core.login_outcome import LoginOutcome
from tdgui.core.service import TokenService
from tdgui.qt.login.hooks import TestHooks
from tdgui.qt.login.protocol import LoginSpec
from tdgui.sandbox import SandboxServer

from .helpers import AUTOFILL, Listener, free_port, run_login

#: Qt's warnings when a web engine teardown leaves a page behind its profile.
TEARDOWN_WARNINGS = ("still not deleted", "Release of profile")


def child_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.getMessage().startswith("login child:"))


@pytest.mark.parametrize("flavor", ["schwab", "tdameritrade"])
def test_full_login_callback_caught_before_load(
    qtbot: QtBot,
    service: TokenService,
    sandbox: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    flavor: str,
) -> None:
    # The callback on a port someone listens on: had the view loaded the callback, it would connect.
    listener = Listener()
    try:
        account = replace(
            sandbox_account("demo", flavor, sandbox_url=sandbox.base_url),
            callback_url=f"https://127.0.0.1:{listener.port}/",
        )
        service.config.add_account(account.validate())
        caplog.set_level(logging.DEBUG, logger="tdgui")
        login, result = run_login(qtbot, service, "demo", hooks=AUTOFILL)
        assert result.outcome is LoginOutcome.SUCCESS, result.message
        assert listener.connections() == 0
    finally:
        listener.close()
    assert login.child_result is not None
    assert login.child_result.certificate_pinned  # the sandbox's leaf, and only by its pin
    assert login.child_result.blocked == () and login.child_result.popups_refused == 0
    tokens = service.read_tokens(service.account("demo"))
    assert tokens is not None and result.times == tokens.times()
    assert sandbox.stats()["successful_code_exchanges"] == 1
    # The child tore its engine down in order (page before profile) and exited cleanly.
    assert login.process is not None and login.process.exitCode() == 0
    text = child_log(caplog)
    assert "login window for demo done: callback" in text
    assert not any(w in text for w in TEARDOWN_WARNINGS), text


def test_redirect_to_other_host_blocked(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    """A provider page that redirects off the list is stopped; the login goes on and succeeds."""
    name = add_sandbox_account()
    hooks = replace(AUTOFILL, visit=sandbox.base_url + "/_test/redirect-away")
    login, result = run_login(qtbot, service, name, hooks=hooks)
    assert result.outcome is LoginOutcome.SUCCESS, result.message
    assert login.child_result is not None
    assert login.child_result.blocked == ("https://example.invalid/phish",)
    assert any(path == "/_test/redirect-away" for _, path, _ in sandbox.requests)


def test_off_list_host_never_contacted(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    """A navigation to a host off the list (here `localhost`, a real listener) never connects."""
    name = add_sandbox_account()
    listener = Listener()
    try:
        target = f"https://localhost:{listener.port}/phish?state=x"
        login, result = run_login(qtbot, service, name, hooks=replace(AUTOFILL, visit=target))
        assert result.outcome is LoginOutcome.SUCCESS, result.message
        assert listener.connections() == 0
    finally:
        listener.close()
    assert login.child_result is not None
    # Reported without its query (a state or code is never shown or logged).
    assert login.child_result.blocked == (f"https://localhost:{listener.port}/phish",)


def test_popup_refused(
    qtbot: QtBot,
    service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The child's log (its hook steps) in the report if it fails: it hung at 90 s now and then
    # under load, cause not found yet.
    caplog.set_level(logging.DEBUG, logger="tdgui")
    name = add_sandbox_account()
    hooks = replace(AUTOFILL, visit=sandbox.base_url + "/_test/popup")
    login, result = run_login(qtbot, service, name, hooks=hooks)
    assert result.outcome is LoginOutcome.SUCCESS, result.message
    assert login.child_result is not None
    assert login.child_result.popups_refused == 1
    assert login.child_result.blocked == ()  # the popup's URL was never navigated to


def test_unknown_certificate_rejected(
    qtbot: QtBot, tmp_path: Path, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    """Another sandbox on the pinned host, with another leaf: refused before any HTTP request."""
    other = SandboxServer(tmp_path / "other-sandbox", port=0).start()
    try:
        name = add_sandbox_account(url=other.base_url)
        login, result = run_login(qtbot, service, name, hooks=AUTOFILL)
        assert result.outcome is LoginOutcome.CERTIFICATE, result.message
        assert "certificate" in result.message
        assert other.stats()["codes_issued"] == 0
        assert other.requests == []
    finally:
        other.stop()
    assert login.child_result is not None and not login.child_result.certificate_pinned
    assert service.read_tokens(service.account(name)) is None


def test_no_webengine_storage_on_disk(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str], scratch_home: Path
) -> None:
    """The child's HOME and XDG dirs are the session's scratch dirs: the off-the-record view wrote nothing."""
    name = add_sandbox_account()
    _, result = run_login(qtbot, service, name, hooks=AUTOFILL)
    assert result.ok, result.message
    leftovers = [
        p
        for p in scratch_home.rglob("*")
        if any(part in ("QtWebEngine", "Cookies", "Local Storage", "Cache") for part in p.parts)
    ]
    assert leftovers == []


def test_denied_keeps_earlier_tokens(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    assert run_login(qtbot, service, name, hooks=AUTOFILL)[1].ok
    before = service.read_tokens(service.account(name))
    _, result = run_login(qtbot, service, name, hooks=TestHooks(autofill=True, consent="deny"))
    assert result.outcome is LoginOutcome.DENIED, result.message
    assert service.read_tokens(service.account(name)) == before


def test_wrong_port(qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]) -> None:
    name = add_sandbox_account(url=f"https://127.0.0.1:{free_port()}")
    _, result = run_login(qtbot, service, name, hooks=AUTOFILL)
    assert result.outcome is LoginOutcome.NETWORK, result.message
    assert "Could not load" in result.message


def test_token_exchange_fails(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    sandbox.set_fault("500", 10)  # token requests only: the pages still work
    login, result = run_login(qtbot, service, name, hooks=AUTOFILL)
    assert login.child_outcome == "callback"  # the view did its part; the exchange failed here
    assert result.outcome is LoginOutcome.NETWORK, result.message
    assert service.read_tokens(service.account(name)) is None


def test_scripts_refused_outside_sandbox(qtbot: QtBot) -> None:
    """The window runs no script on a page that is not the pinned sandbox's (a real broker's)."""
    from tdgui.qt.login.window import LoginWindow

    spec = LoginSpec(
        account="a",
        url="https://api.schwabapi.com/v1/oauth/authorize",
        redirect_uri="https://127.0.0.1:8182/",
        login_domains=("api.schwabapi.com",),
        provider="schwab",
    )
    win = LoginWindow(spec)
    qtbot.addWidget(win)
    with pytest.raises(RuntimeError):
        win.run_sandbox_script("1")

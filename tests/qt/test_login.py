"""The login window against a real sandbox: full logins, every failure path, the navigation guards."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from tdgui.core.service import TokenService
from tdgui.qt.login import LoginOutcome, LoginResult, LoginWindow
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests

from .conftest import CLICK_ALLOW, CLICK_DENY, DEMO_FILL


def open_login(qtbot: QtBot, service: TokenService, name: str, **kw: float) -> LoginWindow:
    win = LoginWindow(service, name, **kw)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.page_loaded, timeout=15_000):
        win.start()
    return win


def submit_login(qtbot: QtBot, win: LoginWindow) -> None:
    with qtbot.waitSignal(win.page_loaded, timeout=10_000):
        win.run_sandbox_script(DEMO_FILL)


def finish(qtbot: QtBot, win: LoginWindow, script: str) -> LoginResult:
    with qtbot.waitSignal(win.finished, timeout=15_000) as blocker:
        win.run_sandbox_script(script)
    result = blocker.args[0]
    assert isinstance(result, LoginResult)
    return result


@pytest.mark.parametrize("flavor", ["schwab", "tdameritrade"])
def test_full_login(
    qtbot: QtBot,
    service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
    flavor: str,
) -> None:
    name = add_sandbox_account("demo", flavor)
    # Nothing may connect to the callback port: listen there and check no one came.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", urlsplit(service.account(name).callback_url).port or 0))
        listener.listen(4)
        listener.setblocking(False)
    except OSError:
        listener.close()
        listener = None  # type: ignore[assignment]
    try:
        win = open_login(qtbot, service, name)
        assert win.profile is not None and win.profile.isOffTheRecord()
        assert "127.0.0.1" in win.address.text() and "?" not in win.address.text()
        assert "TLS" in win.tls_label.text()
        profile, page = win.profile, win.page
        submit_login(qtbot, win)
        result = finish(qtbot, win, CLICK_ALLOW)
        assert result.outcome is LoginOutcome.SUCCESS, result.message
        assert "Logged in" in win.message.text()
        if listener is not None:
            with pytest.raises(BlockingIOError):
                listener.accept()
    finally:
        if listener is not None:
            listener.close()
    tokens = service.read_tokens(service.account(name))
    assert tokens is not None and tokens.access_token == result.tokens.access_token  # type: ignore[union-attr]
    assert sandbox.stats()["successful_code_exchanges"] == 1
    # The web engine is torn down after the login.
    assert win.view is None and win.page is None and win.profile is None
    with qtbot.waitSignals([page.destroyed, profile.destroyed], timeout=5_000):
        pass


def test_cancel_leaves_tokens(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    win = open_login(qtbot, service, name)
    with qtbot.waitSignal(win.finished) as blocker:
        win.cancel_button.click()
    assert blocker.args[0].outcome is LoginOutcome.CANCELLED
    assert "cancelled" in win.message.text()
    assert service.read_tokens(service.account(name)) is None
    assert win.view is None


def test_close_window(qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]) -> None:
    name = add_sandbox_account()
    win = open_login(qtbot, service, name)
    submit_login(qtbot, win)
    with qtbot.waitSignal(win.finished) as blocker:
        win.close()
    assert blocker.args[0].outcome is LoginOutcome.CLOSED
    assert service.read_tokens(service.account(name)) is None


def test_deny_consent(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    win = open_login(qtbot, service, name)
    submit_login(qtbot, win)
    result = finish(qtbot, win, CLICK_DENY)
    assert result.outcome is LoginOutcome.DENIED
    assert "denied" in win.message.text()
    assert service.read_tokens(service.account(name)) is None
    assert sandbox.stats()["code_exchanges"] == 0


def test_denied_keeps_earlier_tokens(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    win = open_login(qtbot, service, name)
    submit_login(qtbot, win)
    assert finish(qtbot, win, CLICK_ALLOW).ok
    before = service.read_tokens(service.account(name))
    win2 = open_login(qtbot, service, name)
    submit_login(qtbot, win2)
    assert finish(qtbot, win2, CLICK_DENY).outcome is LoginOutcome.DENIED
    assert service.read_tokens(service.account(name)) == before


def test_sandbox_stopped(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    sandbox.stop()
    win = LoginWindow(service, name)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.finished, timeout=15_000) as blocker:
        win.start()
    result = blocker.args[0]
    assert result.outcome is LoginOutcome.NETWORK, result.message
    assert "Could not load" in win.message.text()
    assert service.read_tokens(service.account(name)) is None


def test_wrong_port(qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    name = add_sandbox_account(url=f"https://127.0.0.1:{free}")
    win = LoginWindow(service, name)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.finished, timeout=15_000) as blocker:
        win.start()
    assert blocker.args[0].outcome is LoginOutcome.NETWORK


def test_token_exchange_fails(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    win = open_login(qtbot, service, name)
    submit_login(qtbot, win)
    sandbox.set_fault("500", 10)
    result = finish(qtbot, win, CLICK_ALLOW)
    assert result.outcome is LoginOutcome.NETWORK, result.message
    assert service.read_tokens(service.account(name)) is None


def test_timeout(qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]) -> None:
    name = add_sandbox_account()
    win = open_login(qtbot, service, name, timeout=1.0)
    with qtbot.waitSignal(win.finished, timeout=10_000) as blocker:
        pass
    assert blocker.args[0].outcome is LoginOutcome.TIMEOUT
    assert "within 1 s" in win.message.text()
    assert win.view is None


def test_redirect_to_other_host_blocked(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    win = open_login(qtbot, service, name)
    assert win.page is not None
    win.page.setUrl(QUrl(sandbox.base_url + "/_test/redirect-away"))
    qtbot.waitUntil(lambda: bool(win.blocked), timeout=10_000)
    assert win.blocked == ["https://example.invalid/phish"]
    assert "Blocked" in win.message.text() and "example.invalid" in win.message.text()
    assert win.result is None  # the login can still go on
    assert win.page.url().host() != "example.invalid"


def test_popup_refused(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    win = open_login(qtbot, service, name)
    assert win.page is not None
    with qtbot.waitSignal(win.page_loaded, timeout=10_000):
        win.page.setUrl(QUrl(sandbox.base_url + "/_test/popup"))
    qtbot.waitUntil(lambda: win.popups_refused > 0, timeout=10_000)
    assert "popups" in win.message.text()


def test_unknown_certificate_rejected(
    qtbot: QtBot, tmp_path: Path, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    other = SandboxServer(tmp_path / "other-sandbox", port=0).start()
    try:
        name = add_sandbox_account(url=other.base_url)
        win = LoginWindow(service, name)
        qtbot.addWidget(win)
        with qtbot.waitSignal(win.finished, timeout=15_000) as blocker:
            win.start()
        result = blocker.args[0]
        assert result.outcome is LoginOutcome.CERTIFICATE, result.message
        assert "certificate" in win.message.text()
        assert other.stats()["codes_issued"] == 0
        assert not any(path.startswith("/v1/oauth/authorize") for _, path, _ in other.requests)
    finally:
        other.stop()
    assert service.read_tokens(service.account(name)) is None


def test_no_webengine_storage_on_disk(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str], scratch_home: Path
) -> None:
    name = add_sandbox_account()
    win = open_login(qtbot, service, name)
    submit_login(qtbot, win)
    assert finish(qtbot, win, CLICK_ALLOW).ok
    leftovers = [
        p
        for p in scratch_home.rglob("*")
        if any(part in ("QtWebEngine", "Cookies", "Local Storage", "Cache") for part in p.parts)
    ]
    assert leftovers == []


def test_scripts_refused_outside_sandbox(qtbot: QtBot, service: TokenService) -> None:
    win = LoginWindow(service, "nobody")
    qtbot.addWidget(win)
    with pytest.raises(RuntimeError):
        win.run_sandbox_script("1")


class FakeBrowser(QObject):
    """Stands in for the system browser: logs in on the sandbox's pages, then follows the redirect."""

    def __init__(self, ca_file: str) -> None:
        super().__init__()
        self.ca_file = ca_file
        self.opened: list[str] = []
        self.threads: list[threading.Thread] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        text = url.toString(QUrl.ComponentFormattingOption.FullyEncoded)
        self.opened.append(text)

        def browse() -> None:
            redirect = login_with_requests(text, self.ca_file)
            requests.get(redirect, verify=self.ca_file, timeout=10)

        thread = threading.Thread(target=browse, daemon=True)
        thread.start()
        self.threads.append(thread)


def test_log_in_with_system_browser(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    browser = FakeBrowser(str(sandbox.certs.ca_file))
    QDesktopServices.setUrlHandler("https", browser, "open")  # type: ignore[arg-type]
    try:
        win = open_login(qtbot, service, name)
        profile = win.profile
        with qtbot.waitSignal(win.finished, timeout=20_000) as blocker:
            win.browser_button.click()
            assert win.view is None  # the embedded view is gone at once
        result = blocker.args[0]
        assert result.outcome is LoginOutcome.SUCCESS, result.message
        assert len(browser.opened) == 1 and browser.opened[0].startswith(sandbox.base_url)
        assert service.read_tokens(service.account(name)) is not None
        assert profile is not None
    finally:
        QDesktopServices.unsetUrlHandler("https")
        for thread in browser.threads:
            thread.join(10)

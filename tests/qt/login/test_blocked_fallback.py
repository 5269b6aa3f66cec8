"""A blocked main-frame navigation is never a dead end: the window names the host and offers the browser.

Through the real login child (QtWebEngine offscreen) on the real HTTPS sandbox; the child's
test hooks press "Continue in my browser" as a user would, and a stand-in system browser
finishes the login on the sandbox's pages.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from tdgui.core.login_outcome import LoginOutcome
from tdgui.core.service import TokenService
from tdgui.qt.login.hooks import TestHooks
from tdgui.qt.login.protocol import LoginSpec
from tdgui.sandbox import SandboxServer

from .helpers import FakeBrowser, run_login


def test_blocked_redirect_offers_the_browser_and_the_login_finishes_there(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    name = add_sandbox_account()
    browser = FakeBrowser(str(sandbox.certs.ca_file))
    QDesktopServices.setUrlHandler("https", browser, "open")  # type: ignore[arg-type]
    try:
        # The provider's page redirects off its domains: blocked, then one click on the button.
        hooks = TestHooks(visit=sandbox.base_url + "/_test/redirect-away", continue_when_blocked=True)
        login, result = run_login(qtbot, service, name, hooks=hooks)
        assert result.outcome is LoginOutcome.SUCCESS, result.message
    finally:
        QDesktopServices.unsetUrlHandler("https")
        for thread in browser.threads:
            thread.join(10)
    assert login.child_outcome == "browser"
    assert login.child_result is not None
    assert login.child_result.blocked == ("https://example.invalid/phish",)
    # The one-time start URL on the loopback listener (issue 11 #10, row 27); it redirected there.
    callback = service.account(name).callback_url.rstrip("/")
    assert len(browser.opened) == 1 and browser.opened[0].startswith(callback + "/tdgui-login/")
    assert service.read_tokens(service.account(name)) is not None


def test_blocked_message_names_the_host_and_shows_the_button(qtbot: QtBot) -> None:
    """The window itself: the message says which host, the button is there and asks for the browser."""
    from tdgui.qt.login.window import LoginWindow

    spec = LoginSpec(
        account="a",
        url="https://api.schwabapi.com/v1/oauth/authorize",
        redirect_uri="https://127.0.0.1:8182/",
        login_domains=("schwabapi.com", "schwab.com"),
        provider="schwab",
    )
    win = LoginWindow(spec)
    qtbot.addWidget(win)
    win.show()
    assert not win.continue_button.isVisible()
    win._on_blocked("https://login.evil.test/phish")
    assert "login.evil.test" in win.message.text()
    assert win.continue_button.isVisible()
    with qtbot.waitSignal(win.done, timeout=5_000) as blocker:
        win.continue_button.click()
    assert blocker.args[0].kind.value == "browser"
    assert blocker.args[0].blocked == ("https://login.evil.test/phish",)

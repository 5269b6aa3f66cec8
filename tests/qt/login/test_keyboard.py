"""Issue 14, defect 10 (login window part): first focus in the page, Escape cancels, Tab goes from
the page to the buttons, no Tab stop on the read-only address; the browser wait window offers
the link to copy and Escape closes it.

The login window runs here (the class the login child shows) on the real sandbox's page.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tdgui.core.login_outcome import LoginOutcome
from tdgui.core.ops import InProcessOps
from tdgui.core.service import TokenService
from tdgui.qt.login.browser_wait import BrowserWaitWindow
from tdgui.qt.login.prepare import prepare
from tdgui.qt.login.protocol import ResultKind
from tdgui.qt.login.window import LoginWindow
from tdgui.sandbox import SandboxServer

from .helpers import start_login


def open_window(qtbot: QtBot, service: TokenService, name: str) -> LoginWindow:
    spec = prepare(service, InProcessOps(service), name).spec(name, 120.0)
    win = LoginWindow(spec)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.page_loaded, timeout=30_000):
        win.start()
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5_000)
    return win


def in_page(win: LoginWindow) -> bool:
    view = win.view
    assert view is not None
    focused = win.focusWidget()
    return focused is view or (focused is not None and view.isAncestorOf(focused))


def test_focus_starts_in_the_page_and_tab_goes_to_the_buttons(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    win = open_window(qtbot, service, add_sandbox_account("alpha"))
    assert in_page(win), win.focusWidget()
    assert not (win.address.focusPolicy() & Qt.FocusPolicy.TabFocus)
    assert win.address.accessibleName()
    # Tab from the page: the buttons, in order, never the address line; then back to the page.
    order = []
    for _ in range(3):
        win.focusNextChild()
        order.append(win.focusWidget())
    assert order[:2] == [win.browser_button, win.cancel_button]
    assert win.address not in order
    assert in_page(win)
    win.close()


def test_escape_cancels_the_login_window(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    win = open_window(qtbot, service, add_sandbox_account("alpha"))
    target = win.focusWidget()
    assert target is not None
    with qtbot.waitSignal(win.done, timeout=10_000) as blocker:
        qtbot.keyClick(target, Qt.Key.Key_Escape)
    result = blocker.args[0]
    assert result.kind is ResultKind.ENDED and result.outcome is LoginOutcome.CANCELLED


def test_browser_wait_offers_the_link_and_escape_closes_it(qtbot: QtBot) -> None:
    win = BrowserWaitWindow("alpha")
    qtbot.addWidget(win)
    win.show()
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5_000)
    url = "https://127.0.0.1:9/authorize?client_id=x&state=y"
    win.show_url(url, opened=False)
    assert win.link.text() == url and win.link.isVisible() and win.link.isReadOnly()
    assert "Could not start a web browser" in win.message.text()
    assert win.focusWidget() is win.copy_button and win.copy_button.isDefault()
    win.copy_button.click()
    assert QApplication.clipboard().text() == url
    with qtbot.waitSignal(win.cancel_requested, timeout=5_000):
        qtbot.keyClick(win.copy_button, Qt.Key.Key_Escape)
    assert not win.isVisible()


# The offscreen platform's way of saying it opened nothing: what this test is about.
@pytest.mark.qt_log_ignore("does not support QPlatformServices::openUrl")
def test_no_browser_opens_the_wait_window_offers_the_link(
    qtbot: QtBot, service: TokenService, sandbox: SandboxServer, add_sandbox_account: Callable[..., str]
) -> None:
    """Through the real login child: "Log in with my browser instead" where no browser can start
    (the offscreen platform opens no URL) shows the link to copy instead of failing silently."""
    name = add_sandbox_account()
    login = start_login(qtbot, service, name)
    login.use_system_browser()
    window = login.browser_window
    assert window is not None
    # The one-time start URL on tdgui's own listener (row 27), which forwards to the sandbox.
    qtbot.waitUntil(lambda: "/tdgui-login/" in window.link.text(), timeout=15_000)
    assert "Could not start a web browser" in window.message.text()
    with qtbot.waitSignal(login.finished, timeout=15_000):
        qtbot.keyClick(window.copy_button, Qt.Key.Key_Escape)  # Escape: the browser login is cancelled
    assert login.result is not None and login.result.outcome is LoginOutcome.CANCELLED

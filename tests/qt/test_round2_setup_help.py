"""Issue 14, build 2: the guided Schwab setup, and a failed first login explained in the window.

Each failure is played by the real sandbox (its control API) through the real login child
(QtWebEngine offscreen): the app not ready (a 401 Whitelabel Error Page on authorize), a
callback mismatch (an error page on authorize), a wrong secret (invalid_client on the code
exchange). The window's words are tdgui.core.first_login's, which the CLI prints too.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from tdgui.core.first_login import EXPLANATIONS, SCHWAB_APPS_URL, TDA_RETIRED, SetupProblem
from tdgui.core.login_outcome import LoginOutcome, LoginResult
from tdgui.qt.controller import Controller
from tdgui.qt.main_window import MainWindow
from tdgui.qt.setup_help import SetupHelp
from tdgui.sandbox import SandboxServer

from .login.helpers import LOGIN_TIMEOUT_MS
from .test_round2_accessibility import nameless


def make_window(qtbot: QtBot, controller: Controller) -> MainWindow:
    win = MainWindow(controller)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(controller.statuses_changed, timeout=10_000):
        controller.reload()
    return win


def control(sandbox: SandboxServer, path: str, body: dict[str, object]) -> None:
    r = requests.post(
        sandbox.base_url + path,
        json=body,
        headers=sandbox.control_headers,
        verify=sandbox.certs.ca_file,
        timeout=5,
    )
    assert r.status_code == 200, r.text


class UrlRecorder(QObject):
    """The system browser, as Qt sees it: QDesktopServices hands https URLs to this handler."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url.toString())


@pytest.mark.parametrize(
    ("fault", "autofill", "problem"),
    [
        (("/_sandbox/page-fault", "app_not_ready"), False, SetupProblem.APP_NOT_READY),
        (("/_sandbox/page-fault", "callback_mismatch"), False, SetupProblem.CALLBACK_MISMATCH),
        (("/_sandbox/fault", "wrong_secret"), True, SetupProblem.SECRET_REJECTED),
    ],
)
def test_first_login_failure_opens_the_setup_help_with_its_explanation(
    qtbot: QtBot,
    controller: Controller,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
    fault: tuple[str, str],
    autofill: bool,
    problem: SetupProblem,
) -> None:
    name = add_sandbox_account("first")
    window = make_window(qtbot, controller)
    control(sandbox, fault[0], {"kind": fault[1]})
    with qtbot.waitSignal(controller.login_finished, timeout=LOGIN_TIMEOUT_MS) as blocker:
        controller.open_login(name, autofill_sandbox=autofill)
    result: LoginResult = blocker.args[0]
    explanation = EXPLANATIONS[problem]
    assert result.outcome is LoginOutcome.FAILED, result.message
    assert explanation.headline in result.message
    help_window = window.setup_help_on_failure.help
    assert isinstance(help_window, SetupHelp) and help_window.isVisible()
    assert help_window.problem is problem
    shown = help_window.problem_label.accessibleName()  # the label's text without its markup
    assert (
        explanation.headline in shown
        and explanation.advice in shown
        and help_window.problem_label.isVisible()
    )
    assert help_window.callback.text() == controller.service.account(name).callback_url
    # The status view says the same words (no raw error code).
    assert explanation.headline in window.status_view.message.text()
    assert "invalid_client" not in window.status_view.message.text()
    help_window.close()


def test_a_cancelled_login_opens_no_help(qtbot: QtBot, controller: Controller) -> None:
    window = make_window(qtbot, controller)
    controller.login_finished.emit(LoginResult("x", LoginOutcome.CANCELLED, "The login was cancelled.", 1.0))
    controller.login_finished.emit(LoginResult("x", LoginOutcome.SUCCESS, "Logged in.", 1.0))
    assert window.setup_help_on_failure.help is None


def test_setup_help_from_the_account_dialog_and_the_welcome_page(
    qtbot: QtBot, controller: Controller
) -> None:
    recorder = UrlRecorder()
    QDesktopServices.setUrlHandler("https", recorder, "open")
    try:
        window = make_window(qtbot, controller)
        assert window.stack.currentWidget() is window.welcome
        window.setup_help_button.click()
        welcome_help = window.findChild(SetupHelp)
        assert welcome_help is not None and welcome_help.isVisible()
        welcome_help.close()
        dialog = window.open_add_dialog()
        dialog.callback.setText("https://127.0.0.1:8765/")
        dialog.setup_help_button.click()
        help_window = dialog.setup_help
        assert isinstance(help_window, SetupHelp) and help_window.isVisible()
        text = help_window.steps.text()
        for fact in (
            "Ready For Use",
            "Approved - Pending",
            "127.0.0.1",
            "character for character",
            "View Details",
        ):
            assert fact in text, fact
        assert help_window.callback.text() == "https://127.0.0.1:8765/"
        assert not help_window.problem_label.isVisible()  # no failure yet, nothing to explain
        assert nameless(help_window) == []
        help_window.portal_button.click()
        help_window.steps.linkActivated.emit("https://developer.schwab.com")
        assert recorder.urls == [SCHWAB_APPS_URL, "https://developer.schwab.com"]
        help_window.copy_callback.click()
        from PySide6.QtWidgets import QApplication

        assert QApplication.clipboard().text() == "https://127.0.0.1:8765/"
        help_window.close()
        dialog.reject()
    finally:
        QDesktopServices.unsetUrlHandler("https")


def test_td_ameritrade_says_the_api_is_retired(qtbot: QtBot) -> None:
    help_window = SetupHelp(None, provider="tdameritrade")
    qtbot.addWidget(help_window)
    help_window.show()
    assert help_window.problem_label.isVisible()
    assert "May 2024" in help_window.problem_label.text()
    assert help_window.problem_label.text() == TDA_RETIRED

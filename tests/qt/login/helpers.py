"""Helpers for the login tests: start a real login child through LoginProcess and wait for its end."""

from __future__ import annotations

import os
import socket
import threading

import pytest
import requests
from PySide6.QtCore import QObject, QUrl, Slot
from pytestqt.qtbot import QtBot

from tdgui.core.login_outcome import LoginResult
from tdgui.core.service import TokenService
from tdgui.qt.login.hooks import TestHooks
from tdgui.qt.login.parent import LoginProcess
from tdgui.sandbox.driver import login_with_requests

LOGIN_TIMEOUT_MS = 90_000  # a whole QtWebEngine login on 2 loaded cores took over 30 s once
#: the child fills demo/demo and allows (test hooks, sandbox only)
AUTOFILL = TestHooks(autofill=True)


#: Logins a test started; shut down (child ended, not just abandoned) when the test ends, as the
#: app's controller does, so no QProcess is destroyed while its child still runs.
STARTED: list[LoginProcess] = []


def shut_down_started_logins() -> None:
    while STARTED:
        STARTED.pop().shutdown()


def start_login(
    qtbot: QtBot, service: TokenService, name: str, *, hooks: TestHooks | None = None, timeout: float = 600.0
) -> LoginProcess:
    login = LoginProcess(service, name, timeout=timeout, test_hooks=hooks)
    STARTED.append(login)
    with qtbot.waitSignal(login.child_started, timeout=15_000):
        login.start()
    return login


def run_login(
    qtbot: QtBot, service: TokenService, name: str, *, hooks: TestHooks | None = None, timeout: float = 600.0
) -> tuple[LoginProcess, LoginResult]:
    """A whole login through the real child; returns once the child has exited too."""
    login = LoginProcess(service, name, timeout=timeout, test_hooks=hooks)
    try:
        with qtbot.waitSignal(login.finished, timeout=LOGIN_TIMEOUT_MS):
            login.start()
    finally:
        if login.result is None:
            login.shutdown()  # a test that timed out leaves no child behind
    wait_child_gone(qtbot, login)
    assert login.result is not None
    return login, login.result


def wait_result(qtbot: QtBot, login: LoginProcess, timeout: int = LOGIN_TIMEOUT_MS) -> LoginResult:
    if login.result is None:
        with qtbot.waitSignal(login.finished, timeout=timeout):
            pass
    assert login.result is not None
    return login.result


def wait_child_gone(qtbot: QtBot, login: LoginProcess) -> None:
    if login.pid is None:
        return  # never started (failed before the child ran)
    qtbot.waitUntil(lambda: not login.is_running(), timeout=10_000)
    with pytest.raises(ProcessLookupError):
        os.kill(login.pid, 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Listener:
    """A TCP listener on a free 127.0.0.1 port that counts who connected (nobody should)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    def connections(self) -> int:
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()


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

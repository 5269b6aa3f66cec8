"""Row 24 (issue 11 #10): the browser login's listener waits for *its* redirect.

A favicon request, a prefetch of another path and a callback carrying another login's state
(another local user's injected code) reach the listener first. Must hold: each gets a 404 and
is forgotten, the forged code is never exchanged, and the real redirect that follows completes
the login.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from helpers.sandbox import add_sandbox_account, config_dir, free_callback_url, start_sandbox
from tdgui.core.config import Config
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    server = start_sandbox()
    yield server
    server.stop()


def test_wrong_requests_are_ignored_until_the_right_one(server: SandboxServer, figure) -> None:
    add_sandbox_account(server, store="file")
    callback = free_callback_url()
    Config().update_account("demo", callback_url=callback)
    ca = str(config_dir() / "sandbox" / "ca.pem")
    answers: list[int] = []
    problems: list[BaseException] = []

    def browser(url: str) -> None:
        def run() -> None:
            try:
                with requests.Session() as http:
                    for stray in ("favicon.ico", "?code=forged-by-another-user&state=not-this-login", ""):
                        answers.append(http.get(callback + stray, verify=ca, timeout=10).status_code)
                    redirect = login_with_requests(url, ca)
                    answers.append(http.get(redirect, verify=ca, timeout=10).status_code)
            except BaseException as exc:  # reported by the test, not lost in the thread
                problems.append(exc)

        threading.Thread(target=run, daemon=True).start()

    tokens = TokenService(Config()).browser_login("demo", browser, timeout=60)
    assert not problems, problems
    assert answers == [404, 404, 404, 200], answers
    assert tokens.access_token
    assert server.stats()["code_exchanges"] == 1  # the forged code was never sent anywhere
    figure(
        "row 24: favicon, bare callback and a forged-state callback each got 404; the real redirect logged in"
    )

"""Issue 14, build 2: the sandbox plays a first login's setup failures, through its control API."""

from __future__ import annotations

import pytest
import requests

from tdgui.core import first_login
from tdgui.core.first_login import SetupProblem
from tdgui.sandbox import SandboxServer

from .support import control, get, query, schwab_login, schwab_token


def authorize_page(srv: SandboxServer) -> requests.Response:
    url = srv.authorize_url("schwab", state="st4te")
    return requests.get(url, verify=srv.certs.ca_file, timeout=5, allow_redirects=False)


def test_app_not_ready_page_is_a_401_whitelabel_page_once(server: SandboxServer) -> None:
    assert control(server, "/_sandbox/page-fault", {"kind": "app_not_ready"}).status_code == 200
    page = authorize_page(server)
    assert page.status_code == 401
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Whitelabel Error Page" in page.text
    assert "status=401" in page.text
    assert first_login.recognise_page(page.status_code, page.text) is SetupProblem.APP_NOT_READY
    # One fault, one page: the next authorize request is the login form again.
    again = authorize_page(server)
    assert again.status_code == 200 and "password" in again.text
    assert first_login.recognise_page(again.status_code, again.text) is None


def test_callback_mismatch_page(server: SandboxServer) -> None:
    assert (
        control(server, "/_sandbox/page-fault", {"kind": "callback_mismatch", "count": 2}).status_code == 200
    )
    for _ in range(2):
        page = authorize_page(server)
        assert page.status_code == 400
        assert first_login.recognise_page(page.status_code, page.text) is SetupProblem.CALLBACK_MISMATCH
    assert authorize_page(server).status_code == 200


def test_page_faults_need_the_run_secret_and_a_known_kind(server: SandboxServer) -> None:
    assert (
        control(server, "/_sandbox/page-fault", {"kind": "app_not_ready"}, secret="guess").status_code == 403
    )
    assert authorize_page(server).status_code == 200  # nothing was queued
    bad = control(server, "/_sandbox/page-fault", {"kind": "teapot"})
    assert bad.status_code == 400 and "unknown page fault" in bad.text
    control(server, "/_sandbox/page-fault", {"kind": "app_not_ready"})
    control(server, "/_sandbox/clear-faults")
    assert authorize_page(server).status_code == 200  # clear-faults clears page faults too


@pytest.mark.parametrize(
    ("kind", "status", "problem"),
    [
        ("app_not_ready", 401, SetupProblem.APP_NOT_READY),
        ("access_denied_page", 403, SetupProblem.APP_NOT_READY),
        ("wrong_secret", 401, None),
    ],
)
def test_token_endpoint_setup_faults(
    server: SandboxServer, kind: str, status: int, problem: SetupProblem | None
) -> None:
    code = schwab_login(server)
    assert control(server, "/_sandbox/fault", {"kind": kind}).status_code == 200
    answer = schwab_token(
        server,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://127.0.0.1:8182/"},
    )
    assert answer.status_code == status
    if kind == "wrong_secret":
        # What Schwab answers a code exchange with a secret that is not the app's (go-schwab #26).
        assert answer.json() == {"error": "invalid_client", "error_description": "Unauthorized"}
    else:
        assert answer.headers["Content-Type"].startswith("text/html")
        assert first_login.recognise_page(answer.status_code, answer.text) is problem


def test_page_fault_leaves_the_login_itself_working(server: SandboxServer) -> None:
    """After the app is "ready" (the fault used up) a login completes: the fault is one page."""
    control(server, "/_sandbox/page-fault", {"kind": "app_not_ready"})
    assert authorize_page(server).status_code == 401
    assert query(server.authorize_url("schwab"))  # the URL itself is unchanged
    code = schwab_login(server)
    assert code.startswith("C0.")
    assert get(server, "/").status_code == 200

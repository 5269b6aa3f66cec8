"""Issue 14, build 2: `tdgui login` explains a first login's setup failures in plain words.

Real `python -m tdgui` processes against the real sandbox, whose control API plays each
failure (tdgui/sandbox/faults.py): the words are those of tdgui.core.first_login, which the
desktop app shows too.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from helpers.sandbox import config_dir, free_callback_url, start_sandbox
from tdgui.core.first_login import EXPLANATIONS, TDA_RETIRED, SetupProblem
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests

from .test_cli import PY, env_with, ok, tdgui

NOT_READY = EXPLANATIONS[SetupProblem.APP_NOT_READY].headline
MISMATCH = EXPLANATIONS[SetupProblem.CALLBACK_MISMATCH].headline
SECRET = EXPLANATIONS[SetupProblem.SECRET_REJECTED].headline


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = start_sandbox()
    yield server
    server.stop()


def ca() -> str:
    return str(config_dir() / "sandbox" / "ca.pem")


def add_account(server: SandboxServer, name: str = "first") -> None:
    ok(
        "accounts", "add", name, "--provider", "sandbox", "--flavor", "schwab",
        "--sandbox-url", server.base_url, "--store", "file", "--callback-url", free_callback_url(),
    )  # fmt: skip


def control(server: SandboxServer, path: str, body: dict[str, object]) -> None:
    r = requests.post(
        server.base_url + path, json=body, headers=server.control_headers, verify=ca(), timeout=5
    )
    assert r.status_code == 200, r.text


def manual_login(name: str, answer: object) -> subprocess.CompletedProcess[str]:
    """`tdgui login NAME --manual`; `answer(url)` is what the user pastes."""
    proc = subprocess.Popen(
        [PY, "-m", "tdgui", "login", name, "--manual"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with(),
    )
    assert proc.stdout is not None
    try:
        url = proc.stdout.readline().strip()
        pasted = answer(url)  # type: ignore[operator]
        out, err = proc.communicate(pasted + "\n", timeout=90)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, url + "\n" + out, err)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # an explained error is still one line
    assert lines[0].startswith("tdgui: "), lines
    return lines[0]


def stuck_on_page(status: int) -> object:
    """The user opens the URL, sees the broker's error page and pastes its address."""

    def answer(url: str) -> str:
        page = requests.get(url, verify=ca(), timeout=10)
        assert page.status_code == status, page.text
        return url

    return answer


def test_app_not_ready_page(sandbox: SandboxServer) -> None:
    add_account(sandbox)
    control(sandbox, "/_sandbox/page-fault", {"kind": "app_not_ready"})
    result = manual_login("first", stuck_on_page(401))
    assert result.returncode == 2
    line = one_line(result)
    assert "stopped on Schwab's page" in line
    assert NOT_READY in line and "Ready For Use" in line and "Approved - Pending" in line


def test_callback_mismatch_page(sandbox: SandboxServer) -> None:
    add_account(sandbox)
    control(sandbox, "/_sandbox/page-fault", {"kind": "callback_mismatch"})
    result = manual_login("first", stuck_on_page(400))
    assert result.returncode == 2
    line = one_line(result)
    assert MISMATCH in line and "character for character" in line


def test_wrong_secret_on_the_code_exchange(sandbox: SandboxServer) -> None:
    add_account(sandbox)
    control(sandbox, "/_sandbox/fault", {"kind": "wrong_secret"})
    result = manual_login("first", lambda url: login_with_requests(url, ca()))
    assert result.returncode == 1
    line = one_line(result)
    assert "invalid_client" in line  # the provider's own code stays, for a bug report
    assert SECRET in line and "regenerated" in line


def test_app_not_ready_on_the_token_endpoint(sandbox: SandboxServer) -> None:
    add_account(sandbox)
    control(sandbox, "/_sandbox/fault", {"kind": "app_not_ready", "count": 5})
    result = manual_login("first", lambda url: login_with_requests(url, ca()))
    assert result.returncode != 0
    assert NOT_READY in one_line(result)


def test_a_successful_login_says_nothing_more(sandbox: SandboxServer) -> None:
    add_account(sandbox)
    result = manual_login("first", lambda url: login_with_requests(url, ca()))
    assert result.returncode == 0, result.stderr
    for headline in (NOT_READY, MISMATCH, SECRET):
        assert headline not in result.stderr


def test_td_ameritrade_login_failure_says_the_api_is_retired() -> None:
    ok(
        "accounts", "add", "old", "--provider", "tdameritrade", "--client-id", "OLDKEY",
        "--callback-url", "https://127.0.0.1:8182/", "--store", "file",
    )  # fmt: skip
    # The callback comes back without the login's state (nothing reaches TD Ameritrade).
    result = manual_login("old", lambda url: "https://127.0.0.1:8182/?code=x&state=forged")
    assert result.returncode == 1
    line = one_line(result)
    assert TDA_RETIRED in line and "May 2024" in line


def test_browser_login_that_never_returns_says_what_the_page_may_mean(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """`--browser`: the browser shows the Whitelabel page, no callback comes, the wait ends."""
    add_account(sandbox, "web")
    control(sandbox, "/_sandbox/page-fault", {"kind": "app_not_ready"})
    seen = tmp_path / "status"
    browser = tmp_path / "browser"
    browser.write_text(
        f"#!{PY}\n"
        "import sys, requests\n"
        f"r = requests.get(sys.argv[1], verify={ca()!r}, timeout=10)\n"
        f"open({str(seen)!r}, 'w').write(str(r.status_code))\n"
    )
    browser.chmod(0o700)
    result = tdgui("login", "web", "--browser", "--timeout", "3", env=env_with(BROWSER=str(browser)))
    assert result.returncode == 1
    assert seen.read_text() == "401"
    line = result.stderr.strip().splitlines()[-1]
    assert "no redirect reached" in line and "If the login stopped on Schwab's page" in line
    assert NOT_READY in line and MISMATCH in line

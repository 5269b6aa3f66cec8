"""Row 27 (issue 11 #10): `tdgui login --browser` keeps the `state` off the browser's command line.

Every local user can read a process's command line (/proc/PID/cmdline). For a provider
without PKCE (Schwab) the `state` is all that binds a login to this browser, so the browser
is started at a one-time start URL on tdgui's loopback listener, which answers one 302 to the
real authorization URL.

1. `tdgui login --browser` (subprocess) with a $BROWSER script that reads its own
   /proc/self/cmdline, then follows the start URL and logs in. Must hold: the command line
   holds neither the `state` nor the authorization URL; the start URL answers 302 to the
   authorization URL (with this login's `state`); the login completes; the user's own
   terminal (stderr) shows the authorization URL to paste if no browser opens.
2. In process: another program requests the start URL before the browser (as one reading the
   command line would). Must hold: the first request gets the 302, the second (the browser)
   404, the login ends with LoginFailed, and no code is exchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from helpers.sandbox import add_sandbox_account, config_dir, free_callback_url
from tdgui.core.config import Config
from tdgui.core.errors import LoginFailed
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer


def _browser(tmp_path: Path, ca: str) -> tuple[Path, Path]:
    record = tmp_path / "browser.json"
    script = tmp_path / "fake-browser"
    body = f"""\
        #!{sys.executable}
        import json, sys, traceback
        import requests
        from tdgui.sandbox.driver import login_with_requests
        ca = {ca!r}
        seen = {{"cmdline": open("/proc/self/cmdline", "rb").read().decode(errors="replace")}}
        try:
            with requests.Session() as http:
                start = sys.argv[1]
                first = http.get(start, verify=ca, allow_redirects=False, timeout=30)
                seen["start"] = [first.status_code, first.headers.get("Location", "")]
                redirect = login_with_requests(seen["start"][1] or start, ca)
                seen["callback"] = http.get(redirect, verify=ca, timeout=30).status_code
        except Exception:
            seen["error"] = traceback.format_exc()
        open({str(record)!r}, "w").write(json.dumps(seen))
        sys.exit(0)  # never let webbrowser fall back to a real browser
        """
    script.write_text(textwrap.dedent(body))
    script.chmod(0o700)
    return script, record


def test_browser_command_line_holds_only_a_one_time_start_url(
    sandbox: SandboxServer, tmp_path: Path, figure
) -> None:
    add_sandbox_account(sandbox, "r27", "schwab", store="file")
    callback = free_callback_url()
    Config().update_account("r27", callback_url=callback)
    script, record = _browser(tmp_path, str(config_dir() / "sandbox" / "ca.pem"))
    env = {k: v for k, v in os.environ.items() if k != "TD_LOG_LEVEL"}
    env["BROWSER"] = str(script)
    done = subprocess.run(
        [sys.executable, "-m", "tdgui", "login", "r27", "--browser", "--timeout", "60"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    seen = json.loads(record.read_text())
    assert "error" not in seen, seen["error"]
    assert done.returncode == 0, done.stderr
    status, location = seen["start"]
    states = parse_qs(urlsplit(location).query).get("state", [])
    cmdline = seen["cmdline"]
    start_url = cmdline.split("\0")[-2] if cmdline.endswith("\0") else cmdline.split("\0")[-1]
    one_time = "/tdgui-login/" in start_url
    figure(
        f"row 27: the browser's /proc cmdline holds {'a one-time start URL' if one_time else 'another URL'}"
        f" (a state in it: {'state=' in cmdline}); the start URL answered {status} to the authorization "
        f"URL; login exit {done.returncode}, callback answered {seen['callback']}"
    )
    assert status == 302 and location.startswith(sandbox.base_url)
    assert len(states) == 1 and len(states[0]) >= 22
    assert states[0] not in cmdline and "state=" not in cmdline and sandbox.base_url not in cmdline
    assert start_url.startswith(callback.rstrip("/") + "/tdgui-login/")
    assert seen["callback"] == 200
    # The user's own terminal shows the authorization URL, to paste if no browser opens.
    assert location in done.stderr and start_url not in done.stderr


def test_start_url_works_once_and_a_second_use_ends_the_login(
    sandbox: SandboxServer, tmp_path: Path, figure
) -> None:
    add_sandbox_account(sandbox, "r27b", "schwab", store="file")
    Config().update_account("r27b", callback_url=free_callback_url())
    ca = str(config_dir() / "sandbox" / "ca.pem")
    answers: list[int] = []
    problems: list[BaseException] = []
    threads: list[threading.Thread] = []

    def browser(url: str) -> None:
        def run() -> None:
            try:
                # Another local program read the URL off the browser's command line and got
                # there first; then the browser itself asks.
                for _ in range(2):
                    got = requests.get(url, verify=ca, allow_redirects=False, timeout=10)
                    answers.append(got.status_code)
            except BaseException as exc:  # reported by the test, not lost in the thread
                problems.append(exc)

        threads.append(threading.Thread(target=run, daemon=True))
        threads[-1].start()

    with pytest.raises(LoginFailed, match="opened twice") as failed:
        TokenService(Config()).browser_login("r27b", browser, timeout=30)
    threads[0].join(10)  # its second answer may still be on its way when the login ends
    assert not problems, problems
    figure(
        f"row 27: a start URL requested twice answered {answers[0]} then {answers[1]}; the login "
        f"ended ({failed.value}); codes exchanged {sandbox.stats()['code_exchanges']}"
    )
    assert answers == [302, 404]
    assert sandbox.stats()["code_exchanges"] == 0

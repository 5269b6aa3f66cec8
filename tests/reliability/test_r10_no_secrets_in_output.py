"""Row 10: a full login, 3 refreshes and every failure path with every logger at DEBUG.

Runs, all with TD_LOG_LEVEL=DEBUG (and `--debug` on the CLI):
- real CLI processes: `accounts add` x2, `login --manual` (the test plays the human),
  `token`, `login --browser` (a $BROWSER script logs in and hits the loopback listener);
- one process running many CLI commands through cli.main: 3 forced refreshes, status,
  status --json, export, every token-endpoint fault (500, 503, 429, hang, malformed JSON, no
  access_token, HTML, invalid_grant, invalid_client, refresh_token_authentication_error),
  bad pastes (wrong state, consent denied, a used code), an unexpected crash, and the TD
  Ameritrade flavour;
- the Python API (Accounts, session, get_token, api) with logging set up as the app does.
Every secret the run produced is collected at the sandbox (every code, access/refresh/id token
issued, every code_verifier and client secret received). Must hold: no 8-character piece of
any of them in the log files, stdout (except `tdgui token`'s), stderr or crash output.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rel_support import ca_file, find_leaks, run, secret_windows, start_sandbox_for_test, worker_cmd
from tdgui.core.providers import SANDBOX_SCHWAB_CLIENT_ID, SANDBOX_SCHWAB_CLIENT_SECRET, SANDBOX_TDA_CLIENT_ID
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests

FAULTS = [
    {"kind": "500", "count": 3},
    {"kind": "503", "count": 3, "retry_after": 0.2},
    {"kind": "429", "count": 3, "retry_after": 0.2},
    {"kind": "hang", "count": 3, "hang_seconds": 2},
    {"kind": "malformed", "count": 3},
    {"kind": "no_access_token", "count": 3},
    {"kind": "html", "count": 3},
    {"kind": "invalid_grant", "count": 1},
    {"kind": "invalid_client", "count": 1},
    {"kind": "refresh_token_authentication_error", "count": 1},
]


def record_secrets(server: SandboxServer) -> dict[str, set[str]]:
    """Wrap the sandbox's token handler: keep every secret a client sent or was sent, by kind."""
    seen: dict[str, set[str]] = {}
    state = server._state
    original = state.token

    def keep(kind: str, value: str) -> None:
        seen.setdefault(kind, set()).add(value)

    def token(flavor: str, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        for key in ("code", "refresh_token", "code_verifier", "client_secret"):
            if form.get(key):
                keep(key, form[key])
        if authorization and authorization.lower().startswith("basic "):
            _, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            keep("client_secret", unquote(secret))
        answer = original(flavor, form, authorization)
        for key in ("access_token", "refresh_token", "id_token"):
            if isinstance(answer.get(key), str):
                keep(key, answer[key])
        return answer

    state.token = token  # type: ignore[method-assign]
    return seen


def issued_by_sandbox(server: SandboxServer) -> set[str]:
    state = server._state
    with state.lock:
        return set(state.codes) | set(state.access) | set(state.refresh)


def codes_in(redirects: str) -> set[str]:
    found = set()
    for line in redirects.splitlines():
        found.update(v for k, v in parse_qsl(urlsplit(line).query) if k == "code")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_secret_reaches_logs_or_output(tmp_path: Path, figure) -> None:
    server = start_sandbox_for_test(rotate=True)
    try:
        run_everything(server, tmp_path, figure)
    finally:
        server.stop()


def run_everything(server: SandboxServer, tmp_path: Path, figure) -> None:
    seen = record_secrets(server)
    ca = str(ca_file())
    env = dict(os.environ, TD_LOG_LEVEL="DEBUG", TD_HTTP_TIMEOUT="0.5", TD_HTTP_BACKOFF="0.05")
    outputs: list[tuple[str, str]] = []
    redirects = ""

    def cli(
        *args: str, stdin: str | None = None, scan_stdout: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = run([sys.executable, "-m", "tdgui", "--debug", *args], env=env, stdin=stdin, timeout=90)
        outputs.append((f"tdgui {' '.join(args)} (stderr)", result.stderr))
        if scan_stdout:
            outputs.append((f"tdgui {' '.join(args)} (stdout)", result.stdout))
        return result

    port = free_port()
    base = server.base_url
    for name, flavor, store in (("s10", "schwab", "file"), ("t10", "tdameritrade", "sql")):
        added = cli(
            "accounts",
            "add",
            name,
            "--provider",
            "sandbox",
            "--flavor",
            flavor,
            "--sandbox-url",
            base,
            "--store",
            store,
            "--callback-url",
            f"https://127.0.0.1:{port}/",
        )
        assert added.returncode == 0, added.stderr

    # 1. `tdgui login --manual`, a real process; the test is the human at the browser.
    login = subprocess.Popen(
        [sys.executable, "-m", "tdgui", "--debug", "login", "s10", "--manual"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert login.stdout is not None
    url = login.stdout.readline().strip()
    redirect = login_with_requests(url, Path(ca))
    redirects += redirect + "\n"
    out, err = login.communicate(redirect + "\n", timeout=60)
    outputs += [("tdgui login --manual (stdout)", url + "\n" + out), ("tdgui login --manual (stderr)", err)]
    assert login.returncode == 0, err

    token = cli("token", "s10", scan_stdout=False)  # printing the token is its job
    assert token.returncode == 0 and token.stdout.strip(), token.stderr

    # 2. `tdgui login --browser`: $BROWSER logs in and follows the redirect to the listener.
    browser_out = tmp_path / "browser-redirect.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(
        "#!/bin/sh\n"
        f'"{sys.executable}" "{worker_cmd("x")[1]}" browser_helper "$1" "{ca}" "{browser_out}" '
        ">/dev/null 2>&1 &\n"
    )
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    env["BROWSER"] = f"{browser} %s"
    by_browser = cli("login", "s10", "--browser", "--timeout", "60")
    del env["BROWSER"]
    assert by_browser.returncode == 0, by_browser.stderr
    redirects += browser_out.read_text() + "\n"

    # 3. Many commands in one process: refreshes, status, export, every failure path, a crash.
    steps: list[dict[str, Any]] = [{"args": ["--debug", "refresh", "s10", "--force"]} for _ in range(3)]
    steps += [
        {"args": ["--debug", "status"]},
        {"args": ["--debug", "status", "--json"]},
        {
            "args": [
                "--debug",
                "export",
                "s10",
                "--format",
                "schwab-py",
                "--output",
                str(tmp_path / "exp.json"),
            ]
        },
    ]
    steps += [
        {"args": ["--debug", "refresh", "s10", "--force"], "fault": f, "expect": "fail"} for f in FAULTS
    ]
    steps += [
        {"args": ["--debug", "token", "s10"], "fault": {"kind": "500", "count": 3}, "token": True},
        {"args": ["--debug", "login", "s10", "--manual"], "stdin": "good"},
        {"args": ["--debug", "login", "s10", "--manual"], "stdin": "bad-state", "expect": "fail"},
        {"args": ["--debug", "login", "s10", "--manual"], "stdin": "deny", "expect": "fail"},
        {"args": ["--debug", "login", "s10", "--manual"], "stdin": "used-code", "expect": "fail"},
        {"args": ["--debug", "token", "s10"], "crash": True, "expect": "fail"},
        {"args": ["--debug", "login", "t10", "--manual"], "stdin": "good"},
        {"args": ["--debug", "refresh", "t10", "--force"]},
        {
            "args": ["--debug", "refresh", "t10", "--force"],
            "fault": {"kind": "invalid_grant"},
            "expect": "fail",
        },
        {"args": ["--debug", "token", "t10"], "token": True},
    ]
    script = tmp_path / "script.json"
    script.write_text(json.dumps(steps))
    results_file = tmp_path / "results.json"
    scripted = run(worker_cmd("cli_script", str(script), ca, base, str(results_file)), env=env, timeout=180)
    assert scripted.returncode == 0, scripted.stderr[-3000:]
    outputs += [("cli_script (stdout)", scripted.stdout), ("cli_script (stderr)", scripted.stderr)]
    body = json.loads(results_file.read_text())
    redirects += body["redirects"]
    for step, result in zip(steps, body["results"], strict=True):
        label = " ".join(step["args"])
        if step.get("expect") == "fail":
            assert result["rc"] != 0, f"{label} should have failed"
        else:
            assert result["rc"] == 0, f"{label}: {result['stderr'][-1500:]}"
        outputs.append((f"{label} (stderr)", result["stderr"]))
        if not step.get("token"):
            outputs.append((f"{label} (stdout)", result["stdout"]))
    crash = body["results"][steps.index(next(s for s in steps if s.get("crash")))]
    assert "unexpected error" in crash["stderr"] and "Traceback" in crash["stderr"], crash["stderr"]

    # 4. The Python API with every logger at DEBUG.
    api_out = tmp_path / "api-redirect.txt"
    api = run(worker_cmd("api_debug", "t10", base, ca, str(api_out)), env=env, timeout=90)
    assert api.returncode == 0, api.stderr[-2000:]
    outputs += [("api (stdout)", api.stdout), ("api (stderr)", api.stderr)]
    redirects += api_out.read_text() + "\n"

    # Every secret of the run, and every 8-character piece of each.
    seen.setdefault("code", set()).update(codes_in(redirects))
    seen["client_secret"] = seen.get("client_secret", set()) | {SANDBOX_SCHWAB_CLIENT_SECRET}
    secrets = set().union(*seen.values()) | issued_by_sandbox(server)
    public = [SANDBOX_SCHWAB_CLIENT_ID, SANDBOX_TDA_CLIENT_ID + "@AMER.OAUTHAP", base]
    windows = secret_windows(secrets, public=public)
    log_dir = Path(os.environ["TD_LOG_DIR"])
    logs = [(str(p), p.read_text(errors="replace")) for p in sorted(log_dir.rglob("*")) if p.is_file()]
    assert logs, "no log file was written"
    log_text = "\n".join(text for _, text in logs)
    assert " DEBUG urllib3" in log_text and " DEBUG tdgui" in log_text, "DEBUG logging was not on"
    leaks = {}
    scanned = 0
    for label, text in [*outputs, *logs]:
        scanned += len(text)
        found = find_leaks(text, windows)
        if found:
            leaks[label] = sorted(set(found))[:5]
    masked = log_text.count("[secret]")
    figure(
        f"row 10: {len(secrets)} secrets ({', '.join(f'{len(v)} {k}' for k, v in sorted(seen.items()))}) = "
        f"{len(windows)} 8-char pieces; {len(outputs)} stdout/stderr streams + {len(logs)} log "
        f"file(s), {scanned:,} chars scanned; {sum(len(v) for v in leaks.values())} leaks; "
        f"{masked} masks in the log"
    )
    assert not leaks, f"secret pieces found: {leaks}"

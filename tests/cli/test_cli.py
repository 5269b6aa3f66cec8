"""The `tdgui` command line as real subprocesses against the sandbox (both flavors).

Every subcommand runs as `python -m tdgui ...` with the test's own TD_CONFIG_DIR. Logins are
real: `login --manual` prints the authorization URL, the test submits the sandbox's forms with
requests and writes the redirect to the process's stdin; `login --browser` gets a $BROWSER
script that does the same and then delivers the redirect to the loopback listener.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from helpers.sandbox import add_sandbox_account, config_dir, log_in, start_sandbox
from tdgui import cli
from tdgui.core.config import Account, Config, sandbox_account
from tdgui.core.service import TokenService
from tdgui.core.tokens import TokenSet
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests

PY = sys.executable
#: The stable fields of `tdgui status --json` (README, AccountStatus.to_json).
STATUS_FIELDS = {
    "name": str,
    "provider": str,
    "store": str,
    "state": str,
    "access_expires_at": (float, int, type(None)),
    "access_received_at": (float, int, type(None)),
    "refresh_expires_at": (float, int, type(None)),
    "login_at": (float, int, type(None)),
    "last_refresh_at": (float, int, type(None)),
    "last_refresh_ok": (bool, type(None)),
    "last_error": (str, type(None)),
    "access_expires_in": (int, type(None)),
    "refresh_expires_in": (int, type(None)),
    "warnings": list,
}
STATES = {"valid", "refreshing soon", "login soon", "login required", "error"}
ACCOUNT_FIELDS = {
    "name",
    "provider",
    "client_id",
    "callback_url",
    "store",
    "flavor",
    "sandbox_url",
    "authorize_url",
    "token_url",
    "auth_method",
    "scopes",
    "pkce",
    "exports",
}
COMMAND_NAMES = ("accounts", "login", "status", "token", "refresh", "export", "logout", "sandbox", "gui")
NO_DBUS = "unix:path=/nonexistent/tdgui-test-bus"


# ------------------------------------------------------------------------------ helpers


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TD_LOG_LEVEL", None)
    env.pop("BROWSER", None)
    env["PYTHONFAULTHANDLER"] = "1"  # a hung process shows its stacks (SIGABRT below)
    env.update(extra)
    return env


def tdgui(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [PY, "-m", "tdgui", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or env_with(),
    )
    try:
        out, err = proc.communicate(input or "", timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate()
        raise AssertionError(f"tdgui {' '.join(args)} hung for {timeout} s:\n{err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def ok(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = tdgui(*args, **kwargs)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    where = (result.args, result.returncode, result.stdout, result.stderr)
    assert result.returncode == code, where
    assert "Traceback" not in result.stderr, where
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, where
    assert lines[0].startswith("tdgui"), where
    for needle in needles:
        assert needle in lines[0], where


def snapshot(root: Path, skip: Sequence[str] = ()) -> dict[str, bytes]:
    """Every file under the config dir, by relative path, with its bytes."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not any(rel.startswith(prefix) for prefix in skip):
            files[rel] = path.read_bytes()
    return files


def status_json(name: str | None = None, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    args = ["status", "--json"] if name is None else ["status", name, "--json"]
    body = json.loads(ok(*args, env=env).stdout)
    assert isinstance(body, list)
    return body


def check_status_fields(entry: dict[str, Any]) -> None:
    assert set(entry) == set(STATUS_FIELDS), entry
    for key, kinds in STATUS_FIELDS.items():
        assert isinstance(entry[key], kinds), (key, entry[key])
    assert entry["state"] in STATES


def ca_file() -> Path:
    return config_dir() / "sandbox" / "ca.pem"


def login_manual(name: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`tdgui login NAME --manual`: URL on stdout line 1 → forms → redirect on stdin."""
    proc = subprocess.Popen(
        [PY, "-m", "tdgui", "login", name, "--manual"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or env_with(),
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("https://127.0.0.1:"), url
        redirect = login_with_requests(url, ca_file())
        out, err = proc.communicate(redirect + "\n", timeout=60)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, err
    assert out == "", out  # the URL was the only line on stdout
    assert "Traceback" not in err
    return subprocess.CompletedProcess(proc.args, proc.returncode, url + "\n" + out, err)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def browser_script(tmp_path: Path, *, deliver: bool = True) -> Path:
    """A $BROWSER that logs in on the sandbox's pages and GETs the redirect on the listener."""
    log = tmp_path / "browser.log"
    script = tmp_path / "fake-browser"
    body = f"""\
        #!{PY}
        import sys, traceback
        import requests
        from tdgui.sandbox.driver import login_with_requests
        ca = {str(ca_file())!r}
        url = sys.argv[1]
        with open({str(log)!r}, "a") as log:
            log.write("opened " + url.split("?")[0] + "\\n")
            try:
                if {deliver!r}:
                    redirect = login_with_requests(url, ca)
                    answer = requests.get(redirect, verify=ca, timeout=30)
                    log.write(f"listener answered {{answer.status_code}}\\n")
            except Exception:
                log.write(traceback.format_exc())
        sys.exit(0)  # never let webbrowser fall back to a real browser
        """
    script.write_text(textwrap.dedent(body))
    script.chmod(0o700)
    return script


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = start_sandbox()
    yield server
    server.stop()


def add_via_cli(server: SandboxServer, name: str, flavor: str, store: str, *extra: str) -> None:
    result = ok(
        "accounts",
        "add",
        name,
        "--provider",
        "sandbox",
        "--flavor",
        flavor,
        "--sandbox-url",
        server.base_url,
        "--store",
        store,
        *extra,
    )
    assert f"added {name}" in result.stdout


def stored(name: str) -> TokenSet:
    """The tokens the CLI stored, read in this process (same config dir, same stores)."""
    service = TokenService()
    tokens = service.read_tokens(service.account(name))
    assert tokens is not None
    return tokens


# ------------------------------------------------------------------------------ the whole cycle


# The keyring (the default store) is exercised by test_parallel_token_calls_... below and
# test_unavailable_keyring_...; each keyring process costs ~1 s of start-up here.
@pytest.mark.parametrize(("flavor", "store"), [("schwab", "sql"), ("tdameritrade", "file")])
def test_every_subcommand_against_the_sandbox(
    sandbox: SandboxServer, tmp_path: Path, flavor: str, store: str
) -> None:
    add_via_cli(sandbox, "demo", flavor, store)

    listed = json.loads(ok("accounts", "list", "--json").stdout)
    assert [a["name"] for a in listed] == ["demo"]
    assert set(listed[0]) == ACCOUNT_FIELDS
    assert listed[0]["flavor"] == flavor and listed[0]["store"] == store
    assert "demo\tsandbox\t" in ok("accounts", "list").stdout

    (before,) = status_json("demo")
    check_status_fields(before)
    assert before["state"] == "login required" and before["access_expires_at"] is None

    started = time.time()
    login_manual("demo")
    assert sandbox.stats()["code_exchanges"] == 1

    (after,) = status_json("demo")
    check_status_fields(after)
    assert after["name"] == "demo" and after["provider"] == "sandbox" and after["store"] == store
    assert after["state"] == "valid"
    assert after["last_refresh_ok"] is True and after["last_error"] is None
    assert 1790 <= after["access_expires_in"] <= 1800
    assert started - 1 <= after["login_at"] <= time.time() + 1
    assert abs(after["access_expires_at"] - (after["login_at"] + 1800)) < 2
    days = 7 if flavor == "schwab" else 90
    assert abs(after["refresh_expires_in"] - days * 86400) < 60
    text = ok("status").stdout
    assert "demo: valid" in text and "access token" in text and "(in 29m" in text

    first = ok("token", "demo").stdout
    assert first.count("\n") == 1
    token = first.strip()
    assert token == stored("demo").access_token
    assert ok("token", "demo").stdout.strip() == token  # not due: no refresh
    ok("refresh", "demo")  # not due either
    assert sandbox.stats()["refresh_requests"] == 0

    synced = tmp_path / "exports" / "token.json"
    fmt = "schwab-py" if flavor == "schwab" else "tda-api"
    ok("export", "demo", "--format", fmt, "--output", str(synced), "--keep-synced")
    assert stat.S_IMODE(synced.stat().st_mode) == 0o600
    exported = json.loads(synced.read_text())
    assert exported["token"]["access_token"] == token
    assert exported["creation_timestamp"] == int(after["login_at"])
    assert Config().account("demo").exports[0].path == str(synced.resolve())

    ok("refresh", "demo", "--force")
    assert sandbox.stats()["refresh_requests"] == 1
    fresh = ok("token", "demo").stdout.strip()
    assert fresh != token and fresh == stored("demo").access_token
    resynced = json.loads(synced.read_text())
    assert resynced["token"]["access_token"] == fresh  # --keep-synced followed the CLI refresh
    assert resynced["creation_timestamp"] == exported["creation_timestamp"]

    ok("logout", "demo")
    assert_one_line_error(tdgui("token", "demo"), 3, "tdgui login demo")
    ok("accounts", "remove", "demo")
    assert status_json() == []
    assert Config().accounts() == []
    from tdgui.core.stores import open_store

    assert open_store(store, config_dir()).read("demo/tokens") is None
    assert not list((config_dir() / "status").glob("demo*"))


def test_import_time_has_no_qt(sandbox: SandboxServer) -> None:
    """`tdgui token` never imports PySide6 (start-up cost, and it must run without Qt)."""
    add_via_cli(sandbox, "demo", "schwab", "file")
    login_manual("demo")
    with ThreadPoolExecutor(2) as pool:
        timed = pool.submit(
            subprocess.run,
            [PY, "-X", "importtime", "-m", "tdgui", "token", "demo"],
            capture_output=True,
            text=True,
            env=env_with(),
            timeout=60,
        )
        plain = pool.submit(
            subprocess.run,
            [
                PY,
                "-c",
                "import sys, tdgui, tdgui.core, tdgui.cli, tdgui.api, tdgui.cache; "
                "assert 'PySide6' not in sys.modules, sorted(m for m in sys.modules if 'PySide6' in m)",
            ],
            capture_output=True,
            text=True,
            env=env_with(),
            timeout=60,
        )
    result = timed.result()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    imported = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert any("tdgui.cli" in line for line in imported)
    assert not [line for line in imported if "PySide6" in line or "shiboken" in line]
    assert plain.result().returncode == 0, plain.result().stderr


def test_parallel_token_calls_refresh_once_under_rotation() -> None:
    """`tdgui token` is single-flight across processes: with the access token due and
    refresh-token rotation on, four at once cause one refresh and print the same token
    (tokens in the keyring, the default store)."""
    server = start_sandbox(rotate=True)
    try:
        add_via_cli(server, "demo", "tdameritrade", "keyring")
        login_manual("demo")
        service = TokenService()
        account = service.account("demo")
        due = dataclasses.replace(stored("demo"), access_expires_at=time.time() + 60)
        service.store(account).write("demo/tokens", due.to_json())
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: tdgui("token", "demo"), range(4)))
        assert {r.returncode for r in results} == {0}, [r.stderr for r in results]
        printed = {r.stdout for r in results}
        assert len(printed) == 1 and printed.pop().strip() == stored("demo").access_token
        assert server.stats()["refresh_requests"] == 1
        assert server.stats()["revoked_grants"] == 0
    finally:
        server.stop()


def test_help_documents_exit_codes_and_json_fields(capsys: pytest.CaptureFixture[str]) -> None:
    for args, needles in [
        ([], [*COMMAND_NAMES, "exit codes"]),
        (["status"], [*STATUS_FIELDS, "login required", "5  token store unavailable"]),
        (["accounts", "list"], sorted(ACCOUNT_FIELDS)),
        (["login"], ["--manual", "--browser", "--timeout"]),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*args, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for needle in needles:
            assert needle in text, (args, needle)


# ------------------------------------------------------------------------------ browser login


@pytest.mark.parametrize(("flavor", "path"), [("schwab", "/"), ("tdameritrade", "/callback")])
def test_login_browser_with_loopback_listener(
    sandbox: SandboxServer, tmp_path: Path, flavor: str, path: str
) -> None:
    port = free_port()
    add_via_cli(sandbox, "web", flavor, "file", "--callback-url", f"https://127.0.0.1:{port}{path}")
    browser = browser_script(tmp_path)
    result = ok("login", "web", "--browser", env=env_with(BROWSER=str(browser)))
    log = (tmp_path / "browser.log").read_text()
    assert "listener answered 200" in log, log
    assert "logged in to web" in result.stderr
    assert TokenService().status("web").state.value == "valid"
    assert stored("web").access_token


def test_login_browser_failures(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Port taken → exit 2 naming the port; no redirect in time → exit 1; nothing stored."""
    busy_port, idle_port = free_port(), free_port()
    add_via_cli(sandbox, "busy", "schwab", "file", "--callback-url", f"https://127.0.0.1:{busy_port}/")
    add_via_cli(sandbox, "idle", "schwab", "file", "--callback-url", f"https://127.0.0.1:{idle_port}/")
    idle_browser = browser_script(tmp_path, deliver=False)
    before = snapshot(config_dir())
    with socket.socket() as blocker, ThreadPoolExecutor(2) as pool:
        blocker.bind(("127.0.0.1", busy_port))
        blocker.listen(1)
        busy = pool.submit(tdgui, "login", "busy", "--browser", env=env_with(BROWSER=str(idle_browser)))
        idle = pool.submit(
            tdgui, "login", "idle", "--browser", "--timeout", "1", env=env_with(BROWSER=str(idle_browser))
        )
        busy_result, idle_result = busy.result(), idle.result()
    assert_one_line_error(busy_result, 2, f"port {busy_port}", "in use", "--manual")
    assert busy_result.returncode == 2
    assert idle_result.returncode == 1, idle_result.stderr
    assert "Traceback" not in idle_result.stderr
    assert f"no redirect reached 127.0.0.1:{idle_port} within 1 s" in idle_result.stderr.splitlines()[-1]
    assert "opened https://127.0.0.1:" in (tmp_path / "browser.log").read_text()
    assert snapshot(config_dir()) == before
    assert sandbox.stats()["code_exchanges"] == 0


# ------------------------------------------------------------------------------ `tdgui sandbox`


SHORT_LIVED = ("--access-ttl", "1", "--refresh-ttl", "3600", "--rotate")


def test_sandbox_subcommand_rotation_and_provider_down(tmp_path: Path) -> None:
    """`tdgui sandbox` as a process (tdameritrade only, 1 s access tokens, rotation); stopping
    it makes refreshes fail with exit 4 and one line, and leaves the tokens as they were."""
    proc = subprocess.Popen(
        [PY, "-m", "tdgui", "sandbox", "--port", "0", "--flavor", "tdameritrade", *SHORT_LIVED],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with(),
    )
    assert proc.stdout is not None
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("https://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        ok("accounts", "add", "tda", "--provider", "sandbox", "--flavor", "tdameritrade", "--store", "file")
        # An account added without --sandbox-url follows TD_SANDBOX_URL.
        env = env_with(TD_SANDBOX_URL=base)
        login_manual("tda", env=env)
        plain = tmp_path / "plain.json"
        ok("export", "tda", "--format", "json", "--output", str(plain))
        first = json.loads(plain.read_text())
        assert set(first) == {
            "access_token",
            "token_type",
            "access_expires_at",
            "refresh_token",
            "refresh_expires_at",
            "login_at",
            "scope",
        }
        assert first["refresh_expires_at"] - first["login_at"] == pytest.approx(3600, abs=2)
        # A 1 s access token is always inside the 5 min lead: every `token` refreshes, and
        # each refresh rotates the refresh token.
        second_token = ok("token", "tda", env=env).stdout.strip()
        second = stored("tda")
        assert second_token == second.access_token != first["access_token"]
        assert second.refresh_token != first["refresh_token"]
        third_token = ok("token", "tda", env=env).stdout.strip()
        assert third_token not in (first["access_token"], second_token)
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert proc.returncode == 0

    time.sleep(1.1)  # the last access token has expired: `token` must refresh, and cannot
    root = config_dir()
    before = snapshot(root, skip=("status/", "locks/"))
    with ThreadPoolExecutor(2) as pool:
        down = [
            pool.submit(tdgui, *args, env=env) for args in (["token", "tda"], ["refresh", "tda", "--force"])
        ]
        results = [f.result() for f in down]
    for result in results:
        assert_one_line_error(result, 4, "cannot reach 127.0.0.1")
    assert snapshot(root, skip=("status/", "locks/")) == before
    (entry,) = json.loads(tdgui("status", "tda", "--json", env=env).stdout)
    assert entry["last_refresh_ok"] is False and "cannot reach" in entry["last_error"]


def test_sandbox_subcommand_bad_options() -> None:
    with socket.socket() as blocker, ThreadPoolExecutor(4) as pool:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = str(blocker.getsockname()[1])
        cases = [
            (["sandbox", "--port", port], "in use"),
            (["sandbox", "--port", "70000"], "port"),
            (["sandbox", "--port", "0", "--access-ttl", "0"], "lifetime"),
            (["sandbox", "--flavor", "etrade"], "invalid choice"),
        ]
        results = list(pool.map(lambda c: tdgui(*c[0], timeout=20), cases))
    for (_args, needle), result in zip(cases, results):
        assert_one_line_error(result, 2, needle)


# ------------------------------------------------------------------------------ bad input


def main_in_process(args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(args)
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = saved
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_bad_input_gives_exit_code_and_one_line_changing_nothing(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_via_cli(sandbox, "demo", "schwab", "file")
    add_via_cli(sandbox, "fresh", "tdameritrade", "file")  # never logged in
    login_manual("demo")
    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    good_cb = "https://127.0.0.1:8182/"
    schwab = ["--provider", "schwab", "--client-id", "KEY"]
    custom = ["--provider", "custom", "--client-id", "C", "--callback-url", "http://127.0.0.1:9/cb"]
    cases: list[tuple[list[str], str | None, int, str]] = [
        # usage errors: unknown accounts, wrong flags, bad URLs, bad values
        (["token", "nope"], None, 2, "no account named 'nope'"),
        (["status", "nope"], None, 2, "no account named 'nope'"),
        (["refresh", "nope", "--force"], None, 2, "no account named"),
        (["logout", "nope"], None, 2, "no account named"),
        (["login", "nope", "--manual"], None, 2, "no account named"),
        (["export", "nope", "--format", "json", "--output", str(tmp_path / "o.json")], None, 2, "no account"),
        (["accounts", "remove", "nope"], None, 2, "no account named"),
        (["frobnicate"], None, 2, "invalid choice"),
        (["token"], None, 2, "required"),
        (["login", "demo"], None, 2, "--manual --browser"),
        (["login", "demo", "--manual", "--browser"], None, 2, "not allowed"),
        (["login", "demo", "--browser", "--timeout", "0"], None, 2, "--timeout"),
        (["export", "demo", "--format", "xml", "--output", "x"], None, 2, "invalid choice"),
        (["export", "demo", "--format", "json"], None, 2, "--output"),
        (["export", "demo", "--format", "json", "--output", str(a_file / "t.json")], None, 2, "cannot write"),
        (["status", "--jsn"], None, 2, "unrecognized"),
        (["accounts"], None, 2, "required"),
        (["accounts", "add", "x"], None, 2, "--provider"),
        (["accounts", "add", "x", "--provider", "etrade"], None, 2, "invalid choice"),
        (["accounts", "add", "x", "--provider", "sandbox", "--store", "cloud"], None, 2, "invalid choice"),
        (["accounts", "add", "demo", "--provider", "sandbox"], None, 2, "already exists"),
        (["accounts", "add", "bad name", "--provider", "sandbox"], None, 2, "invalid account name"),
        (["accounts", "add", "x", *schwab, "--callback-url", "http://127.0.0.1:8182/"], "s\n", 2, "https"),
        (
            ["accounts", "add", "x", *schwab, "--callback-url", "https://localhost:8182/"],
            "s\n",
            2,
            "127.0.0.1",
        ),
        (["accounts", "add", "x", *schwab, "--callback-url", "not a url"], "s\n", 2, "callback URL"),
        (["accounts", "add", "x", *schwab, "--callback-url", "https://127.0.0.1:99999/"], "s\n", 2, "port"),
        (["accounts", "add", "x", *schwab, "--callback-url", good_cb], None, 2, "--client-secret-stdin"),
        (
            ["accounts", "add", "x", *schwab, "--callback-url", good_cb, "--client-secret-stdin"],
            "",
            2,
            "nothing",
        ),
        (["accounts", "add", "x", *schwab], None, 2, "--callback-url"),
        (
            ["accounts", "add", "x", "--provider", "tdameritrade", "--callback-url", good_cb],
            None,
            2,
            "--client-id",
        ),
        (
            ["accounts", "add", "x", *custom, "--authorize-url", "https://a.example/auth"],
            None,
            2,
            "--token-url",
        ),
        (
            [
                "accounts",
                "add",
                "x",
                *custom,
                "--authorize-url",
                "http://a.example/a",
                "--token-url",
                "https://t/",
            ],
            None,
            2,
            "https",
        ),
        (["accounts", "add", "x", "--provider", "sandbox", "--token-url", "https://t/"], None, 2, "custom"),
        (
            ["accounts", "add", "x", *schwab, "--callback-url", good_cb, "--flavor", "schwab"],
            "s\n",
            2,
            "sandbox",
        ),
        # login required: nothing stored yet
        (["token", "fresh"], None, 3, "tdgui login fresh"),
        (["refresh", "fresh"], None, 3, "tdgui login fresh"),
        (["export", "fresh", "--format", "json", "--output", str(tmp_path / "f.json")], None, 3, "login"),
        # login --manual fed something that is not the callback: usage error (exit 2)
        (["login", "demo", "--manual"], "hello world\n", 2, "spaces"),
        (["login", "demo", "--manual"], "ftp://127.0.0.1:8182/?code=x\n", 2, "not a URL"),
        (["login", "demo", "--manual"], "https://127.0.0.1:9999/?code=x&state=y\n", 2, "not to the callback"),
        (["login", "demo", "--manual"], "https://127.0.0.1:8182/other?code=x\n", 2, "path"),
        (["login", "demo", "--manual"], "", 2, "no redirect URL"),
        # the callback, but not of this login: the login does not complete (exit 1)
        (["login", "demo", "--manual"], "https://127.0.0.1:8182/?code=x&state=forged\n", 1, "state"),
        (["login", "demo", "--manual"], "https://127.0.0.1:8182/?code=x\n", 1, "no state"),
    ]
    root = config_dir()
    snapshot_without_locks = snapshot(root, skip=("locks/",))
    outside = {p for p in tmp_path.iterdir()}
    # Every case runs through cli.main in this process (cheap); every fourth also as a real
    # process, which would show a traceback escaping main or an interpreter-level failure.
    monkeypatch.setattr(cli, "_setup_logging", lambda *_args: None)
    results = [main_in_process(args, stdin) for args, stdin, _code, _needle in cases]
    spawned = cases[::4]
    with ThreadPoolExecutor(4) as pool:
        results += list(pool.map(lambda case: tdgui(*case[0], input=case[1], timeout=30), spawned))
    for (args, _stdin, code, needle), result in zip(cases + spawned, results):
        assert_one_line_error(result, code, needle)
        if args == ["login", "demo", "--manual"]:
            assert result.stdout.startswith("https://127.0.0.1:")  # the URL came first, alone
            assert result.stdout.count("\n") == 1
    # Refreshing "fresh" takes (creates) its lock file: empty, not stored data.
    assert snapshot(root, skip=("locks/",)) == snapshot_without_locks
    assert {p for p in tmp_path.iterdir()} == outside  # no export file was written
    assert sandbox.stats()["code_exchanges"] == 1  # only the real login exchanged a code


def test_denied_consent_is_exit_1_and_stores_nothing(sandbox: SandboxServer) -> None:
    add_via_cli(sandbox, "demo", "schwab", "file")
    proc = subprocess.Popen(
        [PY, "-m", "tdgui", "login", "demo", "--manual"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with(),
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    redirect = login_with_requests(url, ca_file(), consent="deny")
    _out, err = proc.communicate(redirect + "\n", timeout=60)
    assert proc.returncode == 1 and "declined" in err and "Traceback" not in err
    assert not (config_dir() / "tokens" / "demo.tokens.json").exists()


def test_debug_and_log_level_options(sandbox: SandboxServer) -> None:
    """--debug and TD_LOG_LEVEL show logging (secrets masked); without them, errors stay one
    line; a bad TD_LOG_LEVEL or a damaged accounts.json is a usage error."""
    add_sandbox_account(sandbox, store="file")
    before = log_in(TokenService(), "demo")
    assert isinstance(before, TokenSet)
    with ThreadPoolExecutor(4) as pool:
        debug_refresh = pool.submit(tdgui, "--debug", "refresh", "demo", "--force")
        debug_error = pool.submit(tdgui, "--debug", "token", "nope")
        info = pool.submit(tdgui, "status", env=env_with(TD_LOG_LEVEL="info"))
        bad_level = pool.submit(tdgui, "status", env=env_with(TD_LOG_LEVEL="chatty"))
    refreshed = debug_refresh.result()
    assert refreshed.returncode == 0, refreshed.stderr
    assert "DEBUG" in refreshed.stderr and "INFO tdgui.core.service: refreshed demo" in refreshed.stderr
    after = stored("demo")
    for secret in (before.access_token, before.refresh_token or "", after.access_token):
        assert secret not in refreshed.stderr  # the masking filter covers debug output too
    error = debug_error.result()
    assert error.returncode == 2 and "Traceback" in error.stderr  # details on request
    assert (
        error.stderr.strip().splitlines()[-1] == "tdgui: no account named 'nope' (see `tdgui accounts list`)"
    )
    assert info.result().returncode == 0
    assert_one_line_error(bad_level.result(), 2, "TD_LOG_LEVEL")
    quiet = tdgui("refresh", "demo", "--force")
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr and "DEBUG" not in quiet.stderr

    (config_dir() / "accounts.json").write_text("{not json")
    snap = snapshot(config_dir())
    assert_one_line_error(tdgui("status"), 2, "accounts.json", "damaged")
    assert snapshot(config_dir()) == snap


# ------------------------------------------------------------------------------ keyring missing


def test_unavailable_keyring_is_exit_5_fast_and_changes_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """No Secret Service (D-Bus socket missing): every command that needs the keyring says so
    in one line naming --store file, within 3 s, exit 5, and nothing is written."""
    base = sandbox_account("kr", "schwab", sandbox.base_url)
    Config().add_account(Account(**{**base.to_dict(), "scopes": (), "exports": ()}))  # store keyring
    env = env_with(DBUS_SESSION_BUS_ADDRESS=NO_DBUS)
    schwab = ["--provider", "schwab", "--client-id", "KEY", "--callback-url", "https://127.0.0.1:8182/"]
    cases: list[tuple[list[str], str | None]] = [
        (["token", "kr"], None),
        (["login", "kr", "--manual"], None),
        (["logout", "kr"], None),
        (["accounts", "remove", "kr"], None),
        (["accounts", "add", "k2", "--provider", "sandbox"], None),
        (["accounts", "add", "k3", *schwab, "--client-secret-stdin"], "app-secret-123\n"),
    ]
    # logout/remove take (create) the account's empty lock file before the store fails.
    before = snapshot(config_dir(), skip=("locks/",))

    def run(case: tuple[list[str], str | None]) -> tuple[float, subprocess.CompletedProcess[str]]:
        start = time.monotonic()
        result = tdgui(*case[0], input=case[1], env=env, timeout=30)
        return time.monotonic() - start, result

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, cases))
    for (args, _), (elapsed, result) in zip(cases, results):
        assert_one_line_error(result, 5, "--store file")
        assert "https://" not in result.stdout, args  # login failed before showing a URL
        assert elapsed < 3 + 5, (args, elapsed)  # no hang (slack: 3 processes at once, 2 CPUs)
    assert snapshot(config_dir(), skip=("locks/",)) == before
    # On its own, the check is well within 3 s.
    export = ["export", "kr", "--format", "schwab-py", "--output", str(tmp_path / "t.json")]
    elapsed, result = run((export, None))
    assert_one_line_error(result, 5, "--store file")
    assert elapsed < 3 and not (tmp_path / "t.json").exists()
    # status reports the store problem per account instead of failing.
    (entry,) = status_json("kr", env=env)
    assert entry["state"] == "error" and "--store file" in entry["last_error"]


# ------------------------------------------------------------------------------ other providers


def test_add_real_and_custom_providers_keeps_secrets_out_of_config(tmp_path: Path) -> None:
    secret = "MySchwabAppSecret42"
    schwab = ["--client-id", "SCHWABKEY", "--callback-url", "https://127.0.0.1:8182/", "--store", "file"]
    custom = [
        "--provider",
        "custom",
        "--client-id",
        "cid",
        "--callback-url",
        "http://127.0.0.1:9000/cb",
        "--authorize-url",
        "https://auth.example.org/authorize",
        "--token-url",
        "https://auth.example.org/token",
        "--auth-method",
        "none",
        "--scope",
        "read",
        "--scope",
        "trade",
        "--no-pkce",
        "--store",
        "sql",
    ]
    with ThreadPoolExecutor(3) as pool:
        futures = [
            pool.submit(
                ok,
                "accounts",
                "add",
                "sw",
                "--provider",
                "schwab",
                *schwab,
                "--client-secret-stdin",
                input=secret + "\n",
            ),
            pool.submit(
                ok,
                "accounts",
                "add",
                "td",
                "--provider",
                "tdameritrade",
                "--client-id",
                "TDKEY",
                "--callback-url",
                "http://127.0.0.1:8080/",
                "--store",
                "memory",
            ),
            pool.submit(ok, "accounts", "add", "cu", *custom),
        ]
        results = [f.result() for f in futures]
    assert "memory store" in results[1].stderr
    listed = {a["name"]: a for a in json.loads(ok("accounts", "list", "--json").stdout)}
    assert listed["cu"]["scopes"] == ["read", "trade"] and listed["cu"]["pkce"] is False
    assert listed["cu"]["auth_method"] == "none" and listed["cu"]["token_url"].endswith("/token")
    assert listed["td"]["client_id"] == "TDKEY" and listed["sw"]["store"] == "file"
    assert secret not in (config_dir() / "accounts.json").read_text()
    secret_file = config_dir() / "tokens" / "sw.secret"
    assert secret_file.read_text() == secret and stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    # A duplicate add must not overwrite the stored secret.
    assert_one_line_error(
        tdgui(
            "accounts", "add", "sw", "--provider", "schwab", *schwab, "--client-secret-stdin", input="other\n"
        ),
        2,
        "already exists",
    )
    assert secret_file.read_text() == secret
    entries = {e["name"]: e for e in status_json()}
    assert {e["state"] for e in entries.values()} == {"login required"}
    ok("accounts", "remove", "sw")
    assert not secret_file.exists()

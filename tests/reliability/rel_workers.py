"""Worker processes the reliability rows start: `python rel_workers.py ROLE ARGS...`.

Each role imports what it needs first, then (where a barrier directory is given) says it is
ready and waits for the go file, so that several processes act at the same moment.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _barrier(directory: str) -> None:
    """Announce readiness, then wait for `go` (polling: processes start within ~2 ms)."""
    bdir = Path(directory)
    (bdir / f"ready.{os.getpid()}").write_text("ready")
    go = bdir / "go"
    deadline = time.monotonic() + 120
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("barrier: no go within 120 s")
        time.sleep(0.002)


def role_race(kind: str, name: str, bdir: str, base_url: str, ca: str) -> int:
    """Row 1: one of the processes that need the token at the same moment."""
    # Import everything the refresh path uses before the barrier, so all start together.
    import authlib.integrations.requests_client  # noqa: F401

    import tdgui
    from tdgui import cli
    from tdgui.core import oauth  # noqa: F401
    from tdgui.core.service import TokenService

    if kind == "cli":
        _barrier(bdir)
        return cli.main(["token", name])
    if kind == "session":
        session = tdgui.session(name)
        _barrier(bdir)
        response = session.get(f"{base_url}/v1/userinfo", verify=ca, timeout=30)
        auth = response.request.headers.get("Authorization", "")
        print(auth.removeprefix("Bearer "))
        return 0 if response.status_code == 200 else 10
    service = TokenService()
    _barrier(bdir)
    if kind == "refresh":
        print(service.refresh(name).access_token)
    elif kind == "get_token":
        print(service.get_token(name).access_token)
    else:
        raise SystemExit(f"unknown race kind {kind}")
    return 0


def role_refresh(name: str, force: str) -> int:
    """Row 2: a plain refresh (the holder that gets killed, and the next process)."""
    from tdgui.core.service import TokenService

    started = time.monotonic()
    tokens = TokenService().refresh(name, force=force == "force")
    print(json.dumps({"elapsed": time.monotonic() - started, "token": tokens.access_token}))
    return 0


def record_value(index: int, length: int) -> str:
    """Record number `index`: its number, then content derived from it (a mix shows)."""
    import hashlib

    head = f"{index:08d}|é|"
    body = hashlib.sha256(str(index).encode()).hexdigest()
    return (head + body * (length // len(body) + 1))[:length]


def open_store(kind: str, location: str) -> object:
    if kind == "file":
        from tdgui.core.stores.file import FileStore

        return FileStore(Path(location))
    if kind == "sql":
        from tdgui.core.stores.sql import SQLStore

        return SQLStore(Path(location))
    from tdgui.core.stores.keyring import KeyringStore

    return KeyringStore(service=location, timeout=10)


def role_fork_writer(kind: str, location: str, length: str) -> int:
    """Row 7: a fork server. For each `start FIRST PROGRESS` line on stdin it forks a child that
    writes records FIRST, FIRST+1, ... for ever, logging `b N` before and `d N` after each write
    to PROGRESS; prints the child's pid, then reaps it (the test SIGKILLs it) and prints `reaped`.
    The server itself never touches the store, so children start with no shared connection."""
    import keyring

    if kind == "keyring":
        # Resolve the backend once here: keyring's probe closes its D-Bus connection, and each
        # keyring call opens its own, so children share no connection but skip the probe.
        keyring.get_keyring()
    import tdgui.core.stores.file
    import tdgui.core.stores.keyring
    import tdgui.core.stores.sql  # noqa: F401

    size = int(length)
    for line in sys.stdin:
        command, first, progress = line.split()
        assert command == "start"
        pid = os.fork()
        if pid == 0:  # the child: write until killed
            try:
                store = open_store(kind, location)
                fd = os.open(progress, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                index = int(first)
                while True:
                    os.write(fd, f"b {index}\n".encode())
                    store.write("acct/tokens", record_value(index, size))  # type: ignore[attr-defined]
                    os.write(fd, f"d {index}\n".encode())
                    index += 1
            except BaseException as exc:
                os.write(2, f"child failed: {type(exc).__name__}: {exc}\n".encode())
            finally:
                os._exit(3)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"reaped {status}", flush=True)
    return 0


_FAKE_SECRET_SERVICE = """
import sys
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection
conn = open_dbus_connection(bus="SESSION")
reply = conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.secrets"))
print("owned", reply.body[0], flush=True)
while True:
    conn.receive()  # read every call, answer none
"""


def _run_cli_captured(args: list[str], stdin_text: str) -> dict[str, object]:
    """cli.main(args) in this process with fds 1 and 2 captured; exit code, output, seconds."""
    import io
    import tempfile

    from tdgui import cli

    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        old_stdin = sys.stdin
        sys.stdin = io.StringIO(stdin_text)
        started = time.monotonic()
        try:
            rc = cli.main(args)
        except SystemExit as exc:
            rc = int(exc.code or 0)
        elapsed = time.monotonic() - started
        sys.stdin = old_stdin
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        out.seek(0)
        err.seek(0)
        return {
            "args": args,
            "rc": rc,
            "elapsed": elapsed,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        }


def role_keyring_cli(scenario: str, name: str, secret: str, commands: str) -> int:
    """Row 9: set up a broken keyring (in a private D-Bus session where needed), then run CLI
    commands in this process and print their exit codes, output and timing as JSON."""
    import subprocess

    helper = None
    if scenario == "locked":
        subprocess.run(
            "printf pass | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1",
            shell=True,
            check=True,
        )
        import secretstorage

        connection = secretstorage.dbus_init()
        collection = secretstorage.get_default_collection(connection)
        collection.lock()
        assert collection.is_locked()
        connection.close()
    elif scenario == "hung":
        helper = subprocess.Popen(
            [sys.executable, "-c", _FAKE_SECRET_SERVICE], stdout=subprocess.PIPE, text=True
        )
        assert helper.stdout is not None
        line = helper.stdout.readline()
        assert line.startswith("owned 1"), line  # 1: DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
    import keyring  # noqa: F401 - import cost outside the timings

    from tdgui import cli  # noqa: F401

    plan = {
        "add": (
            [
                "accounts",
                "add",
                f"{name}-new",
                "--provider",
                "schwab",
                "--client-id",
                "APPKEY123",
                "--callback-url",
                "https://127.0.0.1:8182/",
                "--client-secret-stdin",
            ],
            secret + "\n",
        ),
        "token": (["token", name], ""),
        "status": (["status", name, "--json"], ""),
    }
    results = [_run_cli_captured(*plan[c]) for c in commands.split(",")]
    print(json.dumps(results))
    if helper is not None:
        helper.kill()
        helper.wait()
    return 0


def _drive_login(url: str, ca: str, consent: str = "allow") -> str:
    """The human at the browser: sandbox login + consent, the redirect URL back. Its own HTTP
    traffic (the test's, not tdgui's) is kept out of tdgui's log."""
    import logging

    from tdgui.sandbox.driver import login_with_requests

    logging.disable(logging.CRITICAL)
    try:
        return login_with_requests(url, Path(ca), consent=consent)
    finally:
        logging.disable(logging.NOTSET)


def role_browser_helper(url: str, ca: str, outfile: str) -> int:
    """Row 10: the "system browser" of `tdgui login --browser` (via $BROWSER): log in on the
    sandbox, then follow the redirect to tdgui's loopback listener."""
    import requests

    redirect = _drive_login(url, ca)
    Path(outfile).write_text(redirect)
    for _ in range(50):  # the listener may not be accepting yet
        try:
            requests.get(redirect, verify=ca, timeout=10)
            return 0
        except requests.ConnectionError:
            time.sleep(0.1)
    return 1


class _BrowserStdin:
    """sys.stdin for `tdgui login --manual`: when the CLI reads the pasted redirect, read the
    authorization URL it printed, log in like a human, and paste the redirect (maybe spoiled)."""

    def __init__(self, captured_stdout: object, ca: str, mode: str, memory: dict[str, str]) -> None:
        self.captured = captured_stdout
        self.ca = ca
        self.mode = mode
        self.memory = memory

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        from urllib.parse import parse_qsl, urlsplit

        sys.stdout.flush()
        handle = self.captured
        handle.seek(0)  # type: ignore[attr-defined]
        printed = handle.read().decode()  # type: ignore[attr-defined]
        handle.seek(0, 2)  # type: ignore[attr-defined]
        url = [line for line in printed.splitlines() if line.startswith("https://")][-1]
        state = dict(parse_qsl(urlsplit(url).query))["state"]
        redirect = _drive_login(url, self.ca, consent="deny" if self.mode == "deny" else "allow")
        self.memory.setdefault("redirects", "")
        self.memory["redirects"] += redirect + "\n"
        if self.mode == "bad-state":
            redirect = redirect.replace(state, state[::-1])
        elif self.mode == "used-code":
            redirect = self.memory["used"].replace(self.memory["used_state"], state)
        elif self.mode == "good":
            self.memory["used"], self.memory["used_state"] = redirect, state
        return redirect + "\n"


def role_cli_script(script: str, ca: str, base_url: str, outfile: str) -> int:
    """Row 10: run many CLI commands in one process (cli.main, exactly what the console entry
    calls), each with fds 1/2 captured; faults are queued through the sandbox's control API."""
    import io
    import tempfile
    from urllib.parse import urlsplit

    import requests

    from tdgui import cli
    from tdgui.core.service import TokenService
    from tdgui.sandbox import CONTROL_HEADER, read_control_secret

    steps = json.loads(Path(script).read_text())
    # The sandbox's control API needs its run's secret, kept next to its CA (ca.pem).
    control = {CONTROL_HEADER: read_control_secret(Path(ca).parent, urlsplit(base_url).port or 443)}
    memory: dict[str, str] = {}
    results = []
    real_get_token = TokenService.get_token

    def crashing_get_token(self: TokenService, name: str) -> object:
        tokens = self.read_tokens(self.account(name))
        assert tokens is not None
        raise RuntimeError(f"simulated crash holding {tokens.refresh_token} and {tokens.access_token}")

    for step in steps:
        if step.get("fault"):
            requests.post(
                f"{base_url}/_sandbox/fault", json=step["fault"], headers=control, verify=ca, timeout=10
            ).raise_for_status()
        if step.get("crash"):
            TokenService.get_token = crashing_get_token  # type: ignore[method-assign]
        saved = os.dup(1), os.dup(2)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            old_stdin = sys.stdin
            mode = step.get("stdin", "")
            sys.stdin = _BrowserStdin(out, ca, mode, memory) if mode else io.StringIO("")  # type: ignore[assignment]
            try:
                rc = cli.main(step["args"])
            except SystemExit as exc:
                rc = int(exc.code or 0)
            sys.stdin = old_stdin
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            out.seek(0)
            err.seek(0)
            results.append(
                {
                    "args": step["args"],
                    "rc": rc,
                    "stdout": out.read().decode("utf-8", "replace"),
                    "stderr": err.read().decode("utf-8", "replace"),
                }
            )
        TokenService.get_token = real_get_token  # type: ignore[method-assign]
        requests.post(f"{base_url}/_sandbox/clear-faults", json={}, headers=control, verify=ca, timeout=10)
    Path(outfile).write_text(json.dumps({"results": results, "redirects": memory.get("redirects", "")}))
    return 0


def role_api_debug(name: str, base_url: str, ca: str, outfile: str) -> int:
    """Row 10: the Python API with every logger at DEBUG (logging set up as the desktop app does)."""
    import logging

    from tdgui.core.environment import Environment
    from tdgui.core.logs import setup_logging

    setup_logging(Environment.from_os().log_level)  # TD_LOG_LEVEL=DEBUG in the environment
    for logger in ("tdgui", "authlib", "urllib3", "requests"):
        logging.getLogger(logger).setLevel(logging.DEBUG)
    import tdgui

    accounts = tdgui.Accounts()
    pending = accounts.login_url(name)
    redirect = _drive_login(pending.url, ca)
    Path(outfile).write_text(redirect)
    accounts.finish_login(pending, redirect)
    session = tdgui.session(name)
    response = session.get(f"{base_url}/v1/userinfo", verify=ca, timeout=30)
    logging.getLogger("tdgui.test").debug("userinfo answered %s", response.status_code)
    tdgui.get_token(name)
    for _ in range(2):
        accounts.refresh(name, force=True)
    legacy = tdgui.api(account=name)
    assert legacy.access_valid
    print("api run done; userinfo", response.status_code)
    return 0 if response.status_code == 200 else 1


def role_log_rotation() -> int:
    """Row 11: set up logging, log, rotate the log file, log again; print the files' modes."""
    import logging
    import logging.handlers

    from tdgui.core import paths
    from tdgui.core.logs import setup_logging

    setup_logging("INFO")
    logging.getLogger("tdgui.test").info("before rotation")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.handlers.RotatingFileHandler):
            handler.doRollover()
    logging.getLogger("tdgui.test").info("after rotation")
    directory = paths.log_dir()
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in sorted(directory.iterdir())}
    modes["."] = oct(directory.stat().st_mode & 0o777)
    print(json.dumps(modes))
    return 0


def main() -> int:
    role, *args = sys.argv[1:]
    handler = globals().get(f"role_{role.replace('-', '_')}")
    if handler is None:
        raise SystemExit(f"unknown role {role}")
    return int(handler(*args))


if __name__ == "__main__":
    sys.exit(main())

"""Token operations in a short-lived child process, so a long-lived app never loads the network stack.

The desktop app idles in the tray for days: whatever it imports stays in its memory. A refresh,
a login's code exchange or an account change needs requests, authlib, the keyring and
cryptography (~20 MiB), so the app runs each one as `tdgui --ops-child`: one JSON request on
stdin, one JSON answer on stdout (a browser login first sends the URL for the app to open), and
the process (with its memory) is gone. The child uses the
same core objects, locks and stores as the CLI, so single-flight across processes holds.

`InProcessOps` runs the same operations in this process: for tokens that live only here (a
memory store) and for callers that have the network stack loaded anyway.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Protocol

from tdgui.core import errors
from tdgui.core.accounts import AccountManager, EditResult
from tdgui.core.clock import SYSTEM_CLOCK, Clock
from tdgui.core.config import Account
from tdgui.core.environment import Environment
from tdgui.core.errors import TdguiError
from tdgui.core.flow import PendingLogin
from tdgui.core.logs import SECRETS
from tdgui.core.service import TokenService
from tdgui.core.tokens import TokenTimes

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
#: A child that has not answered by then is stuck (the token request has its own deadline).
DEFAULT_TIMEOUT = 180.0
#: Errors an answer may name; anything else arrives as a plain TdguiError.
_ERROR_TYPES: dict[str, type[TdguiError]] = {
    cls.__name__: cls
    for cls in (
        errors.TdguiError,
        errors.UsageError,
        errors.ConfigError,
        errors.LoginRequired,
        errors.LoginFailed,
        errors.RedirectError,
        errors.AccessDenied,
        errors.ProviderError,
        errors.StoreUnavailable,
        errors.StoredDataError,
    )
}


class TokenOps(Protocol):
    """The operations that touch the network or the token store."""

    def refresh(self, name: str, *, force: bool) -> TokenTimes: ...
    def begin_login(self, name: str) -> PendingLogin: ...
    def finish_login(self, pending: PendingLogin, redirect_url: str) -> TokenTimes: ...
    def browser_login(
        self,
        name: str,
        *,
        timeout: float,
        cancel: threading.Event,
        open_browser: Callable[[str], object] | None = None,
    ) -> TokenTimes:
        """`open_browser` opens the URL where this runs in process; a child opens its own."""
        ...

    def add_account(self, account: Account, secret: str | None) -> None: ...
    def edit_account(self, account: Account, secret: str | None) -> EditResult: ...
    def remove_account(self, name: str) -> None: ...
    def access_token(self, name: str) -> str: ...
    def export(self, name: str, fmt: str, path: str, *, keep_synced: bool) -> None: ...


class InProcessOps:
    """The operations on this process's own service (its memory store, its clock)."""

    def __init__(self, service: TokenService) -> None:
        self.service = service
        self.accounts = AccountManager(service)

    def refresh(self, name: str, *, force: bool) -> TokenTimes:
        return self.service.refresh(name, force=force).times()

    def begin_login(self, name: str) -> PendingLogin:
        return self.service.begin_login(name)

    def finish_login(self, pending: PendingLogin, redirect_url: str) -> TokenTimes:
        return self.service.finish_login(pending, redirect_url).times()

    def browser_login(
        self,
        name: str,
        *,
        timeout: float,
        cancel: threading.Event,
        open_browser: Callable[[str], object] | None = None,
    ) -> TokenTimes:
        from tdgui.core.loopback import open_system_browser

        opener = open_browser or open_system_browser
        return self.service.browser_login(name, opener, timeout=timeout, cancel=cancel).times()

    def add_account(self, account: Account, secret: str | None) -> None:
        self.accounts.add(account, secret)

    def edit_account(self, account: Account, secret: str | None) -> EditResult:
        return self.accounts.edit(account.name, account, secret)

    def remove_account(self, name: str) -> None:
        self.accounts.remove(name)

    def access_token(self, name: str) -> str:
        """A valid access token, refreshed if due (what `tdgui token NAME` prints)."""
        return self.service.get_token(name).access_token

    def export(self, name: str, fmt: str, path: str, *, keep_synced: bool) -> None:
        """What `tdgui export` does: the same core call, the same file and registration."""
        self.service.export(name, fmt, Path(path), keep_synced=keep_synced)


def tdgui_command() -> list[str]:
    """This same program (or PyInstaller bundle), to start a child of it with a hidden flag."""
    if getattr(sys, "frozen", False):  # the bundle's executable is tdgui itself
        return [sys.executable]
    return [sys.executable, "-m", "tdgui"]


class ChildOps:
    """Each operation in its own `tdgui --ops-child` process, for the accounts of `env`."""

    def __init__(self, env: Environment, *, clock: Clock = SYSTEM_CLOCK, lead: Callable[[], float]) -> None:
        self.env = env
        self.clock = clock
        self.lead = lead

    def _run(
        self,
        op: str,
        args: dict[str, Any],
        cancel: threading.Event | None = None,
        on_event: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> Any:
        request = {
            "v": PROTOCOL_VERSION,
            "op": op,
            "args": args,
            "lead": self.lead(),
            # The child sees the parent's time (a test's manual clock, or none: 0).
            "clock_offset": self.clock.now() - SYSTEM_CLOCK.now(),
        }
        child_env = {**os.environ, **self.env.to_os()}
        proc = subprocess.Popen(
            [*tdgui_command(), "--ops-child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env,
            text=True,
            encoding="utf-8",
        )
        try:
            out, err = _communicate(proc, json.dumps(request) + "\n", cancel, on_event)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for line in err.splitlines():
            log.debug("ops child: %s", SECRETS.mask(line))
        if cancel is not None and cancel.is_set():
            raise errors.LoginFailed("cancelled")
        return _answer(out, proc.returncode)

    def refresh(self, name: str, *, force: bool) -> TokenTimes:
        return TokenTimes(**self._run("refresh", {"name": name, "force": force}))

    def begin_login(self, name: str) -> PendingLogin:
        pending = PendingLogin(**self._run("begin_login", {"name": name}))
        SECRETS.add(pending.state)
        if pending.code_verifier:
            SECRETS.add(pending.code_verifier)
        return pending

    def finish_login(self, pending: PendingLogin, redirect_url: str) -> TokenTimes:
        args = {"pending": asdict(pending), "redirect_url": redirect_url}
        return TokenTimes(**self._run("finish_login", args))

    def browser_login(
        self,
        name: str,
        *,
        timeout: float,
        cancel: threading.Event,
        open_browser: Callable[[str], object] | None = None,
    ) -> TokenTimes:
        # With an opener the child only says which URL to open and this process opens it: the
        # window can then offer the link to copy when no browser starts (issue 14, defect 10).
        on_event = None
        if open_browser is not None:
            opener = open_browser

            def on_event(event: Mapping[str, Any]) -> None:
                url = str(event.get("url") or "")
                if event.get("event") == "open_browser" and url.startswith(("https://", "http://")):
                    opener(url)

        args = {"name": name, "timeout": timeout, "parent_opens": open_browser is not None}
        return TokenTimes(**self._run("browser_login", args, cancel, on_event))

    def add_account(self, account: Account, secret: str | None) -> None:
        self._run("add_account", {"account": account.to_dict(), "secret": secret})

    def edit_account(self, account: Account, secret: str | None) -> EditResult:
        result = self._run("edit_account", {"account": account.to_dict(), "secret": secret})
        return EditResult(account, moved=bool(result["moved"]), dropped=bool(result["dropped"]))

    def remove_account(self, name: str) -> None:
        self._run("remove_account", {"name": name})

    def access_token(self, name: str) -> str:
        token = str(self._run("access_token", {"name": name}))
        SECRETS.add(token)
        return token

    def export(self, name: str, fmt: str, path: str, *, keep_synced: bool) -> None:
        self._run("export", {"name": name, "format": fmt, "path": path, "keep_synced": keep_synced})


def _communicate(
    proc: subprocess.Popen[str],
    request: str,
    cancel: threading.Event | None,
    on_event: Callable[[Mapping[str, Any]], None] | None = None,
) -> tuple[str, str]:
    """Send the request, wait for the answer; a set `cancel` ends the child (SIGTERM, then kill).

    Lines the child writes before its answer that are events (`{"v": .., "event": ..}`) go to
    `on_event` as they arrive; everything else is the answer.
    """
    out: list[str] = []
    err: list[str] = []
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr

    def exchange() -> None:
        reader = threading.Thread(target=lambda: err.append(stderr.read()), daemon=True)
        reader.start()
        try:
            stdin.write(request)
            stdin.close()
        except OSError:
            pass  # the child is gone already; its exit code and stderr say why
        for line in stdout:
            event = _event(line)
            if event is None:
                out.append(line)
            elif on_event is not None:
                try:
                    on_event(event)
                except Exception:  # the parent's opener must not end the exchange
                    log.exception("handling the token worker's %s failed", event.get("event"))
        proc.wait()
        reader.join()

    waiter = threading.Thread(target=exchange, daemon=True)
    waiter.start()
    waited = 0.0
    while waiter.is_alive():
        waiter.join(0.1)
        waited += 0.1
        if (cancel is not None and cancel.is_set()) or waited > DEFAULT_TIMEOUT:
            # SIGTERM: a child inside a token exchange finishes storing first (it defers the signal).
            proc.terminate()
            waiter.join(10)
            break
    return "".join(out), "".join(err)


def _event(line: str) -> Mapping[str, Any] | None:
    """The event a child's output line carries, or None for any other line."""
    if '"event"' not in line:
        return None
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    if isinstance(parsed, dict) and parsed.get("v") == PROTOCOL_VERSION and "event" in parsed:
        return parsed
    return None


def _answer(out: str, returncode: int | None) -> Any:
    line = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        answer = json.loads(line)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or answer.get("v") != PROTOCOL_VERSION:
        raise TdguiError(f"the token worker ended without an answer (exit code {returncode}); see the log")
    if answer.get("ok") is True:
        return answer.get("result")
    error = answer.get("error") or {}
    cls = _ERROR_TYPES.get(str(error.get("type")), TdguiError)
    message = SECRETS.mask(str(error.get("message") or "unknown error"))
    if cls is errors.ProviderError:
        raise errors.ProviderError(
            message, transient=bool(error.get("transient", True)), retry_after=error.get("retry_after")
        )
    raise cls(message)


# -- the child side ---------------------------------------------------------------------------
class _OffsetClock:
    """The parent's time in the child: the system clock moved by a fixed offset."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return SYSTEM_CLOCK.now() + self.offset

    def sleep(self, seconds: float) -> None:
        SYSTEM_CLOCK.sleep(seconds)


def _perform(
    ops: InProcessOps, op: str, args: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]
) -> Any:
    if op == "refresh":
        return asdict(ops.refresh(str(args["name"]), force=bool(args["force"])))
    if op == "begin_login":
        return asdict(ops.begin_login(str(args["name"])))
    if op == "finish_login":
        pending = PendingLogin(**args["pending"])
        return asdict(ops.finish_login(pending, str(args["redirect_url"])))
    if op == "browser_login":
        cancel = threading.Event()
        opener = None
        if args.get("parent_opens"):

            def opener(url: str) -> None:
                emit({"event": "open_browser", "url": url})

        name, timeout = str(args["name"]), float(args["timeout"])
        return asdict(ops.browser_login(name, timeout=timeout, cancel=cancel, open_browser=opener))
    if op == "add_account":
        ops.add_account(Account.from_dict(args["account"]), args.get("secret"))
        return None
    if op == "edit_account":
        result = ops.edit_account(Account.from_dict(args["account"]), args.get("secret"))
        return {"moved": result.moved, "dropped": result.dropped}
    if op == "remove_account":
        ops.remove_account(str(args["name"]))
        return None
    if op == "access_token":
        return ops.access_token(str(args["name"]))
    if op == "export":
        keep = bool(args["keep_synced"])
        ops.export(str(args["name"]), str(args["format"]), str(args["path"]), keep_synced=keep)
        return None
    raise errors.UsageError(f"unknown operation {op!r}")


def serve(env: Environment, stdin: IO[str], stdout: IO[str]) -> int:
    """`tdgui --ops-child`: read one request, perform it, write one answer."""
    from tdgui.core.root import build_core

    try:
        request = json.loads(stdin.readline())
        if not isinstance(request, dict) or request.get("v") != PROTOCOL_VERSION:
            raise errors.UsageError("the token worker got a request it does not understand")
        offset = float(request.get("clock_offset") or 0.0)
        clock: Clock = _OffsetClock(offset) if abs(offset) >= 1.0 else SYSTEM_CLOCK
        core = build_core(env, clock=clock, lead=float(request.get("lead") or 300.0))
        for secret in (request.get("args", {}).get("secret"),):
            if secret:
                SECRETS.add(str(secret))

        def emit(event: dict[str, Any]) -> None:
            stdout.write(json.dumps({"v": PROTOCOL_VERSION, **event}) + "\n")
            stdout.flush()

        op, args = str(request.get("op")), request.get("args") or {}
        result = _perform(InProcessOps(core.service), op, args, emit)
        answer: dict[str, Any] = {"v": PROTOCOL_VERSION, "ok": True, "result": result}
        code = 0
    except TdguiError as exc:
        error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, errors.ProviderError):
            error.update(transient=exc.transient, retry_after=exc.retry_after)
        answer, code = {"v": PROTOCOL_VERSION, "ok": False, "error": error}, exc.exit_code
    except (ValueError, KeyError, TypeError) as exc:
        log.exception("bad ops request")
        message = f"the token worker got a malformed request ({type(exc).__name__})"
        error = {"type": "TdguiError", "message": message}
        answer, code = {"v": PROTOCOL_VERSION, "ok": False, "error": error}, 2
    stdout.write(json.dumps(answer) + "\n")
    stdout.flush()
    return code

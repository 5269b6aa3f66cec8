"""The `tdgui` command line: accounts, login, status, token, refresh, export, sandbox. Never imports Qt."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from tdgui import __version__
from tdgui.core.errors import TdguiError, UsageError
from tdgui.core.hardening import disable_core_dumps

if TYPE_CHECKING:
    from tdgui.core.config import Config
    from tdgui.core.service import AccountStatus, TokenService

EXIT_CODES = """exit codes:
  0  ok
  1  anything else (e.g. a login that did not complete)
  2  usage error (unknown account, bad URL, wrong option)
  3  login required (no usable refresh token: run `tdgui login NAME`)
  4  provider unreachable or failing
  5  token store unavailable or locked
"""

STATUS_JSON = """--json prints a JSON list with one object per account; these fields are stable:
  name, provider, store   strings
  state                   "valid", "refreshing soon", "login soon", "login required" or "error"
  access_expires_at       epoch seconds or null; access_received_at, refresh_expires_at,
                          login_at and last_refresh_at likewise
  access_expires_in       seconds left (negative once expired) or null; refresh_expires_in too
  last_refresh_ok         true, false or null (never refreshed)
  last_error              string or null
"""

ACCOUNTS_JSON = """--json prints a JSON list with one object per account; these fields are stable:
  name, provider, client_id, callback_url, store   strings
  flavor, sandbox_url                              sandbox only, else null
  authorize_url, token_url, auth_method            custom only, else null
  scopes                                           list of strings
  pkce                                             true or false
  exports                                          list of {"format": ..., "path": ...}
                                                   (token files kept in sync)
No secret is ever part of it.
"""

log = logging.getLogger("tdgui.cli")


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"tdgui: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="tdgui",
        description="Get and keep OAuth tokens for the Schwab Trader API and TD Ameritrade API.\n"
        "With no command, starts the desktop app.",
        epilog=EXIT_CODES,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"tdgui {__version__}")
    parser.add_argument("--debug", action="store_true", help="DEBUG logging and tracebacks on errors")
    parser.add_argument("--self-test", action="store_true", help="run the desktop app's self-test")
    parser.add_argument("--screenshot", metavar="DIR", type=Path, help="with --self-test: save PNGs")
    parser.add_argument("--minimized", action="store_true", help="start the app in the tray")
    # Internal: the desktop app's login view runs in this child process (tdgui.qt.login_child).
    parser.add_argument("--login-child", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help: str, epilog: str = "") -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help, description=help, epilog=epilog + EXIT_CODES, formatter_class=formatter
        )

    command("gui", "launch the desktop app (the default)")

    accounts = command("accounts", "add, list or remove accounts")
    acc_sub = accounts.add_subparsers(dest="accounts_command", metavar="ACTION", parser_class=_Parser)
    acc_sub.required = True
    add = acc_sub.add_parser("add", help="add an account", epilog=EXIT_CODES, formatter_class=formatter)
    add.add_argument("name")
    add.add_argument("--provider", required=True, choices=("schwab", "tdameritrade", "sandbox", "custom"))
    add.add_argument("--client-id", help="app key (consumer key); sandbox: built in")
    add.add_argument("--callback-url", help="exactly as registered, e.g. https://127.0.0.1:8182/")
    add.add_argument("--client-secret-stdin", action="store_true", help="read the app secret from stdin")
    add.add_argument("--store", choices=("keyring", "file", "memory", "sql"), default="keyring")
    add.add_argument("--flavor", choices=("schwab", "tdameritrade"), help="sandbox: which broker to emulate")
    add.add_argument("--sandbox-url", help="sandbox: its base URL (default: TD_SANDBOX_URL or built in)")
    add.add_argument("--authorize-url", help="custom: authorization endpoint")
    add.add_argument("--token-url", help="custom: token endpoint")
    add.add_argument(
        "--auth-method", choices=("client_secret_basic", "client_secret_post", "none"), help="custom"
    )
    add.add_argument("--scope", action="append", default=[], help="custom: a scope (repeatable)")
    add.add_argument("--pkce", action=argparse.BooleanOptionalAction, default=True, help="custom: PKCE S256")
    lst = acc_sub.add_parser(
        "list", help="list accounts", epilog=ACCOUNTS_JSON + EXIT_CODES, formatter_class=formatter
    )
    lst.add_argument("--json", action="store_true", help="stable JSON (fields below)")
    rm = acc_sub.add_parser(
        "remove",
        help="remove an account, its tokens and its secret",
        epilog=EXIT_CODES,
        formatter_class=formatter,
    )
    rm.add_argument("name")

    login = command("login", "log in (browser) and store the tokens")
    login.add_argument("name")
    mode = login.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--manual", action="store_true", help="print the URL, read the redirected URL from stdin"
    )
    mode.add_argument("--browser", action="store_true", help="system browser + one-shot loopback listener")
    login.add_argument("--timeout", type=float, default=300.0, help="--browser: seconds to wait (300)")

    status = command("status", "token state and expiry per account", STATUS_JSON)
    status.add_argument("name", nargs="?")
    status.add_argument("--json", action="store_true", help="stable JSON (fields below)")

    token = command("token", "print a valid access token (refreshing first if needed)")
    token.add_argument("name")

    refresh = command("refresh", "refresh the access token now if due (or always with --force)")
    refresh.add_argument("name")
    refresh.add_argument("--force", action="store_true")

    exp = command("export", "write a token file for schwab-py, tda-api or plain JSON")
    exp.add_argument("name")
    exp.add_argument("--format", required=True, choices=("schwab-py", "tda-api", "json"))
    exp.add_argument("--output", required=True, type=Path)
    exp.add_argument("--keep-synced", action="store_true", help="rewrite the file after every refresh")

    logout = command("logout", "delete the stored tokens of an account")
    logout.add_argument("name")

    sandbox = command("sandbox", "run the local HTTPS broker emulator")
    sandbox.add_argument("--port", type=int, help="default: the port sandbox accounts point at")
    sandbox.add_argument("--flavor", choices=("schwab", "tdameritrade"), help="default: both")
    sandbox.add_argument("--access-ttl", type=int, default=1800, metavar="S")
    sandbox.add_argument("--refresh-ttl", type=int, metavar="S")
    sandbox.add_argument("--rotate", action="store_true", help="rotate refresh tokens, revoke on reuse")
    return parser


def _service() -> TokenService:
    from tdgui.core.service import TokenService

    return TokenService()


def _when(at: float | None, now: float) -> str:
    if at is None:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    left = int(at - now)
    if left <= 0:
        return f"{stamp} (expired)"
    days, rest = divmod(left, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    span = f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m {seconds}s"
    return f"{stamp} (in {span})"


def _print_status(status: AccountStatus) -> None:
    now = time.time()
    print(f"{status.name}: {status.state.value}")
    print(f"  provider        {status.provider}   store {status.store}")
    print(f"  access token    {_when(status.access_expires_at, now)}")
    print(f"  refresh token   {_when(status.refresh_expires_at, now)}")
    last = "-"
    if status.last_refresh_at:
        last = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.last_refresh_at))
        last += " ok" if status.last_refresh_ok else " failed"
    print(f"  last refresh    {last}")
    if status.last_error:
        print(f"  last error      {status.last_error}")


def cmd_accounts(args: argparse.Namespace) -> int:
    from tdgui.core.config import Config

    config = Config()
    if args.accounts_command == "list":
        accounts = config.accounts()
        if args.json:
            print(json.dumps([a.to_dict() for a in accounts], indent=2))
        elif not accounts:
            print("no accounts yet: add one with `tdgui accounts add NAME --provider ...`")
        else:
            for account in accounts:
                print(f"{account.name}\t{account.provider}\t{account.client_id}\t{account.store}")
        return 0
    if args.accounts_command == "remove":
        _service().remove_account(args.name)
        print(f"removed {args.name} with its tokens and secret", file=sys.stderr)
        return 0
    return _add_account(args, config)


def _add_account(args: argparse.Namespace, config: Config) -> int:
    """`accounts add`: everything is checked before anything is written (secret, then config)."""
    from tdgui.core.config import Account, sandbox_account

    if args.provider != "custom" and (args.authorize_url or args.token_url or args.auth_method or args.scope):
        raise UsageError("--authorize-url, --token-url, --auth-method and --scope are for --provider custom")
    if args.provider != "sandbox" and (args.flavor or args.sandbox_url):
        raise UsageError("--flavor and --sandbox-url are for --provider sandbox")
    if args.provider == "sandbox":
        base = sandbox_account(args.name, args.flavor or "schwab", args.sandbox_url)
        account = Account(
            **{
                **base.to_dict(),
                "client_id": args.client_id or base.client_id,
                "callback_url": args.callback_url or base.callback_url,
                "store": args.store,
                "scopes": (),
                "exports": (),
            }
        )
    else:
        if not args.client_id:
            raise UsageError(f"--client-id is required for provider {args.provider}")
        if not args.callback_url:
            raise UsageError("--callback-url is required (exactly as registered with the provider)")
        account = Account(
            name=args.name,
            provider=args.provider,
            client_id=args.client_id,
            callback_url=args.callback_url,
            store=args.store,
            authorize_url=args.authorize_url,
            token_url=args.token_url,
            auth_method=args.auth_method,
            scopes=tuple(args.scope),
            pkce=args.pkce,
        )
    account.validate()
    if any(existing.name == account.name for existing in config.accounts()):
        raise UsageError(f"an account named {account.name!r} already exists")
    service = _service()
    provider = account.resolve_provider(service.directory)
    sandbox_secret = account.provider == "sandbox"  # the sandbox's demo app secret is built in
    if args.client_secret_stdin and not provider.needs_client_secret:
        raise UsageError(f"provider {account.provider} takes no client secret: drop --client-secret-stdin")
    if provider.needs_client_secret and not args.client_secret_stdin and not sandbox_secret:
        raise UsageError(f"provider {account.provider} needs the app secret: pass --client-secret-stdin")
    secret = None
    if args.client_secret_stdin:
        secret = sys.stdin.readline().strip()
        if not secret:
            raise UsageError("--client-secret-stdin: nothing was read from standard input")
    # Fail now, not at the end of the first login, if the chosen store cannot be used
    # (e.g. no Secret Service on a headless machine: exit 5, naming --store file).
    service.store(account).check_available()
    if secret is not None:
        # The secret first: a store failure must not leave an account without its secret.
        service.set_client_secret(account, secret)
    try:
        config.add_account(account)
    except BaseException:
        if secret is not None:
            with contextlib.suppress(TdguiError):
                service.secret_store(account).delete(f"{account.name}/secret")
        raise
    if account.store == "memory":
        print(
            "note: the memory store keeps tokens only inside the process that logged in "
            "(the desktop app or a script using tdgui.Accounts); `tdgui login` keeps nothing",
            file=sys.stderr,
        )
    print(f"added {account.name} ({account.provider}); log in with `tdgui login {account.name} --manual`")
    return 0


def _check_store(service: TokenService, name: str) -> None:
    """Before a login: the tokens must have somewhere to go (fail before the browser opens)."""
    account = service.account(name)
    service.store(account).check_available()


def cmd_login(args: argparse.Namespace) -> int:
    service = _service()
    _check_store(service, args.name)
    if args.manual:
        from tdgui.core import flow
        from tdgui.core.errors import RedirectError

        pending = service.begin_login(args.name)
        print(pending.url, flush=True)
        if sys.stdin.isatty():  # a person at a terminal; a script piping stdin needs no prompt
            print(
                "Open the URL above, log in, then paste the full address the browser ends on "
                "(it will not load; that is expected):",
                file=sys.stderr,
                flush=True,
            )
        line = sys.stdin.readline().strip()
        if not line:
            raise UsageError("no redirect URL was read from standard input")
        if not flow.matches_callback(line, pending.redirect_uri):
            # Not the callback at all (not a URL, another host, port or path): a usage error.
            # A callback that does not complete the login (wrong state, denied) stays exit 1.
            try:
                flow.parse_redirect(pending, line)
            except RedirectError as exc:
                raise UsageError(str(exc)) from None
        tokens = service.finish_login(pending, line)
    else:
        if args.timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds")
        from tdgui.core.loopback import open_system_browser, run_browser_login

        tokens = run_browser_login(service, args.name, open_system_browser, timeout=args.timeout)
    print(
        f"logged in to {args.name}; access token valid {_when(tokens.access_expires_at, time.time())}",
        file=sys.stderr,
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    service = _service()
    statuses = [service.status(args.name)] if args.name else service.statuses()
    if args.json:
        print(json.dumps([s.to_json() for s in statuses], indent=2))
        return 0
    if not statuses:
        print("no accounts yet: add one with `tdgui accounts add NAME --provider ...`")
    for status in statuses:
        _print_status(status)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    tokens = _service().get_token(args.name)
    # Printing the token is this command's whole job (the one place a secret reaches stdout).
    sys.stdout.write(tokens.access_token + "\n")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    tokens = _service().refresh(args.name, force=args.force)
    print(f"{args.name}: access token valid {_when(tokens.access_expires_at, time.time())}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _service().export(args.name, args.format, args.output, keep_synced=args.keep_synced)
    synced = " (kept in sync after every refresh)" if args.keep_synced else ""
    print(f"wrote {args.output}{synced}", file=sys.stderr)
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    _service().logout(args.name)
    print(f"logged out of {args.name}: tokens deleted", file=sys.stderr)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from tdgui.core import paths, providers
    from tdgui.sandbox import serve_forever
    from tdgui.sandbox.certs import sandbox_state_dir

    serve_forever(
        sandbox_state_dir(paths.config_dir()),
        port=args.port if args.port is not None else providers.SANDBOX_DEFAULT_PORT,
        flavor=args.flavor,
        access_ttl=args.access_ttl,
        refresh_ttl=args.refresh_ttl,
        rotate=args.rotate,
    )
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        if args.self_test:
            from tdgui.qt.selftest import run_self_test

            return int(run_self_test(args.screenshot))
        from tdgui.qt.app import run_gui
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("PySide6"):
            raise
        raise TdguiError(
            "the desktop app needs PySide6 (pip install 'tdgui[gui]'); "
            "the command line (`tdgui --help`) works without it"
        ) from None
    return int(run_gui(minimized=args.minimized))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "accounts": cmd_accounts,
    "login": cmd_login,
    "status": cmd_status,
    "token": cmd_token,
    "refresh": cmd_refresh,
    "export": cmd_export,
    "logout": cmd_logout,
    "sandbox": cmd_sandbox,
}


class _TerminalFilter(logging.Filter):
    """What reaches the terminal without --debug: no tracebacks (the CLI prints every error as
    one line itself; the traceback is in the log file) and, unless stderr is a terminal, no
    retry chatter before that line."""

    def __init__(self, quiet_retries: bool) -> None:
        super().__init__()
        self.quiet_retries = quiet_retries

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            return False
        return not (self.quiet_retries and record.name == "tdgui.oauth" and record.levelno < logging.ERROR)


def _setup_logging(debug: bool) -> None:
    """--debug: DEBUG to stderr and tracebacks; TD_LOG_LEVEL=LEVEL: that level, also to stderr."""
    import os

    from tdgui.core.logs import setup_logging

    env_level = os.environ.get("TD_LOG_LEVEL", "").strip()
    if env_level and not isinstance(logging.getLevelName(env_level.upper()), int):
        raise UsageError(f"TD_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {env_level!r}")
    if env_level:
        os.environ["TD_LOG_LEVEL"] = env_level.upper()
    setup_logging("DEBUG" if debug else None, to_stderr=debug or bool(env_level))
    if debug:
        return
    terminal = _TerminalFilter(quiet_retries=not (env_level or sys.stderr.isatty()))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            if not any(isinstance(f, _TerminalFilter) for f in handler.filters):
                handler.addFilter(terminal)


def main(argv: Sequence[str] | None = None) -> int:
    disable_core_dumps()  # first: every tdgui process may hold secrets (issue 11 #15)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.login_child:
        from tdgui.qt.login_child import main as login_child_main

        return int(login_child_main())
    try:
        _setup_logging(args.debug)
        handler = COMMANDS.get(args.command or "gui", cmd_gui)
        code = int(handler(args))
        sys.stdout.flush()
        return code
    except TdguiError as exc:
        if args.debug:
            log.exception("command failed")
        print(f"tdgui: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tdgui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout was closed early (`tdgui status | head -1`): not worth a message.
        import os

        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        # The traceback goes through the logging filter that masks secrets: to the log file
        # always, to stderr only with --debug. The terminal gets one line.
        log.exception("unexpected error")
        from tdgui.core.logs import SECRETS

        print(
            f"tdgui: unexpected error: {SECRETS.mask(str(exc))} (details in the log; rerun with --debug)",
            file=sys.stderr,
        )
        return 1

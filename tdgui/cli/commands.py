"""The `tdgui` subcommands: each turns parsed arguments into core calls and prints the result."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from tdgui.cli.output import open_browser_announcing, print_status, say, valid_until
from tdgui.core import first_login
from tdgui.core.errors import TdguiError, UsageError
from tdgui.core.root import Core

if TYPE_CHECKING:
    from tdgui.core.sharing import DbChoice

NO_ACCOUNTS = "no accounts yet: add one with `tdgui accounts add NAME --provider ...`"


def cmd_accounts(core: Core, args: argparse.Namespace) -> int:
    if args.accounts_command == "list":
        accounts = core.config.accounts()
        if args.json:
            print(json.dumps([a.to_dict() for a in accounts], indent=2))
        elif not accounts:
            print(NO_ACCOUNTS)
        else:
            for account in accounts:
                print(f"{account.name}\t{account.provider}\t{account.client_id}\t{account.store}")
        return 0
    if args.accounts_command == "remove":
        core.accounts.remove(args.name)
        say(f"removed {args.name} with its tokens and secret")
        return 0
    return _add_account(core, args)


def _add_account(core: Core, args: argparse.Namespace) -> int:
    """`accounts add`: everything is checked before anything is written (secret, then config)."""
    from tdgui.core.accounts import AccountDraft

    account = AccountDraft(
        name=args.name,
        provider=args.provider,
        client_id=args.client_id,
        callback_url=args.callback_url,
        store=args.store,
        flavor=args.flavor,
        sandbox_url=args.sandbox_url,
        authorize_url=args.authorize_url,
        token_url=args.token_url,
        auth_method=args.auth_method,
        scopes=tuple(args.scope),
        pkce=args.pkce,
        remember_device=args.remember_device,
    ).to_account()
    secret = None
    if args.client_secret_stdin:
        secret = sys.stdin.readline().strip()
        if not secret:
            raise UsageError("--client-secret-stdin: nothing was read from standard input")
    core.accounts.add(account, secret)
    if account.store == "memory":
        say(
            "note: the memory store keeps tokens only inside the process that logged in "
            "(the desktop app or a script using tdgui.Accounts); `tdgui login` keeps nothing"
        )
    print(f"added {account.name} ({account.provider}); log in with `tdgui login {account.name} --manual`")
    return 0


def _login(core: Core, args: argparse.Namespace) -> int:
    service = core.service
    if args.manual:
        from tdgui.core import flow
        from tdgui.core.errors import RedirectError

        pending = service.begin_login(args.name)
        print(pending.url, flush=True)
        if sys.stdin.isatty():  # a person at a terminal; a script piping stdin needs no prompt
            say(
                "Open the URL above, log in, then paste the full address the browser ends on "
                "(it will not load; that is expected):"
            )
        line = sys.stdin.readline().strip()
        if not line:
            raise UsageError("no redirect URL was read from standard input")
        if first_login.stopped_at_broker(line, pending.url):
            raise UsageError(first_login.stopped_at_broker_advice())
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
        tokens = service.browser_login(args.name, open_browser_announcing, timeout=args.timeout)
    say(f"logged in to {args.name}; access token valid {valid_until(tokens.access_expires_at)}")
    return 0


def cmd_login(core: Core, args: argparse.Namespace) -> int:
    """`tdgui login`; a first login's known setup failures also get their plain explanation."""
    try:
        return _login(core, args)
    except TdguiError as exc:
        if isinstance(exc, UsageError):
            raise  # the command line itself was wrong: nothing about the broker to explain
        try:
            provider: str | None = core.service.account(args.name).provider
        except TdguiError:
            provider = None
        hint = first_login.login_hint(str(exc), provider=provider)
        if hint is not None and hint not in str(exc):
            # Same error, same exit code; the explanation joins its one line (errors stay one line).
            exc.args = (f"{exc}. {hint}",)
        raise


def cmd_status(core: Core, args: argparse.Namespace) -> int:
    service = core.service
    statuses = [service.status(args.name)] if args.name else service.statuses()
    if args.json:
        print(json.dumps([s.to_json() for s in statuses], indent=2))
        return 0
    if not statuses:
        print(NO_ACCOUNTS)
    for status in statuses:
        print_status(status)
    return 0


def cmd_token(core: Core, args: argparse.Namespace) -> int:
    tokens = core.service.get_token(args.name)
    # Printing the token is this command's whole job (the one place a secret reaches stdout).
    sys.stdout.write(tokens.access_token + "\n")
    return 0


def cmd_refresh(core: Core, args: argparse.Namespace) -> int:
    tokens = core.service.refresh(args.name, force=args.force)
    say(f"{args.name}: access token valid {valid_until(tokens.access_expires_at)}")
    return 0


def cmd_export(core: Core, args: argparse.Namespace) -> int:
    core.service.export(args.name, args.format, args.output, keep_synced=args.keep_synced)
    synced = " (kept in sync after every refresh)" if args.keep_synced else ""
    say(f"wrote {args.output}{synced}")
    return 0


def cmd_logout(core: Core, args: argparse.Namespace) -> int:
    core.accounts.logout(args.name, forget_device=args.forget_device)
    forgot = " and the remembered device forgotten" if args.forget_device else ""
    say(f"logged out of {args.name}: tokens deleted{forgot}")
    return 0


def _stdin_line(what: str) -> str:
    line = sys.stdin.readline().strip()
    if not line:
        raise UsageError(f"{what}: nothing was read from standard input")
    return line


def _db_choice(args: argparse.Namespace, password: str | None) -> DbChoice:
    from tdgui.core.sharing import DbChoice

    return DbChoice(
        url=args.db,
        password=password,
        schema=args.db_schema,
        allow_insecure=args.allow_insecure,
        secrets=args.db_secrets,
    )


def cmd_share(core: Core, args: argparse.Namespace) -> int:
    from tdgui.core.sharing import share

    password = _stdin_line("--db-password-stdin") if args.db_password_stdin else None
    key = share(core.service, args.name, _db_choice(args, password), replace_existing=args.replace)
    # The key is printed once, here (it is this command's result, like `tdgui token`'s token).
    sys.stdout.write(key.encode() + "\n")
    say(
        f"shared {args.name}: its tokens now live in the database. On another machine run "
        f"`tdgui join {args.name} --db URL --key-stdin` and give it the key above"
    )
    return 0


def cmd_join(core: Core, args: argparse.Namespace) -> int:
    from tdgui.core.record_crypto import RecordKey
    from tdgui.core.sharing import join

    key = RecordKey.parse(_stdin_line("--key-stdin"))
    password = _stdin_line("--db-password-stdin") if args.db_password_stdin else None
    account = join(core.service, args.name, _db_choice(args, password), key)
    say(f"joined {account.name} ({account.provider}); `tdgui token {account.name}` prints its token")
    return 0


def cmd_sandbox(core: Core, args: argparse.Namespace) -> int:
    from tdgui.core import providers
    from tdgui.sandbox import serve_forever
    from tdgui.sandbox.certs import sandbox_state_dir

    if getattr(args, "schwab_real", False):
        from tdgui.sandbox.runner import serve_schwab_real

        serve_schwab_real(sandbox_state_dir(core.env.config_dir))
        return 0
    serve_forever(
        sandbox_state_dir(core.env.config_dir),
        port=args.port if args.port is not None else providers.SANDBOX_DEFAULT_PORT,
        flavor=args.flavor,
        access_ttl=args.access_ttl,
        refresh_ttl=args.refresh_ttl,
        rotate=args.rotate,
    )
    return 0


def qt_install_command() -> str:
    """The exact command that installs the Qt this tdgui was built against, for this interpreter."""
    from importlib import metadata

    try:
        declared = metadata.requires("tdgui") or []
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        declared = []
    # The pinned version from the installed metadata (a default dependency, not an extra).
    pins = [line.split(";")[0].replace(" ", "") for line in declared if line.startswith("PySide6")]
    requirement = pins[0] if pins else "PySide6"
    return f"{sys.executable} -m pip install {requirement}"


def _qt_missing() -> str | None:
    """The first Qt module the desktop app needs that cannot be found; None when all are there.

    find_spec locates the modules without loading Qt's libraries: the check costs nothing when
    Qt is there, and `tdgui --help`, `tdgui token` never reach it.
    """
    from importlib.util import find_spec

    for module in ("PySide6", "PySide6.QtWidgets", "PySide6.QtWebEngineWidgets"):
        try:
            if find_spec(module) is None:
                return module
        except ModuleNotFoundError:  # the parent package itself is missing
            return module
    return None


def cmd_gui(core: Core, args: argparse.Namespace) -> int:
    # A server install leaves Qt out (README "Install"): one line with the exact command, exit 2
    # (the environment lacks something the user can add), never "unexpected error" (issue 14).
    missing = _qt_missing()
    if missing is not None:
        print(
            f"tdgui: the desktop app needs Qt ({missing} is not installed); install it with: "
            f"{qt_install_command()}  (the command line, `tdgui --help`, works without it)",
            file=sys.stderr,
        )
        return 2
    if args.self_test:
        from tdgui.qt.selftest import run_self_test

        return int(run_self_test(args.screenshot))
    from tdgui.qt.app import run_gui

    return int(run_gui(core, minimized=args.minimized))


COMMANDS: dict[str, Callable[[Core, argparse.Namespace], int]] = {
    "accounts": cmd_accounts,
    "login": cmd_login,
    "status": cmd_status,
    "token": cmd_token,
    "refresh": cmd_refresh,
    "export": cmd_export,
    "logout": cmd_logout,
    "share": cmd_share,
    "join": cmd_join,
    "sandbox": cmd_sandbox,
    "gui": cmd_gui,
}

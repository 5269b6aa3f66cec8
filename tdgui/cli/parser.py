"""The `tdgui` command line's arguments, help texts and exit-code table; choices come from core."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from tdgui import __version__
from tdgui.core import providers
from tdgui.core.config import EXPORT_FORMATS
from tdgui.core.stores import STORE_KINDS

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
  warnings                list of strings: an odd provider answer (a lifetime replaced by the
                          default), a refresh cut off or whose answer was lost
"""

ACCOUNTS_JSON = """--json prints a JSON list with one object per account; these fields are stable:
  name, provider, client_id, callback_url, store   strings
  flavor, sandbox_url                              sandbox only, else null
  authorize_url, token_url, auth_method            custom only, else null
  scopes                                           list of strings
  pkce                                             true or false
  db_url, db_schema, db_key_id, db_secrets,        postgres accounts only (absent for others):
  db_allow_insecure                                strings or null; true or false
  exports                                          list of {"format": ..., "path": ...}
                                                   (token files kept in sync)
No secret is ever part of it.
"""


SHARE_HELP = """share prints the account's key once on stdout: keep it, it is the only way to join.
join reads the key from the first line of stdin; with --db-password-stdin the database
password is the next line (share: the first). The URL never carries a password (it is kept
in accounts.json); without --db-password-stdin libpq's ~/.pgpass or PGPASSWORD are used.
The key and the password go to the keyring, or with --db-secrets file to a 0600 file in
the config directory.
"""


def _db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", required=True, metavar="URL", help="postgresql://USER@HOST:PORT/DB (no password)"
    )
    parser.add_argument("--db-password-stdin", action="store_true", help="read the DB password from stdin")
    parser.add_argument("--db-schema", metavar="NAME", help="schema for tdgui's tables (default: tdgui)")
    parser.add_argument(
        "--db-secrets",
        choices=("keyring", "file"),
        default="keyring",
        help="where this machine keeps the key and password (default: keyring)",
    )
    parser.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow sslmode weaker than require to another machine (not recommended)",
    )


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
    # Internal: the desktop app's login view runs in this child process (tdgui.qt.login.child).
    parser.add_argument("--login-child", action="store_true", help=argparse.SUPPRESS)
    # Internal: the desktop app runs token operations in this child process (tdgui.core.ops).
    parser.add_argument("--ops-child", action="store_true", help=argparse.SUPPRESS)
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
    add.add_argument("--provider", required=True, choices=providers.PROVIDER_NAMES)
    add.add_argument("--client-id", help="app key (consumer key); sandbox: built in")
    add.add_argument("--callback-url", help="exactly as registered, e.g. https://127.0.0.1:8182/")
    add.add_argument("--client-secret-stdin", action="store_true", help="read the app secret from stdin")
    add.add_argument("--store", choices=STORE_KINDS, default=STORE_KINDS[0])
    add.add_argument("--flavor", choices=providers.SANDBOX_FLAVORS, help="sandbox: which broker to emulate")
    add.add_argument("--sandbox-url", help="sandbox: its base URL (default: TD_SANDBOX_URL or built in)")
    add.add_argument("--authorize-url", help="custom: authorization endpoint")
    add.add_argument("--token-url", help="custom: token endpoint")
    add.add_argument("--auth-method", choices=providers.AUTH_METHODS, help="custom")
    add.add_argument("--scope", action="append", default=[], help="custom: a scope (repeatable)")
    add.add_argument("--pkce", action=argparse.BooleanOptionalAction, default=True, help="custom: PKCE S256")
    add.add_argument(
        "--remember-device",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="keep the login window's cookies so the broker asks for a security code less often "
        "(off by default; anyone with your files could reuse them)",
    )
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
    exp.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    exp.add_argument("--output", required=True, type=Path)
    exp.add_argument("--keep-synced", action="store_true", help="rewrite the file after every refresh")

    logout = command("logout", "delete the stored tokens of an account")
    logout.add_argument("name")
    logout.add_argument(
        "--forget-device", action="store_true", help="also wipe the login window's remembered cookies"
    )

    share = command(
        "share",
        "move an account's tokens into a PostgreSQL database other machines can join",
        SHARE_HELP,
    )
    share.add_argument("name")
    _db_options(share)
    share.add_argument(
        "--replace", action="store_true", help="start over if the database already holds this account"
    )

    join = command("join", "use an account shared with `tdgui share` on this machine", SHARE_HELP)
    join.add_argument("name")
    join.add_argument("--key-stdin", action="store_true", required=True, help="read the key from stdin")
    _db_options(join)

    sandbox = command("sandbox", "run the local HTTPS broker emulator")
    sandbox.add_argument("--port", type=int, help="default: the port sandbox accounts point at")
    sandbox.add_argument("--flavor", choices=providers.SANDBOX_FLAVORS, help="default: both")
    sandbox.add_argument("--access-ttl", type=int, default=1800, metavar="S")
    sandbox.add_argument("--refresh-ttl", type=int, metavar="S")
    sandbox.add_argument("--rotate", action="store_true", help="rotate refresh tokens, revoke on reuse")
    sandbox.add_argument(
        "--schwab-real",
        action="store_true",
        help="the multi-host Schwab login emulator instead (a free port)",
    )
    return parser

"""The `tdgui` command line: accounts, login, status, token, refresh, export, sandbox. Never imports Qt."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

from tdgui.core.environment import Environment
from tdgui.core.errors import TdguiError

if TYPE_CHECKING:
    import argparse

    from tdgui.core.root import Core

__all__ = ["main"]

log = logging.getLogger(__name__)


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
        retry_chatter = record.name == "tdgui.core.oauth" and record.levelno < logging.ERROR
        return not (self.quiet_retries and retry_chatter)


def _setup_logging(debug: bool, env: Environment) -> None:
    """--debug: DEBUG to stderr and tracebacks; TD_LOG_LEVEL=LEVEL: that level, also to stderr."""
    from tdgui.core.logs import setup_logging

    setup_logging(
        "DEBUG" if debug else env.log_level, to_stderr=debug or bool(env.log_level), log_dir=env.log_dir
    )
    if debug:
        return
    terminal = _TerminalFilter(quiet_retries=not (env.log_level or sys.stderr.isatty()))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            if not any(isinstance(f, _TerminalFilter) for f in handler.filters):
                handler.addFilter(terminal)


def _token_fast_path(argv: Sequence[str] | None) -> SimpleNamespace | None:
    """`tdgui token NAME` exactly, parsed without argparse's tree of 15 sub-parsers.

    Scripts call this once per API session, so its start-up is the command's cost (issue 12,
    bench row 9: within 1.3x of a bare psycopg connect + SELECT). Anything else (an option,
    a NAME starting with "-", a missing or extra argument) goes through the full parser, which
    gives the same result or the documented usage error, exit 2."""
    words = list(sys.argv[1:] if argv is None else argv)
    if len(words) != 2 or words[0] != "token" or not words[1] or words[1].startswith("-"):
        return None
    # Not argparse.Namespace: importing argparse (and its gettext) is part of what is saved.
    return SimpleNamespace(command="token", name=words[1], debug=False, ops_child=False)


def _print_token(core: Core, name: str) -> int:
    """What `tdgui.cli.commands.cmd_token` does, without importing the other commands."""
    tokens = core.service.get_token(name)
    # Printing the token is this command's whole job (the one place a secret reaches stdout).
    sys.stdout.write(tokens.access_token + "\n")
    sys.stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from tdgui.core.hardening import disable_core_dumps

    disable_core_dumps()  # first: every tdgui process may hold secrets (issue 11 #15)
    if list(sys.argv[1:] if argv is None else argv) == ["--login-child"]:
        # The login view's process needs Qt and the login protocol, not the parser's imports
        # (config, stores): it is started with exactly this one argument (tdgui.qt.login.parent).
        from tdgui.qt.login.child import main as login_child_main

        return int(login_child_main())
    args: argparse.Namespace | SimpleNamespace | None = _token_fast_path(argv)
    if args is None:
        from tdgui.cli.parser import build_parser

        args = build_parser().parse_args(argv)
    try:
        env = Environment.from_os()
        _setup_logging(args.debug, env)
        from tdgui.core import signals

        signals.set_notice(lambda message: print(message, file=sys.stderr, flush=True))
        if args.ops_child:
            from tdgui.core.ops import serve

            return serve(env, sys.stdin, sys.stdout)
        from tdgui.core.root import build_core

        if isinstance(args, SimpleNamespace):  # the `token NAME` fast path
            return _print_token(build_core(env), args.name)
        from tdgui.cli.commands import COMMANDS

        handler = COMMANDS[args.command or "gui"]
        code = int(handler(build_core(env), args))
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

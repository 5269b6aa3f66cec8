"""`tdgui token NAME` starts without the rest of the CLI (issue 12, bench row 9), same behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.sandbox import add_sandbox_account, log_in, start_sandbox
from tdgui.core.service import TokenService

#: What the token path must not import: the argparse tree, the other commands and their
#: output helpers, the first-login hints. Each is start-up time a script pays per call.
NOT_ON_THE_TOKEN_PATH = ("argparse", "tdgui.cli.parser", "tdgui.cli.commands", "tdgui.cli.output")


def _tdgui(*args: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    flags = ["-X", "importtime"] if importtime else []
    env = {k: v for k, v in os.environ.items() if k != "TD_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, *flags, "-m", "tdgui", *args], capture_output=True, text=True, env=env, timeout=60
    )


def _imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_token_imports_neither_the_parser_nor_the_other_commands(isolated_config: Path) -> None:
    server = start_sandbox()
    try:
        add_sandbox_account(server, "demo", store="file")
        service = TokenService()
        log_in(service, "demo")
        stored = service.read_tokens(service.account("demo"))
        assert stored is not None
        done = _tdgui("token", "demo", importtime=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout == stored.access_token + "\n"
        imported = _imported(done.stderr)
        assert "tdgui.core.service" in imported  # the profile is real
        assert not imported & set(NOT_ON_THE_TOKEN_PATH), sorted(imported & set(NOT_ON_THE_TOKEN_PATH))
        # Any other spelling takes the full parser and prints the same.
        debug = _tdgui("--debug", "token", "demo", importtime=True)
        assert debug.returncode == 0 and debug.stdout == done.stdout
        assert "tdgui.cli.parser" in _imported(debug.stderr)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("token", "nosuch"), 2, "no account named 'nosuch'"),
        (("token",), 2, "the following arguments are required: name"),
        (("token", "a", "b"), 2, "unrecognized arguments: b"),
        (("token", "--nope"), 2, "the following arguments are required: name"),
    ],
)
def test_token_errors_are_unchanged(
    isolated_config: Path, args: tuple[str, ...], code: int, needle: str
) -> None:
    done = _tdgui(*args)
    assert done.returncode == code, done.stderr
    assert needle in done.stderr and done.stderr.startswith("tdgui")
    assert done.stderr.count("\n") == 1 and done.stdout == ""

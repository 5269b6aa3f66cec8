"""Row 26 (issue 11 #8, issue 12): kept token files follow a refresh done on another machine.

Two "machines" (two HOME + TD_CONFIG_DIR pairs) share one account through the real
PostgreSQL (`tdgui share` on A, `tdgui join` on B); the sandbox rotates refresh tokens. A has
a `--keep-synced` export. B refreshes, so the file on A holds a rotated-out refresh token
until A's tdgui learns of the new tokens. Must hold: the first time A reads the newer tokens,
through `tdgui token`, `tdgui status` or the tray scheduler's wake-up (`service.refresh` of an
account that is not due: what `Controller.refresh(name, force=False)` runs), the kept file
is rewritten with them. Before the fix only a refresh on A itself rewrote it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.postgres import PgServer
from rel_support import add_sandbox_account, log_in, start_sandbox_for_test
from tdgui.core.config import Config
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer

REPO = Path(__file__).resolve().parents[2]
NAME = "r26"


class TwoMachines:
    def __init__(self, server: PgServer, schema: str, tmp: Path, a_config: Path) -> None:
        self.server, self.schema, self.tmp, self.a_config = server, schema, tmp, a_config

    def env(self, machine: str) -> dict[str, str]:
        home = self.tmp / f"machine-{machine}"
        (home / "home").mkdir(parents=True, exist_ok=True)
        config = self.a_config if machine == "A" else home / "config"
        env = dict(os.environ, HOME=str(home / "home"), TD_CONFIG_DIR=str(config), PYTHONPATH=str(REPO))
        for var in ("PGPASSWORD", "PGPASSFILE", "PGSSLMODE", "PGSSLROOTCERT", "TD_LOG_LEVEL", "BROWSER"):
            env.pop(var, None)
        return env

    def run(self, machine: str, *args: str, stdin: str = "") -> str:
        done = subprocess.run(
            [sys.executable, "-m", "tdgui", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(machine),
            cwd=REPO,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    def db_args(self) -> list[str]:
        return ["--db", self.server.url(), "--db-schema", self.schema, "--db-password-stdin"]


@pytest.fixture
def machines(postgres_server: PgServer, tmp_path: Path, isolated_config: Path) -> Iterator[TwoMachines]:
    schema = postgres_server.fresh_schema()
    try:
        yield TwoMachines(postgres_server, schema, tmp_path, isolated_config)
    finally:
        postgres_server.drop_schema(schema)


@pytest.fixture
def sandbox(isolated_config: Path) -> Iterator[SandboxServer]:
    server = start_sandbox_for_test(rotate=True)
    try:
        yield server
    finally:
        server.stop()


def _kept_refresh_token(path: Path) -> str:
    return str(json.loads(path.read_text())["token"]["refresh_token"])


def _shared_refresh_token() -> str:
    service = TokenService(Config())
    tokens = service.read_tokens(service.account(NAME))  # machine A's view of the database
    assert tokens is not None and tokens.refresh_token
    return tokens.refresh_token


def test_kept_exports_follow_a_refresh_done_on_another_machine(
    machines: TwoMachines, sandbox: SandboxServer, tmp_path: Path, figure
) -> None:
    add_sandbox_account(sandbox, NAME, "schwab", store="file")
    log_in(TokenService(Config()), NAME)
    key = machines.run("A", "share", NAME, *machines.db_args(), stdin=machines.server.password + "\n").strip()
    machines.run(
        "B",
        "join",
        NAME,
        "--key-stdin",
        *machines.db_args(),
        "--db-secrets",
        "file",
        stdin=f"{key}\n{machines.server.password}\n",
    )
    kept = tmp_path / "desktop" / "schwab-token.json"
    machines.run("A", "export", NAME, "--format", "schwab-py", "--output", str(kept), "--keep-synced")
    assert _kept_refresh_token(kept) == _shared_refresh_token()

    readers = {
        "`tdgui token`": lambda: machines.run("A", "token", NAME),
        "`tdgui status`": lambda: machines.run("A", "status", NAME),
        "`tdgui status --json`": lambda: machines.run("A", "status", "--json"),
        "the scheduler's wake-up (service.refresh, not due)": lambda: TokenService(Config()).refresh(NAME),
    }
    caught_up = []
    for what, read_on_a in readers.items():
        machines.run("B", "refresh", NAME, "--force")
        newest = _shared_refresh_token()
        assert _kept_refresh_token(kept) != newest, "B's refresh must not touch A's files"
        read_on_a()
        if _kept_refresh_token(kept) == newest:
            caught_up.append(what)
    machines.run("A", "token", NAME)  # nothing newer: the file is left alone, no refresh sent
    stats = sandbox.stats()
    figure(
        f"row 26: {len(readers)} refreshes on machine B (postgres store); machine A's kept "
        f"schwab-py file rewritten with the new tokens after {len(caught_up)} of {len(readers)} "
        f"first reads ({', '.join(caught_up) or 'none'}); grants revoked {stats['revoked_grants']}"
    )
    assert caught_up == list(readers), f"not rewritten after: {set(readers) - set(caught_up)}"
    assert stats["revoked_grants"] == 0
    assert stats["successful_refreshes"] == len(readers)

"""Row 1: 8 processes (CLI, API session, core refresh) need one account's refresh at once.

The sandbox rotates refresh tokens and revokes the grant when a rotated-out one comes back
(RFC 9700 §4.14.2), so two refreshes would show as a revoked grant. Must hold: exactly one
refresh request, one access token for all, grant not revoked; every repetition.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from rel_support import (
    add_sandbox_account,
    ca_file,
    log_in,
    make_due,
    scale,
    wait_for,
    worker_cmd,
)
from tdgui.core.config import Config
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer

KINDS = ["cli", "cli", "cli", "session", "session", "session", "refresh", "get_token"]
STORES = ["file", "sql", "keyring"]
FLAVORS = ["schwab", "tdameritrade"]


def race_once(server: SandboxServer, name: str) -> tuple[int, set[str], int, list[str]]:
    """Start the 8 processes, release them together; (refreshes, tokens, revoked, errors)."""
    before = server.stats()
    with tempfile.TemporaryDirectory(prefix="tdgui-barrier-") as bdir:
        procs = [
            subprocess.Popen(
                worker_cmd("race", kind, name, bdir, server.base_url, str(ca_file())),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for kind in KINDS
        ]
        try:
            ready = wait_for(
                lambda: (
                    len(list(Path(bdir).glob("ready.*"))) == len(KINDS)
                    or any(p.poll() is not None for p in procs)
                ),
                90,
            )
            early = [p.communicate()[1][-800:] for p in procs if p.poll() is not None]
            assert ready and not early, f"the 8 processes did not all start: {early}"
            (Path(bdir) / "go").write_text("go")
            outputs = [p.communicate(timeout=90) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    errors = [
        f"{kind} exit {p.returncode}: {err.strip()[-500:]}"
        for kind, p, (_, err) in zip(KINDS, procs, outputs, strict=True)
        if p.returncode != 0
    ]
    tokens = {out.strip().splitlines()[-1] if out.strip() else "" for out, _ in outputs}
    after = server.stats()
    return (
        after["refresh_requests"] - before["refresh_requests"],
        tokens,
        after["revoked_grants"] - before["revoked_grants"],
        errors,
    )


def test_eight_processes_one_refresh(rotating_sandbox: SandboxServer, figure) -> None:
    server = rotating_sandbox
    repetitions = scale(3, 50)
    for flavor in FLAVORS:
        add_sandbox_account(server, name=f"race-{flavor}", flavor=flavor, store="file")
    ok = 0
    started = time.monotonic()
    for rep in range(repetitions):
        store, flavor = STORES[rep % 3], FLAVORS[rep % 2]
        name = f"race-{flavor}"
        Config().update_account(name, store=store)
        service = TokenService()
        log_in(service, name)
        make_due(service, name)
        refreshes, tokens, revoked, errors = race_once(server, name)
        stored = service.read_tokens(service.account(name))
        assert stored is not None
        detail = f"rep {rep + 1} ({store}, {flavor})"
        assert errors == [], f"{detail}: {errors}"
        assert refreshes == 1, f"{detail}: {refreshes} refresh requests"
        assert tokens == {stored.access_token}, f"{detail}: {len(tokens)} distinct tokens"
        assert revoked == 0, f"{detail}: grant revoked"
        ok += 1
    figure(
        f"row 1: {ok}/{repetitions} repetitions of 8 processes (3 CLI token, 3 API session, "
        f"1 core refresh, 1 core get_token; file/sql/keyring, both flavors): 1 refresh request "
        f"each, 1 access token each, 0 grants revoked ({time.monotonic() - started:.1f} s)"
    )

"""Single-flight refresh across real processes: 8 at once, rotation on, exactly one refresh."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

import pytest

from helpers.sandbox import add_sandbox_account, log_in, start_sandbox
from tdgui.core.service import TokenService
from tdgui.core.tokens import TokenSet

PROCESSES = 8


def make_due(service: TokenService, name: str) -> None:
    """Rewrite the stored record so its access token is inside the refresh lead time."""
    account = service.account(name)
    tokens = service.read_tokens(account)
    assert tokens is not None
    due = dataclasses.replace(tokens, access_expires_at=time.time() + 30)
    service.store(account).write(f"{name}/tokens", due.to_json())


@pytest.mark.parametrize("store", ["file", "sql", "keyring"])
def test_eight_processes_refresh_once(store: str) -> None:
    server = start_sandbox(rotate=True)
    try:
        add_sandbox_account(server, store=store)
        service = TokenService()
        log_in(service, "demo")
        make_due(service, "demo")
        before = server.stats()
        env = dict(os.environ)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tdgui", "token", "demo"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(PROCESSES)
        ]
        outputs = [p.communicate(timeout=60) for p in procs]
        codes = [p.returncode for p in procs]
        assert codes == [0] * PROCESSES, [err for _, err in outputs]
        tokens = {out.strip() for out, _ in outputs}
        after = server.stats()
        refreshes = after["refresh_requests"] - before["refresh_requests"]
        print(f"{PROCESSES} processes: {refreshes} refresh request(s), {len(tokens)} distinct token(s)")
        assert refreshes == 1
        assert len(tokens) == 1
        assert after["revoked_grants"] == 0
        stored = service.read_tokens(service.account("demo"))
        assert isinstance(stored, TokenSet) and stored.access_token == tokens.pop()
    finally:
        server.stop()

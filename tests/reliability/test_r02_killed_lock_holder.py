"""Row 2: the process holding the refresh lock is killed with SIGKILL mid-refresh.

The sandbox's "hang" fault keeps the holder blocked inside the token request (with the lock
held); we kill -9 it there. The kernel must release the flock: the next process gets the lock
within 10 s, refreshes, and the tokens stay readable (and the grant alive).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from rel_support import SOAK, add_sandbox_account, log_in, scale, wait_for, worker_cmd
from tdgui.core.config import Config
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer


@pytest.mark.parametrize("store", ["file", "sql", "keyring"] if SOAK else ["file"])
def test_killed_holder_releases_the_lock(
    rotating_sandbox: SandboxServer, store: str, figure, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = rotating_sandbox
    # The holder must still be inside its request when killed: a long HTTP timeout.
    monkeypatch.setenv("TD_HTTP_TIMEOUT", "60")
    add_sandbox_account(server, name="held", store=store)
    service = TokenService(Config())
    log_in(service, "held")
    rounds = scale(1, 5)
    waits: list[float] = []
    in_refresh: list[float] = []
    for _ in range(rounds):
        before = server.stats()
        server.set_fault("hang", count=1, hang_seconds=60)
        holder = subprocess.Popen(
            worker_cmd("refresh", "held", "force"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            # The fault is served only once the holder's request arrived: it holds the lock now.
            arrived = wait_for(
                lambda: (
                    server.stats()["faults_served"] > before["faults_served"] or holder.poll() is not None
                ),
                60,
            )
            assert arrived and holder.poll() is None, holder.communicate()[1][-800:]
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(timeout=10)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
        assert holder.returncode == -signal.SIGKILL
        started = time.monotonic()
        result = subprocess.run(
            worker_cmd("refresh", "held", "force"), capture_output=True, text=True, timeout=30
        )
        waited = time.monotonic() - started
        assert result.returncode == 0, result.stderr[-800:]
        body = json.loads(result.stdout)
        waits.append(waited)
        assert waited < 10, f"the next process needed {waited:.1f} s"
        in_refresh.append(body["elapsed"])
        stored = service.read_tokens(service.account("held"))
        assert stored is not None and stored.access_token == body["token"]
        assert server.stats()["revoked_grants"] == 0
    figure(
        f"row 2 ({store}): holder SIGKILLed inside a hanging refresh {rounds}x; next process done "
        f"in {max(waits):.2f} s max incl. start-up, lock + refresh {max(in_refresh):.2f} s "
        "(limit 10 s), tokens readable, 0 grants revoked"
    )

"""Row 40: the PostgreSQL server restarts while the refresh-lock holder is inside the token request.

Machine A (this test's config dir) holds the refresh lock and waits for the sandbox's answer
(answer delay: the refresh is processed and rotated at once, the answer sent seconds later);
machine B queues on the lock; then `pg_ctl restart -m fast` / `-m immediate`. The sandbox
rotates refresh tokens and revokes the grant on reuse, so a second refresh with the old
refresh token (B refreshing while A's answer is in flight) would show as a revoked grant.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.postgres import PgServer, TwoMachines
from rel_support import add_sandbox_account, log_in, start_sandbox_for_test
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer

DELAY = 4.0


@pytest.fixture
def pair(
    postgres_server: PgServer, tmp_path: Path, isolated_config: Path
) -> Iterator[tuple[TwoMachines, SandboxServer]]:
    schema = postgres_server.fresh_schema()
    sandbox = start_sandbox_for_test(rotate=True)
    try:
        add_sandbox_account(sandbox, "demo", store="file")
        log_in(TokenService(), "demo")
        m = TwoMachines(postgres_server, tmp_path, isolated_config, schema)
        m.share_and_join()
        yield m, sandbox
    finally:
        sandbox.stop()
        postgres_server.drop_schema(schema)


def _wait(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_server_restart_mid_refresh(
    pair: tuple[TwoMachines, SandboxServer], mode: str, figure: Callable[[str], None]
) -> None:
    m, sandbox = pair
    m.expire_access_token()  # nobody can serve the old access token: both need the refresh
    sandbox.reset_stats()
    sandbox.set_answer_delay(DELAY)
    holder = m.popen("A", "token", "demo")
    _wait("A's refresh processed by the sandbox", lambda: sandbox.stats()["successful_refreshes"] == 1)
    waiter = m.popen("B", "token", "demo")
    _wait("B queued on A's refresh lock", lambda: m.advisory_waiters() >= 1)
    away = m.restart(mode)
    restarted = time.monotonic()
    # Within 10 s of the restart a third process on B gets a token (no deadlock).
    late = m.run("B", "token", "demo", timeout=30)
    late_took = time.monotonic() - restarted
    h_out, h_err = holder.communicate(timeout=60)
    w_out, w_err = waiter.communicate(timeout=60)
    sandbox.set_answer_delay(0)
    stats = sandbox.stats()
    final = m.tokens()
    rows = m.all_rows_decrypt()
    secrets = [final.access_token, final.refresh_token or "-", m.server.password, m.key.encode()]
    for code, out, err, who in (
        (holder.returncode, h_out, h_err, "A"),
        (waiter.returncode, w_out, w_err, "B"),
    ):
        assert code in (0, 5), f"{who}: exit {code}: {err}"
        if code == 5:
            assert "PostgreSQL on 127.0.0.1" in err, err
        else:
            assert out.strip() == final.access_token, f"{who} printed another token than the stored one"
        for secret in secrets[2:]:
            assert secret not in err
    assert late.returncode == 0, late.stderr
    assert late.stdout.strip() == final.access_token
    assert late_took < 10, f"the other machine got a token {late_took:.1f} s after the restart"
    assert stats["successful_refreshes"] == 1 and stats["revoked_grants"] == 0, stats
    # The grant still works: one more (forced) refresh is accepted.
    again = m.run("B", "refresh", "demo", "--force")
    assert again.returncode == 0, again.stderr
    assert sandbox.stats()["revoked_grants"] == 0 and sandbox.stats()["successful_refreshes"] == 2
    figure(
        f"row 40: pg_ctl restart -m {mode} ({away:.1f} s) while A waited {DELAY:g} s for the answer: "
        f"A exit {holder.returncode}, queued B exit {waiter.returncode}, a new B token after "
        f"{late_took:.1f} s; 1 refresh, 0 grants revoked, grant refreshed again; {rows} rows decrypt"
    )

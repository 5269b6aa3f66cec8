"""Row 23 (issue 11, "a refresh whose fate is unknown"): a refresh SIGKILLed with its request out
shows honestly in `tdgui status`, and the next `tdgui token` works or says why a login is needed.

The sandbox processes the refresh and holds the answer (answer_delay), and `tdgui token` is
SIGKILLed then: the status record still carries "refresh in flight", no process holds the
refresh lock, so `status` (human and --json) says the refresh never finished. With rotation
the provider has already replaced the refresh token: the next `token` gets exit 3 (login
required) with that explanation. Without rotation (Schwab keeps the refresh token) the next
`token` just works and the mark is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rel_support import add_sandbox_account, log_in, make_due, start_sandbox_for_test
from tdgui.core.config import Config
from tdgui.core.service import TokenService


def _tdgui(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TD_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "tdgui", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("rotate", [True, False], ids=["rotating", "not-rotating"])
def test_a_killed_refresh_shows_in_status(rotate: bool, figure) -> None:
    server = start_sandbox_for_test(rotate=rotate, answer_delay=3.0)
    try:
        add_sandbox_account(server, "r23", "schwab", store="file")
        service = TokenService(Config())
        log_in(service, "r23")
        make_due(service, "r23")
        before = server.stats()["refresh_requests"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "tdgui", "token", "r23"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while server.stats()["refresh_requests"] == before:
            assert proc.poll() is None and time.monotonic() < deadline, "the refresh never arrived"
            time.sleep(0.005)
        time.sleep(0.2)  # processed by the provider, the answer held
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        server.set_answer_delay(0)

        human = _tdgui("status", "r23")
        assert human.returncode == 0, human.stderr
        assert "never finished" in human.stdout, human.stdout
        shown = json.loads(_tdgui("status", "r23", "--json").stdout)
        shown = shown[0] if isinstance(shown, list) else shown
        assert any("never finished" in w for w in shown["warnings"]), shown
        assert "never finished" in (shown["last_error"] or "")

        after = _tdgui("token", "r23")
        if rotate:
            assert after.returncode == 3, (after.returncode, after.stderr)
            assert "never finished" in after.stderr, after.stderr
            outcome = "exit 3, login required, explained"
        else:
            assert after.returncode == 0, after.stderr
            assert service.refresh_record("r23").refresh_started_at is None
            assert "never finished" not in _tdgui("status", "r23").stdout
            outcome = "token works, mark cleared"
        figure(
            f"row 23 ({'rotating' if rotate else 'not rotating'}): refresh SIGKILLed with the request "
            f"out: status says it never finished; next token: {outcome}"
        )
    finally:
        server.stop()

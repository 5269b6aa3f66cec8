"""The sandbox's control API (stats, faults, clock) over HTTP: only with the run's secret."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import requests

from tdgui.sandbox import CONTROL_HEADER, SandboxServer, control_secret_file, read_control_secret

from .support import assert_oauth_error, control, get, schwab_refresh, schwab_tokens


def test_stats_and_requests(server: SandboxServer) -> None:
    tokens = schwab_tokens(server)
    schwab_refresh(server, tokens["refresh_token"])
    stats = get(server, "/_sandbox/stats", headers=server.control_headers).json()
    assert stats == server.stats()
    assert stats["token_requests"] == 2
    assert stats["code_exchanges"] == 1
    assert stats["refresh_requests"] == 1
    assert stats["revoked_grants"] == 0 and stats["faults_served"] == 0
    assert ("POST", "/v1/oauth/token", "refresh_token") in server.requests
    assert ("GET", "/v1/oauth/authorize", None) in server.requests
    assert control(server, "/_sandbox/reset-stats").status_code == 200
    assert server.stats()["token_requests"] == 0 and server.requests == []


def test_clock_can_be_advanced_over_http(server: SandboxServer) -> None:
    tokens = schwab_tokens(server)
    assert control(server, "/_sandbox/advance-clock", {"seconds": 7 * 86400}).status_code == 200
    r = schwab_refresh(server, tokens["refresh_token"])
    assert_oauth_error(r, 400, "refresh_token_authentication_error")


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", "x" * 43])
def test_controls_refuse_a_request_without_the_runs_secret(server: SandboxServer, secret: str | None) -> None:
    """Issue 11 finding 17: any local user could queue faults, move the clock or read stats."""
    tokens = schwab_tokens(server)
    headers = {} if secret is None else {CONTROL_HEADER: secret}
    ca = server.certs.ca_file

    def post(path: str, body: dict[str, object]) -> requests.Response:
        return requests.post(server.base_url + path, json=body, headers=headers, verify=ca, timeout=5)

    assert post("/_sandbox/fault", {"kind": "invalid_grant", "count": 5}).status_code == 403
    assert post("/_sandbox/advance-clock", {"seconds": 8 * 86400}).status_code == 403
    assert post("/_sandbox/reset-stats", {}).status_code == 403
    stats = requests.get(server.base_url + "/_sandbox/stats", headers=headers, verify=ca, timeout=5)
    assert stats.status_code == 403 and "token_requests" not in stats.text
    # Nothing was changed: no fault queued, the clock not moved, the counters kept.
    assert schwab_refresh(server, tokens["refresh_token"]).status_code == 200
    assert server.stats()["faults_served"] == 0 and server.stats()["token_requests"] == 2


def test_control_secret_is_per_run_and_in_a_private_file(shared_dir: Path) -> None:
    with SandboxServer(shared_dir) as one, SandboxServer(shared_dir) as two:
        assert one.control_secret != two.control_secret
        path = control_secret_file(shared_dir, one.port)
        assert read_control_secret(shared_dir, one.port) == one.control_secret
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(shared_dir.stat().st_mode) == 0o700
        # One run's secret does not open another's controls.
        assert control(two, "/_sandbox/clear-faults", secret=one.control_secret).status_code == 403
        assert control(two, "/_sandbox/clear-faults").status_code == 200
    assert not path.exists()  # removed when the run ends

"""Switchable faults of the sandbox's token endpoint and the control API that queues them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tdgui.sandbox import SandboxServer

from .support import (
    TDA_ID,
    assert_oauth_error,
    control,
    schwab_refresh,
    schwab_token,
    schwab_tokens,
    tda_token,
)

# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("kind", "status", "check"),
    [
        ("500", 500, None),
        ("503", 503, None),
        ("429", 429, None),
        ("malformed", 200, "malformed"),
        ("no_access_token", 200, "no_access_token"),
        ("html", 200, "html"),
        ("invalid_grant", 400, "invalid_grant"),
        ("invalid_client", 401, "invalid_client"),
        ("refresh_token_authentication_error", 400, "refresh_token_authentication_error"),
    ],
)
def test_faults(server: SandboxServer, kind: str, status: int, check: str | None) -> None:
    tokens = schwab_tokens(server)
    server.set_fault(kind, count=2)
    for _ in range(2):
        r = schwab_refresh(server, tokens["refresh_token"])
        assert r.status_code == status
        if check == "malformed":
            assert r.text == '{"access_token": '
            with pytest.raises(ValueError):
                r.json()
        elif check == "no_access_token":
            assert "access_token" not in r.json()
        elif check == "html":
            assert r.headers["Content-Type"].startswith("text/html")
        elif check is not None:
            assert r.json()["error"] == check
    assert schwab_refresh(server, tokens["refresh_token"]).status_code == 200
    stats = server.stats()
    assert stats["faults_served"] == 2
    assert stats["refresh_requests"] == 3


def test_fault_retry_after_and_http_control(server: SandboxServer) -> None:
    r = control(server, "/_sandbox/fault", {"kind": "503", "count": 1, "retry_after": 2})
    assert r.status_code == 200
    r = tda_token(server, {"grant_type": "refresh_token", "refresh_token": "x", "client_id": TDA_ID})
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "2"
    r = control(server, "/_sandbox/fault", {"kind": "nonsense"})
    assert r.status_code == 400
    server.set_fault("500", count=5)
    server.clear_faults()
    r = tda_token(server, {"grant_type": "refresh_token", "refresh_token": "x", "client_id": TDA_ID})
    assert_oauth_error(r, 400, "invalid_grant")


def test_hang_fault_closes_without_answer_and_does_not_block_stop(shared_dir: Path) -> None:
    srv = SandboxServer(shared_dir).start()
    srv.set_fault("hang", hang_seconds=0.3)
    with pytest.raises(requests.exceptions.ConnectionError):
        schwab_refresh(srv, "x")
    srv.set_fault("hang", hang_seconds=60)
    with pytest.raises(requests.exceptions.ReadTimeout):
        schwab_token(srv, {"grant_type": "refresh_token", "refresh_token": "x"}, timeout=0.3)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2
    assert srv.stats()["faults_served"] == 2

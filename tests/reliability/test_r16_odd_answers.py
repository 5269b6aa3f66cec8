"""Row 16 (issue 11, finding 1): an odd field in a successful refresh answer never throws the
new refresh token away.

A rotating provider (tests/helpers/hostile_provider.py) answers a refresh with a new refresh
token and an odd lifetime. Must hold: the new tokens are stored, the lifetime falls back to
the provider's default with a warning (on the TokenSet and in the log), every time stays in
range for time.localtime, exactly one request is sent (no retry with the rotated-out token),
and the grant still works afterwards. Through real `tdgui token` / `tdgui status` processes
too, for the 1e20 case that used to make them exit 1.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.hostile_provider import Answer, HostileProvider, add_account, seed_tokens, start_for_config
from tdgui.core.config import Config
from tdgui.core.providers import ACCESS_LIFETIME
from tdgui.core.service import TokenService

ODD = {
    "expires_in=-5": {"expires_in": -5},
    "expires_in=soon": {"expires_in": "soon"},
    "expires_in=1e20": {"expires_in": 1e20},
    "expires_in=NaN": {"expires_in": math.nan},
    "expires_in=true": {"expires_in": True},
    "expires_in=10**400": {"expires_in": 10**400},
    "expires_in=[]": {"expires_in": []},
    "refresh_token_expires_in=x": {"refresh_token_expires_in": "x"},
    "refresh_token_expires_in=-1": {"refresh_token_expires_in": -1},
    "refresh_token_expires_in=1e300": {"refresh_token_expires_in": 1e300},
}


@pytest.fixture
def provider(isolated_config: Path) -> Iterator[HostileProvider]:
    server = start_for_config(isolated_config)
    try:
        yield server
    finally:
        server.stop()


def odd_answer(provider: HostileProvider, odd: dict[str, Any]) -> Answer:
    def answer(seen: Any) -> Answer:
        body = provider.rotate(seen.form, **odd)
        # json.dumps cannot write 10**400 as a float, and writes NaN as NaN (as a broken
        # provider would): build the text by hand.
        text = json.dumps({k: v for k, v in body.items() if k not in odd})[:-1]
        for key, value in odd.items():
            literal = "NaN" if isinstance(value, float) and math.isnan(value) else json.dumps(value)
            text += f", {json.dumps(key)}: {literal}"
        return Answer(200, text + "}", headers={"Content-Type": "application/json"})

    return answer


@pytest.mark.parametrize("label", list(ODD))
def test_odd_lifetime_keeps_the_rotated_refresh_token(
    provider: HostileProvider, label: str, figure, caplog: pytest.LogCaptureFixture
) -> None:
    # Schwab ignores refresh_token_expires_in (its refresh token dies 7 days after the
    # login); TD Ameritrade reads it.
    add_account(provider, store="file", flavor="tdameritrade" if label.startswith("refresh") else "schwab")
    service = TokenService(Config())
    seed_tokens(service, provider)
    provider.script(odd_answer(provider, ODD[label]))
    before = provider.token_requests()
    with caplog.at_level(logging.WARNING):
        tokens = service.refresh("acct", force=True)
    assert provider.token_requests() - before == 1, "sent more than once"
    stored = service.read_tokens(service.account("acct"))
    assert stored == tokens
    assert stored.refresh_token == provider.live_refresh, "the rotated refresh token was not stored"
    assert tokens.warnings and any(label.split("=")[0] in w for w in tokens.warnings)
    assert any(label.split("=")[0] in r.getMessage() for r in caplog.records)
    if label.startswith("expires_in"):
        assert tokens.access_expires_at - tokens.received_at == ACCESS_LIFETIME
    for value in (tokens.access_expires_at, tokens.refresh_expires_at, tokens.login_at, tokens.received_at):
        assert value is not None
        time.localtime(value)  # no OverflowError later, in status or the GUI
    # The grant is alive: the next refresh (with what was stored) is accepted.
    again = service.refresh("acct", force=True)
    assert again.refresh_token == provider.live_refresh and not again.warnings
    figure(f"row 16 ({label}): stored after 1 request, warning {tokens.warnings[0]!r}; grant alive")


def test_odd_answer_through_real_cli_processes(provider: HostileProvider, figure) -> None:
    """`tdgui token` after a 1e20 answer exits 0 and prints the new token; `status` works."""
    add_account(provider, store="file")
    service = TokenService(Config())
    seed_tokens(service, provider)
    provider.script(odd_answer(provider, {"expires_in": 1e20, "refresh_token_expires_in": 1e20}))
    env = {**os.environ, "TD_LOG_LEVEL": "INFO"}
    token = subprocess.run(
        [sys.executable, "-m", "tdgui", "token", "acct"], capture_output=True, text=True, env=env, timeout=60
    )
    assert token.returncode == 0, token.stderr
    issued = provider.issued[-1]
    assert token.stdout.strip() == issued["access_token"]
    assert "expires_in" in token.stderr  # the warning reached the user
    status = subprocess.run(
        [sys.executable, "-m", "tdgui", "status"], capture_output=True, text=True, env=env, timeout=60
    )
    assert status.returncode == 0, status.stderr
    as_json = subprocess.run(
        [sys.executable, "-m", "tdgui", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body[0]["access_expires_in"] <= ACCESS_LIFETIME
    stored = service.read_tokens(service.account("acct"))
    assert stored is not None
    assert stored.refresh_token == provider.live_refresh
    figure("row 16 (CLI, expires_in=1e20): `tdgui token` exit 0, `status` exit 0, rotated token stored")

"""Row 20 (issue 11, finding 19): a refresh whose answer was lost after it was sent is not
resent blindly with a refresh token the provider may already have rotated.

The provider (tests/helpers/hostile_provider.py) rotates on every refresh and revokes the
grant when a rotated-out token comes back (RFC 9700 §4.14.2, no grace period). It processes
the refresh, then loses the answer: 502, 504, 500, the connection dropped, a read timeout,
or a 200 that is not JSON. Policy (docs/reliability.md, "answers lost after sending"):

- once the grant has rotated (or always, for a custom provider): exactly 1 request, a
  RefreshOutcomeUnknown, stored bytes unchanged, the status record says what happened;
- failures that provably happened before the provider acted (connection refused, 429, 503)
  are still retried, and the refresh then succeeds with the grant alive;
- a provider known not to rotate (Schwab: the refresh token stays the same) still gets the
  harmless retry after a 502.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.hostile_provider import (
    Answer,
    HostileProvider,
    Seen,
    add_account,
    seed_tokens,
    start_for_config,
    stored_bytes,
)
from tdgui.core import oauth, providers
from tdgui.core.config import Config
from tdgui.core.errors import ProviderError
from tdgui.core.service import TokenService


class ListeningClock:
    """Wall time; a backoff sleep is recorded and runs `on_sleep` instead of waiting."""

    def __init__(self, on_sleep: Callable[[], None] = lambda: None) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def now(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds
        self.on_sleep()


@pytest.fixture
def provider(isolated_config: Path) -> Iterator[HostileProvider]:
    server = start_for_config(isolated_config)
    try:
        yield server
    finally:
        server.stop()


def processed_then(provider: HostileProvider, lost: Answer) -> Callable[[Seen], Answer]:
    """The provider acts on the refresh (rotates), then the answer is lost."""

    def answer(seen: Seen) -> Answer:
        provider.rotate(seen.form)
        return lost

    return answer


LOST: dict[str, Answer] = {
    "502": Answer(502, "<html>Bad Gateway</html>"),
    "504": Answer(504, "<html>Gateway Timeout</html>"),
    "500": Answer(500, {"error": "server_error"}),
    "dropped": Answer(drop=True),
    "read timeout": Answer(200, {"access_token": "A" * 40}, delay=3.0),
    "200 not JSON": Answer(200, "<html>maintenance</html>"),
}


@pytest.mark.parametrize("label", list(LOST))
def test_lost_answer_of_a_rotating_grant_is_not_resent(
    provider: HostileProvider, label: str, monkeypatch: pytest.MonkeyPatch, figure
) -> None:
    monkeypatch.setenv("TD_HTTP_TIMEOUT", "1")
    add_account(provider, store="file")
    service = TokenService(Config(), clock=ListeningClock())
    seed_tokens(service, provider)
    first = service.refresh("acct", force=True)  # a normal refresh: the grant is seen rotating
    assert first.rotated
    before = stored_bytes(service)
    requests_before = provider.token_requests()
    provider.script(processed_then(provider, LOST[label]))
    with pytest.raises(oauth.RefreshOutcomeUnknown) as caught:
        service.refresh("acct", force=True)
    sent = provider.token_requests() - requests_before
    assert sent == 1, f"the refresh token was sent {sent} times"
    assert stored_bytes(service) == before
    assert provider.live_refresh is not None, "the provider saw a reuse and revoked the grant"
    last_error = service.status("acct").last_error or ""
    assert "may already have replaced the refresh token" in last_error
    assert not caught.value.transient
    figure(
        f"row 20 ({label} after processing, rotating grant): 1 request, outcome unknown reported, "
        "no reuse sent"
    )


def custom_client(provider: HostileProvider, clock: Any) -> oauth.TokenClient:
    custom = providers.custom(
        provider.token_url, provider.token_url, "none", (), True, ca_file=str(provider.ca_path)
    )
    return oauth.TokenClient(custom, "client", None, clock, timeout=1.0)


def test_custom_provider_lost_answer_is_not_resent(provider: HostileProvider) -> None:
    """A custom provider's rotation policy is unknown: never resend after sending."""
    client = custom_client(provider, ListeningClock())
    refresh = provider.grant()
    provider.script(processed_then(provider, Answer(502)))
    with pytest.raises(oauth.RefreshOutcomeUnknown):
        client.refresh(refresh, renew=False)
    assert provider.token_requests() == 1


def test_connection_refused_is_retried_and_succeeds(isolated_config: Path, figure) -> None:
    """Nothing was sent: a resend is harmless even for the strictest (custom) provider."""
    provider = start_for_config(isolated_config, listen=False)  # bound, not listening: refused
    try:
        clock = ListeningClock(on_sleep=lambda: provider.listen() if provider._thread is None else None)
        client = custom_client(provider, clock)
        refresh = provider.grant()
        answer = client.refresh(refresh, renew=False)
        assert answer["refresh_token"] == provider.live_refresh
        assert provider.token_requests() == 1 and len(clock.sleeps) == 1
    finally:
        provider.stop()
    figure("row 20 (connection refused, custom provider): retried after 1 backoff, 1 request, success")


@pytest.mark.parametrize("status", [429, 503])
def test_not_processed_answers_are_retried_for_a_rotating_grant(
    provider: HostileProvider, status: int, figure
) -> None:
    add_account(provider, store="file")
    clock = ListeningClock()
    service = TokenService(Config(), clock=clock)
    seed_tokens(service, provider, rotated=True)
    provider.script(Answer(status, {"error": "slow_down"}, headers={"Retry-After": "7"}))
    tokens = service.refresh("acct", force=True)
    assert provider.token_requests() == 2 and clock.sleeps == [7.0]
    assert tokens.refresh_token == provider.live_refresh
    service.refresh("acct", force=True)  # the grant is alive
    figure(f"row 20 ({status} + Retry-After 7, rotating grant): retried after 7 s, success, grant alive")


def test_a_non_rotating_grant_still_retries_a_502(provider: HostileProvider) -> None:
    """Schwab answers the same refresh token again: resending it cannot revoke anything."""
    add_account(provider, store="file")
    clock = ListeningClock()
    service = TokenService(Config(), clock=clock)
    seed = seed_tokens(service, provider)
    provider.script(Answer(502), lambda seen: Answer(200, {"access_token": "A" * 40, "expires_in": 1800}))
    tokens = service.refresh("acct", force=True)
    assert provider.token_requests() == 2
    assert tokens.refresh_token == seed.refresh_token and not tokens.rotated


def test_error_kinds() -> None:
    error = oauth.RefreshOutcomeUnknown("x")
    assert isinstance(error, ProviderError) and error.outcome_unknown and not error.transient

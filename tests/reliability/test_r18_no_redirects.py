"""Row 18 (issue 11, finding 4): the token endpoint's redirects are never followed.

The token endpoint answers 301/302/303/307/308 pointing at a second server (plain http on
127.0.0.1, the worst case: a 307/308 would resend the code, PKCE verifier, refresh token and
client secret in clear text), which would answer with good tokens. For the code exchange and
for a refresh, must hold: a ProviderError naming the status, 1 request at the endpoint, 0 at
the redirect target, the stored bytes unchanged (no tokens from the target accepted).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.hostile_provider import (
    Answer,
    HostileProvider,
    add_account,
    seed_tokens,
    start_for_config,
    stored_bytes,
)
from tdgui.core.config import Config
from tdgui.core.errors import ProviderError
from tdgui.core.service import TokenService

STATUSES = [301, 302, 303, 307, 308]


@pytest.fixture
def servers(isolated_config: Path, tmp_path: Path) -> Iterator[tuple[HostileProvider, HostileProvider]]:
    endpoint = start_for_config(isolated_config)
    target = HostileProvider(tmp_path / "target", tls=False)
    target.grant()
    try:
        yield endpoint, target
    finally:
        endpoint.stop()
        target.stop()


@pytest.mark.parametrize("status", STATUSES)
def test_refresh_redirect_is_not_followed(
    servers: tuple[HostileProvider, HostileProvider], status: int, figure
) -> None:
    endpoint, target = servers
    add_account(endpoint, store="file")
    service = TokenService(Config())
    seed_tokens(service, endpoint)
    before = stored_bytes(service)
    endpoint.script(Answer(status, headers={"Location": target.token_url}))
    with pytest.raises(ProviderError, match=rf"HTTP {status}.*never follows redirects"):
        service.refresh("acct", force=True)
    assert endpoint.token_requests() == 1
    assert target.token_requests() == 0, "the refresh token was resent to the redirect target"
    assert stored_bytes(service) == before
    status_text = service.status("acct").last_error or ""
    assert f"HTTP {status}" in status_text
    figure(f"row 18 (refresh, {status}): refused, 1 request, 0 at the target, 0 bytes changed")


@pytest.mark.parametrize("status", STATUSES)
def test_login_exchange_redirect_is_not_followed(
    servers: tuple[HostileProvider, HostileProvider], status: int, figure
) -> None:
    endpoint, target = servers
    add_account(endpoint, store="file")
    service = TokenService(Config())
    pending = service.begin_login("acct")
    redirect = f"{pending.redirect_uri}?code=C0.logincode0123456789%40&state={pending.state}"
    endpoint.script(Answer(status, headers={"Location": target.token_url}))
    with pytest.raises(ProviderError, match=rf"HTTP {status}.*never follows redirects"):
        service.finish_login(pending, redirect)
    assert endpoint.token_requests() == 1
    assert endpoint.seen[0].form.get("code") == "C0.logincode0123456789@"
    assert target.token_requests() == 0, "the code (and verifier) were resent to the redirect target"
    assert stored_bytes(service) is None, "tokens from the redirect target were stored"
    figure(f"row 18 (login exchange, {status}): refused, 1 request, 0 at the target, nothing stored")

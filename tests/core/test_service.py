"""The token service against the sandbox over real HTTPS: login, refresh, rotation, faults."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.sandbox import add_sandbox_account, config_dir, log_in, start_sandbox
from tdgui.core.accounts import AccountManager
from tdgui.core.clock import ManualClock
from tdgui.core.config import Config
from tdgui.core.errors import AccessDenied, LoginFailed, LoginRequired, ProviderError, RedirectError
from tdgui.core.schedule import AccountState
from tdgui.core.service import TokenService
from tdgui.core.stores.memory import MemoryStore
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    server = start_sandbox()
    yield server
    server.stop()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def service_for(store: MemoryStore, clock: ManualClock | None = None) -> TokenService:
    if clock is None:
        return TokenService(store_override=store)
    return TokenService(store_override=store, clock=clock)


def stored_digest(store: MemoryStore, name: str = "demo") -> str:
    return hashlib.sha256((store.read(f"{name}/tokens") or "").encode()).hexdigest()


@pytest.mark.parametrize("flavor", ["schwab", "tdameritrade"])
def test_login_and_refresh_both_flavors(server: SandboxServer, store: MemoryStore, flavor: str) -> None:
    add_sandbox_account(server, flavor=flavor)
    service = service_for(store)
    tokens = log_in(service, "demo")
    assert tokens.access_token and tokens.refresh_token
    assert server.stats()["code_exchanges"] == 1
    refreshed = service.refresh("demo", force=True)
    assert refreshed.access_token != tokens.access_token
    assert server.stats()["refresh_requests"] == 1
    assert service.status("demo").state is AccountState.VALID


def test_get_token_refreshes_only_when_due(server: SandboxServer, store: MemoryStore) -> None:
    add_sandbox_account(server)
    clock = ManualClock(start=__import__("time").time())
    service = service_for(store, clock)
    tokens = log_in(service, "demo")
    assert service.get_token("demo").access_token == tokens.access_token
    assert server.stats()["refresh_requests"] == 0
    clock.advance(1800 - 299)
    assert service.get_token("demo").access_token != tokens.access_token
    assert server.stats()["refresh_requests"] == 1


def test_rotation_keeps_the_grant_alive(store: MemoryStore) -> None:
    server = start_sandbox(rotate=True)
    try:
        add_sandbox_account(server)
        service = service_for(store)
        first = log_in(service, "demo")
        second = service.refresh("demo", force=True)
        third = service.refresh("demo", force=True)
        assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
        assert server.stats()["revoked_grants"] == 0
    finally:
        server.stop()


def test_denied_consent_and_bad_redirects_change_nothing(server: SandboxServer, store: MemoryStore) -> None:
    add_sandbox_account(server)
    service = service_for(store)
    log_in(service, "demo")
    before = stored_digest(store)
    with pytest.raises(AccessDenied):
        log_in(service, "demo", consent="deny")
    pending = service.begin_login("demo")
    redirect = login_with_requests(pending.url, config_dir() / "sandbox" / "ca.pem")
    with pytest.raises(RedirectError):
        service.finish_login(pending, redirect.replace(pending.state, "forged"))
    assert server.stats()["code_exchanges"] == 1
    assert stored_digest(store) == before


def test_a_used_code_is_rejected(server: SandboxServer, store: MemoryStore) -> None:
    add_sandbox_account(server)
    service = service_for(store)
    pending = service.begin_login("demo")
    redirect = login_with_requests(pending.url, config_dir() / "sandbox" / "ca.pem")
    service.finish_login(pending, redirect)
    before = stored_digest(store)
    with pytest.raises(LoginFailed, match="rejected the login code"):
        service.finish_login(pending, redirect)
    assert stored_digest(store) == before


@pytest.mark.parametrize("fault", ["500", "503", "malformed", "no_access_token", "html", "hang"])
def test_transient_faults_retry_three_times_and_keep_tokens(
    server: SandboxServer, store: MemoryStore, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TD_HTTP_TIMEOUT", "0.5")
    add_sandbox_account(server)
    service = service_for(store)
    tokens = log_in(service, "demo")
    before = stored_digest(store)
    server.set_fault(fault, count=3, retry_after=0.2, hang_seconds=2)
    with pytest.raises(ProviderError):
        service.refresh("demo", force=True)
    assert server.stats()["refresh_requests"] + server.stats()["faults_served"] >= 3
    assert stored_digest(store) == before
    # A still-valid access token keeps being served while the provider fails.
    server.set_fault(fault, count=3, retry_after=0.2, hang_seconds=2)
    assert service.get_token("demo").access_token == tokens.access_token
    status = service.status("demo")
    assert status.last_refresh_ok is False and status.last_error


def test_retry_after_is_honoured(server: SandboxServer, store: MemoryStore) -> None:
    add_sandbox_account(server)
    clock = ManualClock(start=__import__("time").time())
    service = service_for(store, clock)
    log_in(service, "demo")
    server.set_fault("503", count=2, retry_after=7)
    start = clock.now()
    service.refresh("demo", force=True)  # third attempt succeeds
    assert clock.now() - start >= 14  # slept Retry-After twice (the manual clock records sleeps)


def test_recovers_after_one_fault(server: SandboxServer, store: MemoryStore) -> None:
    add_sandbox_account(server)
    service = service_for(store)
    first = log_in(service, "demo")
    server.set_fault("500", count=1)
    assert service.refresh("demo", force=True).access_token != first.access_token


@pytest.mark.parametrize("fault", ["invalid_grant", "invalid_client", "refresh_token_authentication_error"])
def test_dead_grant_means_login_required_after_one_request(
    server: SandboxServer, store: MemoryStore, fault: str
) -> None:
    add_sandbox_account(server)
    add_sandbox_account(server, name="other")
    service = service_for(store)
    log_in(service, "demo")
    log_in(service, "other")
    other_before = stored_digest(store, "other")
    config_before = (config_dir() / "accounts.json").read_bytes()
    server.set_fault(fault, count=5)
    requests_before = server.stats()["token_requests"]
    with pytest.raises(LoginRequired):
        service.refresh("demo", force=True)
    assert server.stats()["token_requests"] - requests_before == 1
    assert service.status("demo").state is AccountState.LOGIN_REQUIRED

    assert service.status("other").state is AccountState.VALID
    assert stored_digest(store, "other") == other_before
    assert (config_dir() / "accounts.json").read_bytes() == config_before


def test_schwab_refresh_token_expires_after_seven_days(store: MemoryStore) -> None:
    import time

    clock = ManualClock(start=time.time())
    server = start_sandbox(clock=clock.now)
    try:
        add_sandbox_account(server)
        service = service_for(store, clock)
        log_in(service, "demo")
        clock.advance(7 * 86400 + 60)
        with pytest.raises(LoginRequired):
            service.get_token("demo")
        assert server.stats()["refresh_requests"] == 0  # known dead: no request at all
        assert service.status("demo").state is AccountState.LOGIN_REQUIRED
    finally:
        server.stop()


def test_tda_refresh_token_is_renewed_before_it_expires(store: MemoryStore) -> None:
    import time

    clock = ManualClock(start=time.time())
    server = start_sandbox(clock=clock.now)
    try:
        add_sandbox_account(server, flavor="tdameritrade")
        service = service_for(store, clock)
        first = log_in(service, "demo")
        clock.advance(85 * 86400)
        renewed = service.get_token("demo")
        assert renewed.refresh_token != first.refresh_token
        assert (
            renewed.refresh_expires_at is not None and renewed.refresh_expires_at > clock.now() + 80 * 86400
        )
    finally:
        server.stop()


def test_export_keep_synced_follows_refreshes(
    server: SandboxServer, store: MemoryStore, tmp_path: Path
) -> None:
    add_sandbox_account(server)
    service = service_for(store)
    log_in(service, "demo")
    target = tmp_path / "out" / "token.json"
    service.export("demo", "schwab-py", target, keep_synced=True)
    assert target.stat().st_mode & 0o777 == 0o600
    refreshed = service.refresh("demo", force=True)
    body = json.loads(target.read_text())
    assert body["token"]["access_token"] == refreshed.access_token
    assert body["creation_timestamp"] == int(refreshed.login_at)
    assert Config().account("demo").exports[0].format == "schwab-py"


def test_logout_and_remove(server: SandboxServer, store: MemoryStore) -> None:
    add_sandbox_account(server)
    service = service_for(store)
    log_in(service, "demo")
    service.logout("demo")
    assert store.read("demo/tokens") is None
    with pytest.raises(LoginRequired):
        service.get_token("demo")
    AccountManager(service).remove("demo")
    assert Config().accounts() == []


def test_a_refused_grant_is_not_asked_again_until_a_new_login(
    server: SandboxServer, store: MemoryStore
) -> None:
    import time

    add_sandbox_account(server)
    clock = ManualClock(start=time.time())
    service = service_for(store, clock)
    log_in(service, "demo")
    server.set_fault("invalid_grant", count=5)
    clock.advance(1800)
    before = server.stats()["token_requests"]
    for _ in range(3):
        with pytest.raises(LoginRequired):
            service.get_token("demo")
    assert server.stats()["token_requests"] - before == 1
    server.clear_faults()
    log_in(service, "demo")
    assert service.status("demo").state is AccountState.VALID
    clock.advance(1800)
    assert service.get_token("demo").access_token

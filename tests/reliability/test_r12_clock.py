"""Row 12: clock offset of ±10 min between tdgui and the provider; an +8 day jump (laptop asleep).

tdgui runs on a ManualClock; the sandbox runs on the same clock plus the offset. Must hold:
each access token refreshed at most once and never before the 5-minute lead (so at most one
refresh per access-token lifetime), every token served accepted by the provider; after the
jump "login required" for Schwab (without a request), a renewal for TD Ameritrade, no crash.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
import requests

from rel_support import SOAK, add_sandbox_account, ca_file, log_in, start_sandbox_for_test
from tdgui.core.clock import ManualClock
from tdgui.core.config import Config
from tdgui.core.errors import LoginRequired
from tdgui.core.schedule import DEFAULT_LEAD, AccountState
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer

STEP = 300.0
HOURS = 160 if SOAK else 12  # under the Schwab refresh token's 7 days
DAY = 86400.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=time.time())


def sandbox_with_offset(clock: ManualClock, offset: float) -> SandboxServer:
    return start_sandbox_for_test(clock=lambda: clock.now() + offset)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def accepted(http: requests.Session, server: SandboxServer, token: str) -> bool:
    answer = http.get(
        f"{server.base_url}/v1/userinfo", headers={"Authorization": f"Bearer {token}"}, verify=str(ca_file())
    )
    return answer.status_code == 200


@pytest.mark.parametrize("offset", [-600.0, 0.0, 600.0])
@pytest.mark.parametrize("flavor", ["schwab", "tdameritrade"])
def test_offset_clock_refreshes_once_per_lifetime(
    clock: ManualClock, http: requests.Session, offset: float, flavor: str, figure
) -> None:
    server = sandbox_with_offset(clock, offset)
    try:
        add_sandbox_account(server, name="c12", flavor=flavor)
        service = TokenService(Config(), clock=clock)
        first = log_in(service, "c12")
        lifetime = first.access_expires_at - first.received_at  # type: ignore[attr-defined]
        changes: list[float] = [clock.now()]
        current = first.access_token  # type: ignore[attr-defined]
        rejected = 0
        steps = int(HOURS * 3600 / STEP)
        for _ in range(steps):
            clock.advance(STEP)
            tokens = service.get_token("c12")
            if tokens.access_token != current:
                changes.append(clock.now())
                current = tokens.access_token
            rejected += not accepted(http, server, tokens.access_token)
        refreshes = server.stats()["refresh_requests"]
        gaps = [b - a for a, b in itertools.pairwise(changes)]
        assert refreshes == len(changes) - 1, "a refresh did not change the token, or ran twice"
        assert all(gap >= lifetime - DEFAULT_LEAD for gap in gaps), gaps  # never before the lead
        assert all(gap <= lifetime for gap in gaps), gaps  # and before expiry
        assert refreshes <= HOURS * 3600 / (lifetime - DEFAULT_LEAD) + 1
        assert rejected == 0
        assert server.stats()["revoked_grants"] == 0
        # Plain refreshes do not move the refresh token's expiry (renewal is a separate event).
        final = service.read_tokens(service.account("c12"))
        assert final is not None and final.refresh_expires_at == first.refresh_expires_at  # type: ignore[attr-defined]
    finally:
        server.stop()
    figure(
        f"row 12 ({flavor}, offset {offset:+.0f} s): {steps} get_token calls over {HOURS} h -> {refreshes} "
        f"refreshes, {min(gaps):.0f}-{max(gaps):.0f} s apart (token lifetime {lifetime:.0f} s, lead "
        f"{DEFAULT_LEAD:.0f} s), {rejected} tokens rejected by the provider, refresh-token expiry unmoved"
    )


@pytest.mark.parametrize("offset", [-600.0, 600.0])
def test_eight_day_jump(clock: ManualClock, http: requests.Session, offset: float, figure) -> None:
    server = sandbox_with_offset(clock, offset)
    try:
        add_sandbox_account(server, name="sch", flavor="schwab")
        add_sandbox_account(server, name="tda", flavor="tdameritrade")
        service = TokenService(Config(), clock=clock)
        log_in(service, "sch")
        first_tda = log_in(service, "tda")
        clock.advance(8 * DAY)  # the laptop slept for 8 days
        before = server.stats()["token_requests"]
        with pytest.raises(LoginRequired):
            service.get_token("sch")
        with pytest.raises(LoginRequired):
            service.refresh("sch", force=True)
        assert server.stats()["token_requests"] == before, "asked the provider about a dead Schwab token"
        assert service.status("sch").state is AccountState.LOGIN_REQUIRED
        assert next(p for p in service.plans() if p.name == "sch").refresh_at is None
        plans = {p.name: p for p in service.plans()}
        assert plans["sch"].login_required and plans["sch"].refresh_at is None
        assert plans["tda"].refresh_at is not None and plans["tda"].refresh_at <= clock.now()
        woke = service.get_token("tda")
        assert woke.access_token != first_tda.access_token  # type: ignore[attr-defined]
        assert accepted(http, server, woke.access_token)
        assert server.stats()["token_requests"] == before + 1
        assert service.status("tda").state is AccountState.VALID
        # Asleep again until the 90-day refresh token is inside its renewal window.
        clock.advance(76 * DAY)
        renewed = service.get_token("tda")
        assert renewed.refresh_token != woke.refresh_token
        assert renewed.refresh_expires_at is not None
        left = (renewed.refresh_expires_at - clock.now()) / DAY
        assert left > 89, left
        assert accepted(http, server, renewed.access_token)
        statuses = {s.name: s.state for s in service.statuses()}
        assert statuses == {"sch": AccountState.LOGIN_REQUIRED, "tda": AccountState.VALID}
        [s.to_json() for s in service.statuses()]
    finally:
        server.stop()
    figure(
        f"row 12 (+8 days, offset {offset:+.0f} s): Schwab login required with 0 requests; TD Ameritrade "
        f"refreshed with 1 request; +76 days more: refresh token renewed ({left:.0f} days left); no crash"
    )


def test_clock_set_back_never_serves_a_token_the_provider_expired(http: requests.Session, figure) -> None:
    """The wall clock set back an hour after a login: the real time since the token arrived
    (CLOCK_BOOTTIME, which no one can set) decides, so the expired token is refreshed, not served."""
    from tdgui.core.clock import boot_reference

    if boot_reference() is None:
        pytest.fail("this platform has no boot-time clock; the row needs Linux")
    server = start_sandbox_for_test(access_ttl=4)
    try:
        add_sandbox_account(server, name="back")
        real_start = time.time()
        clock = ManualClock(start=real_start)
        service = TokenService(Config(), clock=clock, lead=1.0)
        first = log_in(service, "back")
        time.sleep(5.0)  # the provider expires the access token after 4 s of real time
        clock.current = time.time() - 3600  # someone sets the clock back an hour
        served = service.get_token("back")
        assert served.access_token != first.access_token, "served the token the provider expired"
        assert accepted(http, server, served.access_token)
        assert server.stats()["refresh_requests"] == 1
        figure(
            "row 12 (clock set back 1 h): expired token refreshed, not served; "
            "1 refresh; provider accepted it"
        )
    finally:
        server.stop()

"""TokenSet expiry and JSON form; the refresh schedule as pure functions of (tokens, now)."""

from __future__ import annotations

import pytest

from tdgui.core import providers, schedule
from tdgui.core.errors import ProviderError, StoredDataError
from tdgui.core.tokens import TokenSet

NOW = 1_800_000_000.0
SCHWAB = providers.schwab()
TDA = providers.tdameritrade()


def schwab_tokens(now: float = NOW) -> TokenSet:
    response = {
        "access_token": "A" * 20,
        "refresh_token": "R" * 20,
        "expires_in": 1800,
        "token_type": "Bearer",
    }
    return TokenSet.from_response(response, SCHWAB, now)


def test_expiry_is_local_receipt_time_plus_expires_in() -> None:
    tokens = schwab_tokens()
    assert tokens.access_expires_at == NOW + 1800
    assert tokens.refresh_expires_at == NOW + 7 * 86400
    assert tokens.login_at == NOW


def test_schwab_refresh_does_not_extend_the_refresh_token() -> None:
    first = schwab_tokens()
    later = NOW + 3 * 86400
    refreshed = TokenSet.from_response(
        {"access_token": "B" * 20, "refresh_token": "R2" * 10, "expires_in": 1800}, SCHWAB, later, first
    )
    assert refreshed.refresh_expires_at == NOW + 7 * 86400
    assert refreshed.login_at == NOW
    assert refreshed.access_expires_at == later + 1800


def test_tda_uses_refresh_token_expires_in_and_keeps_old_refresh_when_none_returned() -> None:
    tokens = TokenSet.from_response(
        {
            "access_token": "A" * 20,
            "refresh_token": "R" * 20,
            "expires_in": 1800,
            "refresh_token_expires_in": 7776000,
        },
        TDA,
        NOW,
    )
    assert tokens.refresh_expires_at == NOW + 7776000
    again = TokenSet.from_response({"access_token": "C" * 20, "expires_in": 1800}, TDA, NOW + 100, tokens)
    assert again.refresh_token == "R" * 20
    assert again.refresh_expires_at == tokens.refresh_expires_at


@pytest.mark.parametrize(
    "response",
    [
        {},
        {"access_token": ""},
        {"access_token": 5},
        # An odd expires_in is a warning, not an error (tests/reliability/test_r16_odd_answers.py).
        {"access_token": "x\x1b[2J"},
        {"access_token": "x", "refresh_token": "a\nb"},
        {"access_token": "x", "refresh_token": ""},
    ],
)
def test_unusable_responses_raise_provider_error(response: dict) -> None:
    with pytest.raises(ProviderError):
        TokenSet.from_response(response, SCHWAB, NOW)


def test_json_round_trip_and_damaged_records() -> None:
    tokens = schwab_tokens()
    assert TokenSet.from_json(tokens.to_json()) == tokens
    for bad in [
        "",
        "{",
        "[]",
        '{"version": 99}',
        tokens.to_json().replace('"login_at"', '"x"'),
        tokens.to_json().replace('"version":1', '"version":true'),
    ]:
        with pytest.raises(StoredDataError):
            TokenSet.from_json(bad)


def test_needs_refresh_five_minutes_before_expiry() -> None:
    tokens = schwab_tokens()
    assert not schedule.needs_refresh(tokens, SCHWAB, NOW + 1800 - 301, 300)
    assert schedule.needs_refresh(tokens, SCHWAB, NOW + 1800 - 299, 300)
    assert schedule.next_refresh_at(tokens, SCHWAB, 300) == NOW + 1500


def test_no_refresh_after_the_refresh_token_died() -> None:
    tokens = schwab_tokens()
    dead = NOW + 8 * 86400
    assert not schedule.needs_refresh(tokens, SCHWAB, dead, 300)
    assert schedule.account_state(tokens, SCHWAB, dead, 300) is schedule.AccountState.LOGIN_REQUIRED


def test_tda_renewal_is_scheduled_before_the_refresh_token_dies() -> None:
    tokens = TokenSet.from_response(
        {
            "access_token": "A" * 20,
            "refresh_token": "R" * 20,
            "expires_in": 1800,
            "refresh_token_expires_in": 86400 * 8,
        },
        TDA,
        NOW,
    )
    assert not schedule.renewal_due(tokens, TDA, NOW)
    assert schedule.renewal_due(tokens, TDA, NOW + 86400 * 1.5)


def test_states_and_warnings() -> None:
    tokens = schwab_tokens()
    assert schedule.account_state(tokens, SCHWAB, NOW, 300) is schedule.AccountState.VALID
    assert schedule.account_state(tokens, SCHWAB, NOW + 1600, 300) is schedule.AccountState.REFRESH_SOON
    assert schedule.account_state(tokens, SCHWAB, NOW + 6.5 * 86400, 300) is schedule.AccountState.LOGIN_SOON
    assert schedule.account_state(None, SCHWAB, NOW, 300) is schedule.AccountState.LOGIN_REQUIRED


def test_the_state_is_rechecked_when_a_lead_or_an_expiry_passes() -> None:
    tokens = schwab_tokens()
    day, soon = 86400, 2 * 86400
    moments = []
    now = NOW
    while (at := schedule.state_recheck_at(tokens, now, 300, login_soon=soon)) is not None:
        moments.append(at - NOW)
        now = at + 1
    assert moments == [1500, 1800, 5 * day, 7 * day]

    def state(after: float) -> schedule.AccountState:
        return schedule.account_state(tokens, SCHWAB, NOW + after, 300, login_soon=soon)

    # Each moment is where the state can change (at 1800 it would with a last error).
    assert [state(m - 1) for m in moments] == [
        schedule.AccountState.VALID,
        schedule.AccountState.REFRESH_SOON,
        schedule.AccountState.REFRESH_SOON,
        schedule.AccountState.LOGIN_SOON,
    ]
    # At a moment itself the state has turned already, as the notices do (background.notices).
    assert state(1500) is schedule.AccountState.REFRESH_SOON
    assert state(5 * day) is schedule.AccountState.LOGIN_SOON
    assert state(7 * day) is schedule.AccountState.LOGIN_REQUIRED
    assert schedule.state_recheck_at(None, NOW, 300) is None


def test_a_refresh_in_flight_is_rechecked_when_it_would_count_as_cut_off() -> None:
    from tdgui.core.records import RefreshRecord
    from tdgui.core.status import INTERRUPTED_AFTER, AccountStatus, status_of

    times = schwab_tokens().times()
    started = NOW - 10

    def status(record: RefreshRecord, now: float) -> AccountStatus:
        return status_of("a", "schwab", "file", SCHWAB, record, times, now, 300)

    running = status(RefreshRecord(refresh_started_at=started), NOW)
    assert running.recheck_at == started + INTERRUPTED_AFTER  # before the access lead (NOW + 1500)
    later = status(RefreshRecord(refresh_started_at=started), started + INTERRUPTED_AFTER + 1)
    assert later.last_error is not None  # cut off now
    assert later.recheck_at == NOW + 1500  # the tokens' next moment
    assert status(RefreshRecord(), NOW).recheck_at == NOW + 1500

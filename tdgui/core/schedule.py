"""When to refresh next, and what state an account is in: pure functions of (tokens, now)."""

from __future__ import annotations

from enum import Enum

from tdgui.core.providers import Provider
from tdgui.core.tokens import TokenSet, TokenTimes

#: Schedules are computed from the times alone; a full TokenSet works too.
Times = TokenSet | TokenTimes

#: Access tokens are refreshed this long before they expire (docs/design.md §5).
DEFAULT_LEAD = 300.0
#: A TD Ameritrade refresh token is renewed when it has less than this left (it lasts 90 days).
RENEW_WINDOW = 7 * 24 * 3600.0
#: Warn this long before a refresh token dies (Schwab users must log in every 7 days); the
#: user's first warning lead (Settings.login_warning_seconds) replaces it where it is known.
WARN_WINDOW = 24 * 3600.0
#: The lead is at most this fraction of the access token's lifetime (issue 14, defect 6).
LEAD_FRACTION = 0.25


class AccountState(Enum):
    VALID = "valid"
    REFRESH_SOON = "refreshing soon"
    LOGIN_SOON = "login soon"
    LOGIN_REQUIRED = "login required"
    ERROR = "error"


def effective_lead(tokens: Times, lead: float) -> float:
    """The refresh lead for these tokens: the configured one, but at most a quarter of the access
    token's lifetime.

    With a lead longer than the lifetime every new token is "due" the moment it arrives, and the
    app refreshed about once a second, forever (issue 14, defect 6: a 60 s token, a 5 min lead).
    A quarter keeps the usual case unchanged (Schwab's 30 min token: 7.5 min > the 5 min lead),
    lets each token serve three quarters of its life (at most 4/3 refreshes per lifetime) and
    still leaves a quarter for the refresh and its first retries.
    """
    return min(lead, access_lifetime(tokens) * LEAD_FRACTION)


def access_lifetime(tokens: Times) -> float:
    """How long the access token was issued for: the `expires_in` the server stated (kept in
    the stored answer), else the span from receipt to expiry (all a status record has)."""
    if isinstance(tokens, TokenSet):
        stated = tokens.response.get("expires_in")
        if isinstance(stated, (int, float)) and not isinstance(stated, bool) and 0 < stated < 1e9:
            return float(stated)
        return max(0.0, tokens.access_expires_at - tokens.received_at)
    return max(0.0, tokens.access_expires_at - tokens.access_received_at)


def renewal_due(tokens: Times, provider: Provider, now: float) -> bool:
    if not provider.renews_refresh_token or tokens.refresh_expires_at is None:
        return False
    return tokens.refresh_expires_at - now < RENEW_WINDOW


def needs_refresh(tokens: Times, provider: Provider, now: float, lead: float) -> bool:
    if not tokens.refresh_valid(now):
        return False
    return not tokens.access_valid(now, effective_lead(tokens, lead)) or renewal_due(tokens, provider, now)


def next_refresh_at(tokens: Times, provider: Provider, lead: float) -> float | None:
    """The moment this account next needs a refresh; None when no refresh can help."""
    if not tokens.has_refresh_token:
        return None
    moments = [tokens.access_expires_at - effective_lead(tokens, lead)]
    if provider.renews_refresh_token and tokens.refresh_expires_at is not None:
        moments.append(tokens.refresh_expires_at - RENEW_WINDOW)
    when = min(moments)
    if tokens.refresh_expires_at is not None and when >= tokens.refresh_expires_at:
        return None
    return when


def account_state(
    tokens: Times | None,
    provider: Provider,
    now: float,
    lead: float,
    *,
    login_required: bool = False,
    last_error: str | None = None,
    login_soon: float = WARN_WINDOW,
) -> AccountState:
    """`login_soon`: "login soon" from this long before the refresh token dies."""
    if tokens is None or login_required or not tokens.refresh_valid(now):
        if tokens is not None and not tokens.has_refresh_token and tokens.access_valid(now):
            return AccountState.VALID  # a provider without refresh tokens: valid until expiry
        return AccountState.LOGIN_REQUIRED
    if last_error and not tokens.access_valid(now):
        return AccountState.ERROR
    remaining = tokens.refresh_remaining(now)
    # From the lead moment itself on, as the notice (background.notices) and the other states.
    if remaining is not None and remaining <= login_soon and not provider.renews_refresh_token:
        return AccountState.LOGIN_SOON
    if not tokens.access_valid(now, effective_lead(tokens, lead)):
        return AccountState.REFRESH_SOON
    return AccountState.VALID


def state_recheck_at(
    tokens: Times | None, now: float, lead: float, *, login_soon: float = WARN_WINDOW
) -> float | None:
    """The next moment account_state may answer otherwise by time alone: a lead or an expiry
    passes. None: none ahead. Whoever shows the state reads it again then (the app's controller)."""
    if tokens is None:
        return None
    moments = [tokens.access_expires_at - effective_lead(tokens, lead), tokens.access_expires_at]
    if tokens.refresh_expires_at is not None:
        moments += [tokens.refresh_expires_at - login_soon, tokens.refresh_expires_at]
    return min((moment for moment in moments if moment > now), default=None)

"""What an account's state is and how bad: statuses for people, plans for the scheduler, one severity."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from tdgui.core import schedule
from tdgui.core.providers import Provider
from tdgui.core.records import RefreshRecord
from tdgui.core.schedule import AccountState
from tdgui.core.tokens import TokenTimes

#: A refresh that started longer ago than this and recorded no outcome was cut off (no request
#: runs this long: the token request has a deadline, a waiter gives up after LOCK_TIMEOUT).
INTERRUPTED_AFTER = 180.0


class Severity(Enum):
    """How an account's state is shown: the colour of its dot, of the tray and of the banner."""

    OK = "ok"
    WARN = "warn"
    ERROR = "error"


_SEVERITY = {
    AccountState.VALID: Severity.OK,
    # A routine access refresh is the app doing its job, not something for the user to act on.
    AccountState.REFRESH_SOON: Severity.OK,
    AccountState.LOGIN_SOON: Severity.WARN,
    AccountState.LOGIN_REQUIRED: Severity.ERROR,
    AccountState.ERROR: Severity.ERROR,
}
_ORDER = (Severity.OK, Severity.WARN, Severity.ERROR)


def severity(state: AccountState) -> Severity:
    return _SEVERITY[state]


def overall_severity(states: Iterable[AccountState]) -> Severity | None:
    """The worst severity of these states; None when there are no accounts (nothing to be green about)."""
    found = [severity(state) for state in states]
    return max(found, key=_ORDER.index) if found else None


@dataclass(frozen=True)
class AccountStatus:
    name: str
    provider: str
    store: str
    state: AccountState
    access_expires_at: float | None
    #: when the current access token arrived (the countdown's start)
    access_received_at: float | None
    refresh_expires_at: float | None
    login_at: float | None
    last_refresh_at: float | None
    last_refresh_ok: bool | None
    last_error: str | None
    now: float
    #: What the user should know although the state may be fine: odd provider answers (a bad
    #: lifetime replaced by the default), a refresh cut off or whose answer was lost.
    warnings: tuple[str, ...] = ()
    #: Where the tokens live, in words ("PostgreSQL on db.example, encrypted"); see
    #: tdgui.core.db_setup.store_place. Not in `--json` (which names the store kind).
    store_place: str = ""
    #: The state is "login soon" from this long before the refresh token dies: the user's first
    #: warning lead (the notifications' too). Not in `--json`.
    login_soon: float = schedule.WARN_WINDOW
    #: When `state` may change by time alone (schedule.state_recheck_at); None: not by time.
    #: Not in `--json`.
    recheck_at: float | None = None

    @property
    def severity(self) -> Severity:
        found = severity(self.state)
        if self.warnings and found is Severity.OK:
            return Severity.WARN
        return found

    def to_json(self) -> dict[str, Any]:
        """The stable `--json` form (documented in the README)."""

        def remaining(at: float | None) -> int | None:
            return None if at is None else int(at - self.now)

        body = asdict(self)
        body.pop("now")
        body.pop("store_place")
        body.pop("login_soon")
        body.pop("recheck_at")
        body["state"] = self.state.value
        body["warnings"] = list(self.warnings)
        body["access_expires_in"] = remaining(self.access_expires_at)
        body["refresh_expires_in"] = remaining(self.refresh_expires_at)
        return body


@dataclass(frozen=True)
class AccountPlan:
    """What the background scheduler needs of one account, from one read of its tokens."""

    name: str
    refresh_at: float | None
    refresh_expires_at: float | None
    has_tokens: bool
    login_required: bool
    error: str | None = None


def status_of(
    name: str,
    provider_name: str,
    store: str,
    provider: Provider,
    record: RefreshRecord,
    times: TokenTimes | None,
    now: float,
    lead: float,
    *,
    read_error: str | None = None,
    interrupted: bool = False,
    login_soon: float = schedule.WARN_WINDOW,
) -> AccountStatus:
    """An account's status from its record and token times (`read_error`: the store failed;
    `interrupted`: the record says a refresh is in flight but no process holds its lock)."""
    error = record.last_error if record.last_refresh_ok is False else None
    warnings = list(record.warnings)
    started = record.refresh_started_at
    cut_off = started is not None and (interrupted or now - started > INTERRUPTED_AFTER)
    note = record.interrupted_note()
    if cut_off or (record.outcome_unknown and note):
        assert note is not None
        warnings.insert(0, note)
        if cut_off:
            error = note
    recheck_at = schedule.state_recheck_at(times, now, lead, login_soon=login_soon)
    cut_off_at = None if started is None or cut_off else started + INTERRUPTED_AFTER
    if cut_off_at is not None and cut_off_at > now:  # a refresh running now is "cut off" later
        recheck_at = cut_off_at if recheck_at is None else min(recheck_at, cut_off_at)
    if read_error is not None:
        state, error, times, recheck_at = AccountState.ERROR, read_error, None, None
    else:
        state = schedule.account_state(
            times,
            provider,
            now,
            lead,
            login_required=record.login_required,
            last_error=error,
            login_soon=login_soon,
        )
    return AccountStatus(
        name=name,
        provider=provider_name,
        store=store,
        state=state,
        access_expires_at=times.access_expires_at if times else None,
        access_received_at=times.access_received_at if times else None,
        refresh_expires_at=times.refresh_expires_at if times else None,
        login_at=times.login_at if times else None,
        last_refresh_at=record.last_refresh_at,
        last_refresh_ok=record.last_refresh_ok,
        last_error=error,
        now=now,
        warnings=tuple(warnings),
        login_soon=login_soon,
        recheck_at=recheck_at,
    )


def plan_of(
    name: str, provider: Provider, record: RefreshRecord, times: TokenTimes | None, now: float, lead: float
) -> AccountPlan:
    """The next refresh and the next expiry warning of one account (schedule.py)."""
    dead = times is not None and not times.refresh_valid(now) and not times.access_valid(now)
    login_required = record.login_required or dead
    return AccountPlan(
        name=name,
        refresh_at=None
        if times is None or login_required
        else schedule.next_refresh_at(times, provider, lead),
        refresh_expires_at=times.refresh_expires_at if times else None,
        has_tokens=times is not None,
        login_required=login_required,
    )

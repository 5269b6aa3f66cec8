"""Background-refresh policy: what is due, when to wake, backoff, warnings, clock jumps.

Pure decisions over (plans, now) and a small state object, so the desktop's timer and any
headless runner make the same choices; the caller does the refreshing and the sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from tdgui.core import schedule
from tdgui.core.status import AccountPlan
from tdgui.core.text import fmt_duration, fmt_when

if TYPE_CHECKING:
    from tdgui.core.config import Settings

#: A single sleep never exceeds this: a laptop that slept through a deadline re-checks soon after
#: waking even if no resume signal arrives. One wake-up an hour is not polling.
MAX_SLEEP = 3600.0
#: Never re-arm sooner than this (a refresh that is due but cannot happen must not spin).
MIN_SLEEP = 1.0
#: Retries after a failed background refresh (network loss, 5xx): 30 s, 1 min, 2 min ... 15 min.
BACKOFF_START = 30.0
BACKOFF_MAX = 900.0
#: Wall clock and monotonic clock disagreeing by more than this means a clock jump or a suspend.
JUMP_TOLERANCE = 30.0
#: "Log in again soon" warnings: a day before the refresh token dies, and again an hour before
#: (issue 14, build 4); the user sets both in the settings (Settings.login_warning_seconds).
DEFAULT_FIRST_WARNING = 24 * 3600.0
DEFAULT_SECOND_WARNING = 3600.0


class NoticeKind(Enum):
    EXPIRING = "expiring"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Notice:
    """One thing to tell the user about one account's refresh token."""

    account: str
    kind: NoticeKind
    text: str


@dataclass(frozen=True)
class WarnPolicy:
    """How long before a refresh token dies the user hears of it: each lead once, then at death.

    `leads` are seconds before expiry, longest first; a lead of 0 or less is off.
    """

    leads: tuple[float, ...] = (DEFAULT_FIRST_WARNING, DEFAULT_SECOND_WARNING)

    @classmethod
    def of(cls, first: float, second: float) -> WarnPolicy:
        """The user's two settings; one that is off (0) or repeats the other adds nothing."""
        return cls(tuple(sorted({lead for lead in (float(first), float(second)) if lead > 0}, reverse=True)))

    @classmethod
    def from_settings(cls, settings: Settings) -> WarnPolicy:
        """The user's "log in again soon" lead times (Settings)."""
        return cls.of(settings.login_warning_seconds, settings.login_second_warning_seconds)

    @property
    def login_soon(self) -> float:
        """How long before expiry an account shows as "login soon": the first warning's lead."""
        return self.leads[0] if self.leads else schedule.WARN_WINDOW

    def stage(self, left: float) -> float | None:
        """The warning `left` seconds before expiry falls in: the shortest lead not passed yet."""
        passed = [lead for lead in self.leads if left <= lead]
        return min(passed) if passed else None

    def moments(self, expires_at: float) -> list[float]:
        """When this refresh token's warnings are due: each lead before expiry, and expiry itself."""
        return [expires_at - lead for lead in self.leads] + [expires_at]


@dataclass
class BackgroundState:
    """What the policy remembers between wake-ups: failures and retry times, notices given."""

    retry_at: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    notified: set[tuple[str, NoticeKind, float | None, float | None]] = field(default_factory=set)

    def succeeded(self, name: str) -> None:
        self.failures.pop(name, None)
        self.retry_at.pop(name, None)

    def failed(self, name: str, now: float) -> float:
        """Record a transient failure; returns the wait before the next try (exponential backoff)."""
        count = self.failures.get(name, 0) + 1
        self.failures[name] = count
        wait = min(BACKOFF_MAX, BACKOFF_START * 2.0 ** (count - 1))
        self.retry_at[name] = now + wait
        return wait


def due(plans: list[AccountPlan], now: float, state: BackgroundState, busy: set[str]) -> list[str]:
    """Accounts whose refresh is due now, not backing off and not already running."""
    return [
        p.name
        for p in plans
        if p.refresh_at is not None
        and not p.login_required
        and p.refresh_at <= now
        and state.retry_at.get(p.name, 0.0) <= now
        and p.name not in busy
    ]


def next_wakeup(
    plans: list[AccountPlan], state: BackgroundState, now: float, policy: WarnPolicy
) -> float | None:
    """The next moment anything is due (a refresh, after its backoff, or one of the policy's
    warnings: the user's lead times); None: never."""
    moments = []
    for p in plans:
        if p.refresh_at is not None and not p.login_required:
            moments.append(max(p.refresh_at, state.retry_at.get(p.name, p.refresh_at)))
        if p.refresh_expires_at is not None and p.has_tokens:
            ahead = [m for m in policy.moments(p.refresh_expires_at) if m > now]
            if ahead:
                moments.append(min(ahead))
    return min(moments) if moments else None


def sleep_for(wakeup_at: float, now: float, max_sleep: float = MAX_SLEEP) -> float:
    """Seconds to sleep until `wakeup_at`, bounded to [MIN_SLEEP, max_sleep]."""
    return min(max_sleep, max(MIN_SLEEP, wakeup_at - now))


def clock_jump(armed_wall: float, armed_mono: float, now_wall: float, now_mono: float) -> float | None:
    """How far the wall clock moved against the monotonic one since arming; None within tolerance."""
    drift = (now_wall - armed_wall) - (now_mono - armed_mono)
    return drift if abs(drift) > JUMP_TOLERANCE else None


def notices(
    plans: list[AccountPlan], now: float, state: BackgroundState, policy: WarnPolicy | None = None
) -> list[Notice]:
    """One notice per account whose refresh token expires within a lead time of the policy or has
    expired, each given once per (account, kind, expiry, lead): a new login starts the count
    again, and the second lead (1 h) warns again after the first (24 h)."""
    policy = policy or WarnPolicy()
    found = []
    for p in plans:
        if not p.has_tokens:
            continue
        left = None if p.refresh_expires_at is None else p.refresh_expires_at - now
        stage = None if left is None else policy.stage(left)
        if p.login_required or (left is not None and left <= 0):
            kind, text = NoticeKind.EXPIRED, f"The refresh token of {p.name} has expired: log in again."
            stage = None
        elif left is not None and stage is not None:
            kind = NoticeKind.EXPIRING
            text = (
                f"The refresh token of {p.name} expires in {fmt_duration(left)} "
                f"({fmt_when(p.refresh_expires_at)}): log in again to keep it working."
            )
        else:
            continue
        key = (p.name, kind, p.refresh_expires_at, stage)
        if key in state.notified:
            continue
        state.notified.add(key)
        found.append(Notice(p.name, kind, text))
    return found

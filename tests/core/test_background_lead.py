"""Issue 14, build 4: the "log in again soon" lead times the user sets, as pure policy (no Qt)."""

from __future__ import annotations

import datetime as dt

from tdgui.core import background
from tdgui.core.background import BackgroundState, NoticeKind, WarnPolicy
from tdgui.core.config import Settings
from tdgui.core.status import AccountPlan
from tdgui.core.text import fmt_when, next_login_text

HOUR = 3600.0
NOW = 1_000_000.0


def plan(name: str, left: float, *, login_required: bool = False) -> AccountPlan:
    return AccountPlan(
        name=name,
        refresh_at=None,
        refresh_expires_at=NOW + left,
        has_tokens=True,
        login_required=login_required,
    )


def kinds(plans: list[AccountPlan], now: float, state: BackgroundState, policy: WarnPolicy) -> list[str]:
    return [f"{n.account}:{n.kind.value}" for n in background.notices(plans, now, state, policy)]


def test_default_is_a_day_ahead_and_again_an_hour_ahead() -> None:
    defaults = Settings()
    assert (defaults.login_warning_seconds, defaults.login_second_warning_seconds) == (24 * 3600, 3600)
    policy = WarnPolicy.of(defaults.login_warning_seconds, defaults.login_second_warning_seconds)
    assert policy == WarnPolicy()
    state = BackgroundState()
    p = [plan("a", 30 * HOUR)]
    assert kinds(p, NOW, state, policy) == []
    assert kinds(p, NOW + 6.5 * HOUR, state, policy) == ["a:expiring"]  # 23.5 h left
    assert kinds(p, NOW + 10 * HOUR, state, policy) == []  # said once
    assert kinds(p, NOW + 29.5 * HOUR, state, policy) == ["a:expiring"]  # 30 min left: again
    assert kinds(p, NOW + 29.9 * HOUR, state, policy) == []
    assert kinds(p, NOW + 30 * HOUR, state, policy) == ["a:expired"]


def test_the_users_lead_time_is_respected() -> None:
    policy = WarnPolicy.of(48 * HOUR, 0)  # two days ahead, no second warning
    state = BackgroundState()
    p = [plan("a", 50 * HOUR)]
    assert kinds(p, NOW + 1.5 * HOUR, state, policy) == []  # 48.5 h left
    assert kinds(p, NOW + 2.5 * HOUR, state, policy) == ["a:expiring"]  # 47.5 h left
    assert kinds(p, NOW + 49.5 * HOUR, state, policy) == []  # no second warning: it is off
    # A short lead: nothing at 23 h, which the default would have warned about.
    short = WarnPolicy.of(2 * HOUR, 0)
    assert kinds([plan("b", 23 * HOUR)], NOW, BackgroundState(), short) == []
    assert kinds([plan("b", 23 * HOUR)], NOW + 21.5 * HOUR, BackgroundState(), short) == ["b:expiring"]


def test_starting_inside_the_second_lead_warns_once_not_twice() -> None:
    state = BackgroundState()
    found = background.notices([plan("a", 0.5 * HOUR)], NOW, state, WarnPolicy())
    assert [(n.kind, n.account) for n in found] == [(NoticeKind.EXPIRING, "a")]
    assert "30m 00s" in found[0].text and fmt_when(NOW + 0.5 * HOUR) in found[0].text


def test_each_account_gets_its_own_warning() -> None:
    state = BackgroundState()
    plans = [plan("a", 2 * HOUR), plan("b", 3 * HOUR), plan("c", -HOUR)]
    assert sorted(kinds(plans, NOW, state, WarnPolicy())) == ["a:expiring", "b:expiring", "c:expired"]


def test_wakeups_follow_the_lead_times() -> None:
    state = BackgroundState()
    p = [plan("a", 30 * HOUR)]
    policy = WarnPolicy.of(5 * HOUR, 2 * HOUR)
    assert background.next_wakeup(p, state, NOW, policy) == NOW + 25 * HOUR
    assert background.next_wakeup(p, state, NOW + 25 * HOUR, policy) == NOW + 28 * HOUR
    assert background.next_wakeup(p, state, NOW + 28 * HOUR, policy) == NOW + 30 * HOUR
    assert background.next_wakeup(p, state, NOW + 30 * HOUR, policy) is None
    assert background.next_wakeup(p, state, NOW, WarnPolicy()) == NOW + 6 * HOUR


def test_policy_of_drops_off_and_repeated_leads() -> None:
    assert WarnPolicy.of(3600, 3600).leads == (3600.0,)
    assert WarnPolicy.of(0, 0).leads == ()
    assert WarnPolicy.of(3600, 7200).leads == (7200.0, 3600.0)
    assert WarnPolicy.of(0, 0).stage(10.0) is None


def test_next_login_text() -> None:
    at = dt.datetime(2025, 12, 9, 20, 11, 30).timestamp()
    assert fmt_when(at) == "Tue 9 Dec 20:11"
    assert next_login_text(at, needed_now=False) == "Next login needed: Tue 9 Dec 20:11"
    assert next_login_text(at, needed_now=True) == "Next login needed: now"
    assert next_login_text(None, needed_now=False).startswith("Next login needed: not known")
    assert fmt_when(None) == "-"

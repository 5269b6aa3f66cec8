"""The login view's navigation and certificate decisions (tdgui.core.navigation): pure, no display."""

from __future__ import annotations

import pytest

from tdgui.core.navigation import (
    NavigationPolicy,
    Verdict,
    certificate_acceptable,
    decide_navigation,
    display_url,
)
from tdgui.core.providers import schwab

CALLBACK = "https://127.0.0.1:8182/"
SCHWAB = NavigationPolicy.for_provider(schwab())
SANDBOX = NavigationPolicy(("127.0.0.1",))


def decide(url: str, policy: NavigationPolicy = SCHWAB, main: bool = True) -> Verdict:
    return decide_navigation(url, is_main_frame=main, redirect_uri=CALLBACK, policy=policy).verdict


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8182/?code=C0.abc%40&state=s",
        "https://127.0.0.1:8182/?error=access_denied",
        "HTTPS://127.0.0.1:8182/",
        "https://127.0.0.1:8182",  # the empty path is "/"
    ],
)
def test_callback_caught(url: str) -> None:
    assert decide(url) is Verdict.CALLBACK
    # Even on the sandbox, whose pages are on the same host: the callback's port and path decide.
    assert decide(url, SANDBOX) is Verdict.CALLBACK


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8183/?code=x",  # another port
        "https://127.0.0.1:8182/other?code=x",  # another path
        "http://127.0.0.1:8182/?code=x",  # another scheme
        "https://localhost:8182/?code=x",  # another host (Schwab: 127.0.0.1, not localhost)
    ],
)
def test_near_callbacks_are_not_the_callback(url: str) -> None:
    assert decide(url) is Verdict.BLOCK
    assert decide(url, SANDBOX) is not Verdict.CALLBACK


def test_callback_in_a_sub_frame_is_blocked_not_caught() -> None:
    assert decide(CALLBACK + "?code=x", main=False) is Verdict.BLOCK


@pytest.mark.parametrize(
    ("url", "verdict"),
    [
        ("https://api.schwabapi.com/v1/oauth/authorize?client_id=x", Verdict.ALLOW),
        ("https://API.SchwabAPI.com/v1/oauth/authorize", Verdict.ALLOW),
        ("https://sws-gateway.schwab.com/ui/host/", Verdict.ALLOW),
        ("http://api.schwabapi.com/v1/oauth/authorize", Verdict.BLOCK),  # no plain http off loopback
        ("https://api.schwabapi.com.evil.example/", Verdict.BLOCK),
        ("https://evil.example/?r=https://api.schwabapi.com/", Verdict.BLOCK),
        ("https://user@evil.example/", Verdict.BLOCK),
        ("javascript:alert(1)", Verdict.BLOCK),
        ("file:///etc/passwd", Verdict.BLOCK),
        ("about:blank", Verdict.BLOCK),  # not as the top-level page
        ("https://[", Verdict.BLOCK),  # unreadable
    ],
)
def test_main_frame_allow_list(url: str, verdict: Verdict) -> None:
    assert decide(url) is verdict


def test_plain_http_only_on_a_listed_loopback_host() -> None:
    assert decide("http://127.0.0.1:4443/authorize", SANDBOX) is Verdict.ALLOW
    assert decide("http://localhost:4443/authorize", SANDBOX) is Verdict.BLOCK  # not listed
    assert decide("http://localhost/", NavigationPolicy(("localhost",))) is Verdict.ALLOW


def test_sub_frames_may_be_blank_or_inline() -> None:
    assert decide("about:blank", main=False) is Verdict.ALLOW
    assert decide("data:text/html,hi", main=False) is Verdict.ALLOW
    assert decide("https://tracker.example/pixel", main=False) is Verdict.BLOCK


def test_decision_names_the_host_and_reason_without_the_query() -> None:
    decision = decide_navigation(
        "https://Evil.Example/phish?state=s3cr3t&code=c0de",
        is_main_frame=True,
        redirect_uri=CALLBACK,
        policy=SCHWAB,
    )
    assert decision.verdict is Verdict.BLOCK and not decision.load
    assert decision.host == "evil.example"
    assert "evil.example" in decision.reason and "s3cr3t" not in decision.reason
    assert display_url("https://u:p@evil.example:444/phish?state=s#f") == "https://evil.example:444/phish"


def test_policy_is_a_small_value() -> None:
    assert NavigationPolicy(("A.example",)) == NavigationPolicy(("a.example",))
    assert NavigationPolicy(("a.example",)).allows("HTTPS", "A.EXAMPLE")


PIN = "ab" * 32


@pytest.mark.parametrize(
    ("host", "sha", "pinned_host", "pinned_sha", "ok"),
    [
        ("127.0.0.1", PIN, "127.0.0.1", PIN, True),
        ("127.0.0.1", PIN.upper(), "127.0.0.1", PIN, True),
        ("127.0.0.1", "cd" * 32, "127.0.0.1", PIN, False),  # another leaf on the pinned host
        ("localhost", PIN, "127.0.0.1", PIN, False),  # the pinned leaf on another host
        ("127.0.0.1", PIN, None, None, False),  # nothing pinned: a real broker
        ("127.0.0.1", "", "127.0.0.1", PIN, False),  # no chain to hash
        ("", PIN, "", PIN, False),
    ],
)
def test_certificate_acceptable(
    host: str, sha: str, pinned_host: str | None, pinned_sha: str | None, ok: bool
) -> None:
    assert certificate_acceptable(host, sha, pinned_host, pinned_sha) is ok

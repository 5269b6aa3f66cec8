"""The login view's navigation and certificate decisions (tdgui.core.navigation): pure, no display."""

from __future__ import annotations

import pytest

from tdgui.core.navigation import (
    NavigationPolicy,
    Verdict,
    certificate_acceptable,
    decide_navigation,
    display_url,
    request_allowed,
)
from tdgui.core.providers import custom, sandbox, schwab, tdameritrade

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
        # Hosts of the two domains nobody listed before: the real login may use any of them.
        ("https://lms.schwab.com/Login?ClientId=x", Verdict.ALLOW),
        ("https://client.schwab.com/Areas/Access/Login", Verdict.ALLOW),
        ("https://schwab.com/", Verdict.ALLOW),
        ("https://a.b.c.schwab.com/", Verdict.ALLOW),
        ("https://SWS-Gateway.SCHWAB.COM./ui/host/", Verdict.ALLOW),  # upper case, root dot
        ("https://client.schwab.com:8443/", Verdict.ALLOW),  # a port does not change the owner
        # Look-alikes of a domain are not the domain.
        ("https://schwab.com.evil.test/", Verdict.BLOCK),
        ("https://evilschwab.com/", Verdict.BLOCK),
        ("https://schwab-com.evil.test/", Verdict.BLOCK),
        ("https://schwabapi.co/", Verdict.BLOCK),
        ("https://schwab.comx/", Verdict.BLOCK),
        ("https://xn--schwb-7ve.com/", Verdict.BLOCK),  # IDN look-alike, as Chromium encodes it
        ("https://xn--schwab-7ve.com/", Verdict.BLOCK),
        # User info is not the host: the host after the @ decides.
        ("https://schwab.com@evil.test/", Verdict.BLOCK),
        ("https://client.schwab.com:pw@evil.test/", Verdict.BLOCK),
        ("https://evil.test@client.schwab.com/", Verdict.ALLOW),
        ("http://client.schwab.com/", Verdict.BLOCK),
        ("http://schwab.com:443/", Verdict.BLOCK),
        ("ftp://schwab.com/", Verdict.BLOCK),
        ("wss://client.schwab.com/", Verdict.BLOCK),  # not a page
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


def test_domains_of_each_provider() -> None:
    tda = NavigationPolicy.for_provider(tdameritrade())
    assert decide("https://auth.tdameritrade.com/auth?x", tda) is Verdict.ALLOW
    assert decide("https://secure.tdameritrade.com/", tda) is Verdict.ALLOW
    assert decide("https://api.schwabapi.com/", tda) is Verdict.BLOCK
    assert decide("https://tdameritrade.com.evil.test/", tda) is Verdict.BLOCK
    box = NavigationPolicy.for_provider(sandbox("schwab", "https://127.0.0.1:4443", None))
    assert box == SANDBOX
    assert decide("https://127.0.0.1:5555/other-port", box) is Verdict.ALLOW
    assert decide("https://1.127.0.0.1/", box) is Verdict.BLOCK  # an IP has no subdomains
    assert decide("https://127.0.0.2/", box) is Verdict.BLOCK
    own = NavigationPolicy.for_provider(
        custom("https://login.example.org/auth", "https://api.other.test/token", "none", (), True)
    )
    assert own == NavigationPolicy(("login.example.org",))  # the view never visits the token URL
    assert decide("https://login.example.org/auth", own) is Verdict.ALLOW
    assert decide("https://sso.login.example.org/", own) is Verdict.ALLOW
    assert decide("https://example.org/", own) is Verdict.BLOCK  # the parent is not the host's
    assert decide("https://api.other.test/token", own) is Verdict.BLOCK


def test_plain_http_only_on_a_listed_loopback_host() -> None:
    assert decide("http://127.0.0.1:4443/authorize", SANDBOX) is Verdict.ALLOW
    assert decide("http://localhost:4443/authorize", SANDBOX) is Verdict.BLOCK  # not listed
    assert decide("http://localhost/", NavigationPolicy(("localhost",))) is Verdict.ALLOW


def test_sub_frames_may_be_blank_or_inline() -> None:
    assert decide("about:blank", main=False) is Verdict.ALLOW
    assert decide("data:text/html,hi", main=False) is Verdict.ALLOW
    assert decide("blob:https://client.schwab.com/1234", main=False) is Verdict.ALLOW


@pytest.mark.parametrize(
    ("url", "verdict"),
    [
        # Bot detection and analytics frames of other hosts: a real login needs them.
        ("https://tracker.example/pixel", Verdict.ALLOW),
        ("https://www.google.com/recaptcha/api2/anchor?k=x", Verdict.ALLOW),
        ("https://schwab.com.evil.test/frame", Verdict.ALLOW),  # a frame cannot steer the top page
        ("http://tracker.example/pixel", Verdict.BLOCK),
        ("http://client.schwab.com/frame", Verdict.BLOCK),  # never plain http, even the broker's
        ("javascript:alert(1)", Verdict.BLOCK),
        ("file:///etc/passwd", Verdict.BLOCK),
        ("https://", Verdict.BLOCK),
    ],
)
def test_sub_frames_any_https_host(url: str, verdict: Verdict) -> None:
    assert decide(url, main=False) is verdict


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://static.schwab.com/app.js", True),
        ("https://cdn.analytics.example/t.js", True),
        ("wss://stream.example/", True),
        ("data:image/png;base64,AAAA", True),
        ("blob:https://client.schwab.com/1", True),
        ("http://cdn.analytics.example/t.js", False),
        ("ws://stream.example/", False),
        ("https://127.0.0.1:8182/?code=x", False),  # the callback, fetched by a script: never
        ("https://127.0.0.1:8182/favicon.ico", True),  # another path of that origin is not it
        ("ftp://files.example/x", False),
        ("https://[", False),
    ],
)
def test_sub_resources(url: str, ok: bool) -> None:
    assert request_allowed(url, redirect_uri=CALLBACK, policy=SCHWAB) is ok
    # On the sandbox plain http is fine on its own loopback host, not elsewhere.
    assert request_allowed("http://127.0.0.1:4443/x.js", redirect_uri=CALLBACK, policy=SANDBOX)
    assert not request_allowed("http://10.0.0.1/x.js", redirect_uri=CALLBACK, policy=SANDBOX)


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
    assert NavigationPolicy(("A.example",)) == NavigationPolicy(("a.example.",))
    assert NavigationPolicy(("a.example",)).allows("HTTPS", "A.EXAMPLE")
    assert NavigationPolicy.for_provider(schwab()).domains == ("schwabapi.com", "schwab.com")
    assert not NavigationPolicy(()).owns("schwab.com") and not SCHWAB.owns("")


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


def test_callback_without_a_port() -> None:
    """Schwab apps may register `https://127.0.0.1` (port 443): caught, on main frame only."""
    bare = "https://127.0.0.1"
    for url in ("https://127.0.0.1/?code=C0.x%40&session=s&state=t", "https://127.0.0.1:443/?code=x"):
        assert decide_navigation(url, is_main_frame=True, redirect_uri=bare, policy=SCHWAB).verdict is (
            Verdict.CALLBACK
        )
        assert decide_navigation(url, is_main_frame=False, redirect_uri=bare, policy=SCHWAB).verdict is (
            Verdict.BLOCK
        )
        assert not request_allowed(url, redirect_uri=bare, policy=SCHWAB)
    other = "https://127.0.0.1:8443/?code=x"
    assert (
        decide_navigation(other, is_main_frame=True, redirect_uri=bare, policy=SCHWAB).verdict
        is Verdict.BLOCK
    )

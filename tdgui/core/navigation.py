"""Where the embedded login view may go (callback / allow / block) and which certificate it may accept.

Neutral of any browser engine: the Qt page (tdgui.qt.login.page) turns its QUrl into text and
asks here, as qutebrowser's navigation and certificate decisions live apart from its Qt code.
RFC 8252 §8.12 discourages embedded user agents; docs/design.md §5 is why the view only
visits the provider's own hosts and catches the callback instead of loading it.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit, urlunsplit

from tdgui.core import flow
from tdgui.core.providers import Provider, is_loopback_host

log = logging.getLogger(__name__)

#: Schemes a sub-frame or sub-resource may load without a host (blank and inline frames,
#: script-made blobs of the provider's single-page app).
SUBFRAME_SCHEMES = frozenset({"about", "data", "blob"})


class Verdict(Enum):
    """What the view does with one navigation."""

    #: the registered redirect URI: take the URL, do not load it (nothing connects to its port)
    CALLBACK = "callback"
    ALLOW = "allow"
    BLOCK = "block"


def _normal_host(host: str) -> str:
    """Lower case, one trailing root dot dropped: `Schwab.COM.` is the DNS name `schwab.com`."""
    host = host.lower()
    return host[:-1] if host.endswith(".") else host


@dataclass(frozen=True)
class NavigationPolicy:
    """The provider's registrable domains: where the login view's main frame may go.

    A domain admits itself and its subdomains (`schwab.com` admits `client.schwab.com`, never
    `evilschwab.com` or `schwab.com.evil.test`): the real Schwab login moves between hosts of
    `schwabapi.com` and `schwab.com` that nobody outside Schwab can list for sure
    (docs/providers.md), so a fixed host list could break a real login. An IP address admits
    only itself. Sub-frames and sub-resources may come from any https host: the broker's bot
    detection and analytics frames are not ours to know, and they cannot steer the top page.
    """

    domains: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", tuple(_normal_host(d) for d in self.domains if d))

    @classmethod
    def for_provider(cls, provider: Provider) -> NavigationPolicy:
        return cls(tuple(provider.login_domains))

    def owns(self, host: str) -> bool:
        """Is `host` one of the domains or a subdomain of one? (Host as urlsplit gives it: IDN
        already in punycode, so a look-alike in another script never equals an ASCII domain.)"""
        host = _normal_host(host)
        if not host:
            return False
        for domain in self.domains:
            if host == domain:
                return True
            if not _is_ip(domain) and host.endswith("." + domain):
                return True
        return False

    def allows(self, scheme: str, host: str) -> bool:
        """Main frame: https on an owned host; plain http only on an owned loopback host (the sandbox)."""
        scheme = scheme.lower()
        if not self.owns(host):
            return False
        return scheme == "https" or (scheme == "http" and is_loopback_host(_normal_host(host)))

    def allows_embedded(self, scheme: str, host: str) -> bool:
        """Sub-frames and sub-resources: any https host; plain http only where the main frame may."""
        scheme = scheme.lower()
        if scheme in ("https", "wss"):
            return bool(host)
        if scheme in ("http", "ws"):
            return self.allows("http", host)
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    #: lower-case host of the URL ("" for about:/data:)
    host: str
    #: why, for the log and the window's message; never holds the query (state, code)
    reason: str

    @property
    def load(self) -> bool:
        """Does the engine go ahead with this navigation?"""
        return self.verdict is Verdict.ALLOW


def display_url(url: str) -> str:
    """scheme://host:port/path of a URL: the query (state, code, client id) is never shown or logged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unreadable URL)"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def decide_navigation(
    url: str, *, is_main_frame: bool, redirect_uri: str, policy: NavigationPolicy
) -> Decision:
    """Callback, allow or block one navigation of the login view.

    `url` must be the fully encoded URL as the server sent it, so the code is decoded once
    (Schwab's code ends in %40, docs/design.md §2).
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return Decision(Verdict.BLOCK, "", "the URL cannot be read")
    scheme = parts.scheme.lower()
    if flow.matches_callback(url, redirect_uri):
        if is_main_frame:
            return Decision(Verdict.CALLBACK, host, "the registered redirect URI")
        # A frame cannot finish the login: only the top-level redirect is the provider's answer.
        return Decision(Verdict.BLOCK, host, "the redirect URI in a sub-frame")
    if is_main_frame:
        if policy.allows(scheme, host):
            return Decision(Verdict.ALLOW, host, "a domain of the provider")
        if host and policy.owns(host):
            return Decision(Verdict.BLOCK, host, f"plain {scheme or 'unknown scheme'} to {host}")
        return Decision(Verdict.BLOCK, host, f"{host or scheme or 'the URL'} is not a domain of the provider")
    if scheme in SUBFRAME_SCHEMES:
        return Decision(Verdict.ALLOW, host, f"a {scheme}: sub-frame")
    if policy.allows_embedded(scheme, host):
        return Decision(Verdict.ALLOW, host, "an https sub-frame")
    return Decision(Verdict.BLOCK, host, f"a {scheme or 'unknown'} sub-frame of {host or 'no host'}")


def request_allowed(url: str, *, redirect_uri: str, policy: NavigationPolicy) -> bool:
    """May the view fetch this sub-resource (script, image, XHR, frame document)?

    Any https host; never plain http off the sandbox's loopback host (Chromium already blocks
    active mixed content, this also stops passive http images and a page served over http);
    never the callback, which only the top-level redirect may reach, and never by loading it.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme in SUBFRAME_SCHEMES:
        return True
    if flow.matches_callback(url, redirect_uri):
        return False
    return policy.allows_embedded(scheme, host)


def certificate_acceptable(
    host: str, der_sha256: str, pinned_host: str | None, pinned_sha256: str | None
) -> bool:
    """May the view accept a certificate error? Only for the one pinned leaf on its pinned host.

    The sandbox's self-made leaf is not in any trust store; everything else that fails
    Chromium's verification is refused (never accept an error you cannot identify).
    """
    if not (host and der_sha256 and pinned_host and pinned_sha256):
        return False
    if host.lower() != pinned_host.lower():
        return False
    return hmac.compare_digest(der_sha256.lower(), pinned_sha256.lower())

"""Where the embedded login view may go (callback / allow / block) and which certificate it may accept.

Neutral of any browser engine: the Qt page (tdgui.qt.login.page) turns its QUrl into text and
asks here, as qutebrowser's navigation and certificate decisions live apart from its Qt code.
RFC 8252 §8.12 discourages embedded user agents; docs/design.md §5 is why the view only
visits the provider's own hosts and catches the callback instead of loading it.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit, urlunsplit

from tdgui.core import flow
from tdgui.core.providers import Provider, is_loopback_host

log = logging.getLogger(__name__)

#: Schemes a sub-frame may load without a host (blank and inline frames of the provider's pages).
SUBFRAME_SCHEMES = frozenset({"about", "data"})


class Verdict(Enum):
    """What the view does with one navigation."""

    #: the registered redirect URI: take the URL, do not load it (nothing connects to its port)
    CALLBACK = "callback"
    ALLOW = "allow"
    BLOCK = "block"


@dataclass(frozen=True)
class NavigationPolicy:
    """The hosts the login view may visit. A value object so a later rule is one more field."""

    allowed_hosts: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", tuple(h.lower() for h in self.allowed_hosts))

    @classmethod
    def for_provider(cls, provider: Provider) -> NavigationPolicy:
        return cls(tuple(provider.allowed_hosts))

    def allows(self, scheme: str, host: str) -> bool:
        """https on a listed host; plain http only on a listed loopback host (the sandbox)."""
        scheme, host = scheme.lower(), host.lower()
        if host not in self.allowed_hosts:
            return False
        return scheme == "https" or (scheme == "http" and is_loopback_host(host))


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
    if policy.allows(scheme, host):
        return Decision(Verdict.ALLOW, host, "a host of the provider")
    if not is_main_frame and scheme in SUBFRAME_SCHEMES:
        return Decision(Verdict.ALLOW, host, f"a {scheme}: sub-frame")
    if host and host in policy.allowed_hosts:
        return Decision(Verdict.BLOCK, host, f"plain {scheme or 'unknown scheme'} to {host}")
    return Decision(Verdict.BLOCK, host, f"{host or scheme or 'the URL'} is not a host of the provider")


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

"""The authorization-code login: build the authorization URL, then check the redirect exactly."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, urlsplit

from tdgui.core.errors import AccessDenied, RedirectError
from tdgui.core.providers import Provider

#: RFC 7636 §4.1 unreserved characters; 64 chars of this alphabet carry ~380 bits.
_UNRESERVED = string.ascii_letters + string.digits + "-._~"
VERIFIER_LENGTH = 64
#: 32 bytes of randomness in url-safe base64: 256 bits, well above the 128 docs/design.md asks for.
STATE_BYTES = 32


def new_state() -> str:
    return secrets.token_urlsafe(STATE_BYTES)


def new_code_verifier() -> str:
    return "".join(secrets.choice(_UNRESERVED) for _ in range(VERIFIER_LENGTH))


@dataclass(frozen=True)
class PendingLogin:
    """One login in progress: the URL to open and what the redirect must match. Holds secrets."""

    account: str
    url: str
    state: str
    redirect_uri: str
    code_verifier: str | None
    created_at: float
    #: what the account looked like when the login began (see TokenService.finish_login)
    account_fingerprint: str = ""

    def __repr__(self) -> str:  # never let the verifier reach a log through repr()
        return f"PendingLogin(account={self.account!r}, redirect_uri={self.redirect_uri!r})"


def begin_login(
    account: str, provider: Provider, client_id: str, redirect_uri: str, now: float
) -> PendingLogin:
    """Build the authorization URL with a fresh one-time state and, where taken, PKCE S256."""
    # authlib's protocol functions, not its requests integration: OAuth2Session would pull
    # in requests and the OpenID client (~0.25 s, ~12 MiB) before the login page can show.
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    state = new_state()
    verifier = new_code_verifier() if provider.pkce else None
    extra = dict(provider.extra_authorize_params)
    if verifier:
        extra.update(code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256")
    url = prepare_grant_uri(
        provider.authorize_url,
        provider.full_client_id(client_id),
        "code",
        redirect_uri=redirect_uri,
        scope=" ".join(provider.scopes) or None,
        state=state,
        **extra,
    )
    return PendingLogin(account, url, state, redirect_uri, verifier, now)


def _split(url: str) -> SplitResult:
    """urlsplit, with its ValueError (e.g. "https://[" is an unclosed IPv6 host) typed."""
    try:
        return urlsplit(url)
    except ValueError:
        raise RedirectError("the redirect URL cannot be read (malformed host)") from None


def _origin_and_path(url: str) -> tuple[str, str, int | None, str]:
    parts = _split(url)
    try:
        port = parts.port
    except ValueError:
        raise RedirectError("the redirect URL has an invalid port") from None
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or default, parts.path or "/"


def matches_callback(url: str, redirect_uri: str) -> bool:
    """Is `url` a navigation to the callback (same scheme, host, port and path)?"""
    try:
        return _origin_and_path(url) == _origin_and_path(redirect_uri)
    except RedirectError:
        return False


def parse_redirect(pending: PendingLogin, redirect_url: str) -> str:
    """Check a redirect against the pending login and return the authorization code.

    Exact matching per RFC 8252 §8.10 / RFC 9700 §4.1: scheme, host, port and path equal the
    registered callback; no user info; `state` present once and equal (RFC 6749 §10.12);
    `code` present once, in the query (a fragment is never read). The code is decoded once,
    so Schwab's trailing `%40` becomes `@`.
    """
    url = redirect_url.strip()
    if not url:
        raise RedirectError("no redirect URL was given")
    if any(ch.isspace() for ch in url):
        raise RedirectError("the redirect URL contains spaces; paste the whole address line")
    parts = _split(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RedirectError("that is not a URL: paste the whole address the browser ended on")
    if "@" in parts.netloc:
        raise RedirectError("the redirect URL carries a user name; it is not the callback URL")
    got = _origin_and_path(url)
    want = _origin_and_path(pending.redirect_uri)
    if got[:3] != want[:3]:
        raise RedirectError(
            f"the redirect went to {got[0]}://{got[1]}:{got[2]}, not to the callback URL "
            f"{pending.redirect_uri}"
        )
    if got[3] != want[3]:
        raise RedirectError(f"the redirect path {got[3]!r} differs from the callback URL's path {want[3]!r}")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise RedirectError("the redirect URL's query cannot be read") from None
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)

    def single(name: str) -> str | None:
        found = values.get(name, [])
        if len(found) > 1:
            raise RedirectError(f"the redirect carries {name!r} more than once; refusing it")
        return found[0] if found else None

    state = single("state")
    if state is None:
        raise RedirectError("the redirect carries no state; it does not belong to this login")
    if not secrets.compare_digest(state.encode(), pending.state.encode()):
        raise RedirectError("the redirect's state does not match this login (stale or forged)")
    error = single("error")
    if error is not None:
        description = single("error_description") or ""
        if error == "access_denied":
            raise AccessDenied("the login was declined (access_denied)")
        raise RedirectError(f"the provider refused the login: {error} {description}".strip())
    code = single("code")
    if not code:
        if "code=" in parts.fragment:
            raise RedirectError("the code is in the URL fragment; this flow takes it from the query")
        raise RedirectError("the redirect carries no authorization code")
    return code

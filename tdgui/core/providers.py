"""Provider profiles: endpoints, client authentication, token lifetimes and quirks (docs/design.md §2)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tdgui.core.errors import UsageError

PROVIDER_NAMES = ("schwab", "tdameritrade", "sandbox", "custom")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
SANDBOX_FLAVORS = ("schwab", "tdameritrade")

#: Port the sandbox listens on when started without --port; `--provider sandbox` accounts use it.
SANDBOX_DEFAULT_PORT = 47443
SANDBOX_DEFAULT_URL = f"https://127.0.0.1:{SANDBOX_DEFAULT_PORT}"

ACCESS_LIFETIME = 1800
SCHWAB_REFRESH_LIFETIME = 7 * 24 * 3600
TDA_REFRESH_LIFETIME = 90 * 24 * 3600
TDA_CLIENT_ID_SUFFIX = "@AMER.OAUTHAP"

#: Built-in demo apps of the sandbox, so `--provider sandbox` needs no other setting.
SANDBOX_SCHWAB_CLIENT_ID = "SandboxSchwabAppKey0123456789abcd"
SANDBOX_SCHWAB_CLIENT_SECRET = "SandboxSecret0123"
SANDBOX_TDA_CLIENT_ID = "SANDBOXTDAKEY0123456789"
SANDBOX_CALLBACK_URL = "https://127.0.0.1:8182/"


@dataclass(frozen=True)
class Provider:
    """Everything the protocol code needs to know about one authorization server."""

    name: str
    flavor: str  # "schwab", "tdameritrade" or "generic": which quirks apply
    authorize_url: str
    token_url: str
    auth_method: str
    pkce: bool
    scopes: tuple[str, ...] = ()
    access_lifetime: int = ACCESS_LIFETIME
    #: Fallback refresh lifetime when the token response does not say.
    refresh_lifetime: int | None = None
    #: Schwab: the refresh token dies a fixed time after the login; refreshes do not extend it.
    refresh_expiry_fixed_at_login: bool = False
    client_id_suffix: str = ""
    extra_authorize_params: tuple[tuple[str, str], ...] = ()
    extra_token_params: tuple[tuple[str, str], ...] = ()
    #: Registrable domains the embedded login view's main frame may visit, with their
    #: subdomains, over https (docs/design.md §5, RFC 8252 §8.12; tdgui.core.navigation).
    #: Where the real login goes is in docs/providers.md.
    login_domains: tuple[str, ...] = field(default=())
    #: CA bundle to pin (the sandbox's own CA); None means the system trust store.
    ca_file: str | None = None
    #: Is a renewal of the refresh token possible (TD Ameritrade `access_type=offline`)?
    renews_refresh_token: bool = False
    #: The one server certificate (PEM) the embedded login view accepts, by its SHA-256 (the
    #: sandbox's leaf); None means the view accepts only certificates the system trusts.
    pinned_cert_file: str | None = None
    #: A demo app whose secret is public and built in (the sandbox's): (client id, secret).
    #: Out of repr all the same: no secret, even a demo one, goes into a log line.
    builtin_client: tuple[str, str] | None = field(default=None, repr=False)

    def builtin_client_secret(self, client_id: str) -> str | None:
        """The built-in secret of `client_id`, if this provider has one for it (never a real app's)."""
        if self.builtin_client is not None and self.builtin_client[0] == client_id:
            return self.builtin_client[1]
        return None

    def pinned_sha256(self) -> str | None:
        """SHA-256 (hex) of the pinned certificate now on disk; None if nothing is pinned or it
        does not exist yet (the sandbox never ran): then nothing is accepted."""
        if self.pinned_cert_file is None:
            return None
        from tdgui.core import localtls  # ssl and hashlib only when a pin is asked for

        return localtls.leaf_sha256(Path(self.pinned_cert_file))

    def full_client_id(self, client_id: str) -> str:
        if self.client_id_suffix and not client_id.endswith(self.client_id_suffix):
            return client_id + self.client_id_suffix
        return client_id

    @property
    def needs_client_secret(self) -> bool:
        return self.auth_method != "none"


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, what: str) -> str:
    """An endpoint must be https, or http on a loopback host only; returns it unchanged."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"{what} must be an https:// URL, got {url!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise UsageError(f"{what} must use https (plain http is allowed only on 127.0.0.1): {url}")
    if parts.username or parts.password:
        raise UsageError(f"{what} must not contain a user name or password: {url}")
    return url


def check_callback_url(url: str, provider: str) -> str:
    """Validate a callback (redirect) URL for a provider; returns it unchanged."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"callback URL must look like https://127.0.0.1:8182/, got {url!r}")
    if parts.fragment:
        raise UsageError("callback URL must not contain a #fragment (RFC 6749 §3.1.2)")
    if parts.username or parts.password:
        raise UsageError("callback URL must not contain a user name or password")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"callback URL has an invalid port: {url}") from None
    if provider in ("schwab", "sandbox"):
        if parts.scheme != "https":
            raise UsageError("Schwab requires an https callback URL, e.g. https://127.0.0.1:8182/")
        if parts.hostname == "localhost":
            raise UsageError("Schwab requires 127.0.0.1 in the callback URL, not localhost")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise UsageError("a plain-http callback URL is allowed only on 127.0.0.1")
    return url


def check_callback_host(url: str, provider: str) -> str:
    """For a callback URL a person enters (accounts add / edit, the dialog): Schwab's must be
    https://127.0.0.1[:PORT]/... (issue 14, defect 8). Returns it unchanged.

    tdgui's loopback login catches the redirect on this machine (RFC 8252 §7.3); Schwab's
    portal accepts any https URL, but a login sent to another host never comes back. Not part
    of check_callback_url (which accounts.json is loaded with), so an older file still loads.
    """
    check_callback_url(url, provider)
    host = urlsplit(url).hostname
    if provider in ("schwab", "sandbox") and host != "127.0.0.1":
        raise UsageError(
            f"Schwab's callback URL must be on this computer, https://127.0.0.1:PORT/..., not on {host}"
        )
    return url


def sandbox_base_url(account_url: str | None = None, default: str | None = None) -> str:
    """The account's own sandbox URL, else the entry point's default (TD_SANDBOX_URL), else built in."""
    return (account_url or default or SANDBOX_DEFAULT_URL).rstrip("/")


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


def schwab() -> Provider:
    return Provider(
        name="schwab",
        flavor="schwab",
        authorize_url="https://api.schwabapi.com/v1/oauth/authorize",
        token_url="https://api.schwabapi.com/v1/oauth/token",
        auth_method="client_secret_basic",
        pkce=False,
        refresh_lifetime=SCHWAB_REFRESH_LIFETIME,
        refresh_expiry_fixed_at_login=True,
        # api.schwabapi.com serves the authorize URL, the login app and its steps run on
        # *.schwab.com hosts (docs/providers.md has the sequence and its sources).
        login_domains=("schwabapi.com", "schwab.com"),
    )


def tdameritrade() -> Provider:
    return Provider(
        name="tdameritrade",
        flavor="tdameritrade",
        authorize_url="https://auth.tdameritrade.com/auth",
        token_url="https://api.tdameritrade.com/v1/oauth2/token",
        auth_method="none",
        pkce=False,
        refresh_lifetime=TDA_REFRESH_LIFETIME,
        client_id_suffix=TDA_CLIENT_ID_SUFFIX,
        extra_token_params=(("access_type", "offline"),),
        login_domains=("tdameritrade.com",),
        renews_refresh_token=True,
    )


def sandbox(
    flavor: str, base_url: str, ca_file: str | None, *, pinned_cert_file: str | None = None
) -> Provider:
    """The local emulator, at the real brokers' paths, with the flavor's quirks and demo app."""
    if flavor not in SANDBOX_FLAVORS:
        raise UsageError(f"sandbox flavor must be one of {', '.join(SANDBOX_FLAVORS)}")
    base = base_url.rstrip("/")
    real = schwab() if flavor == "schwab" else tdameritrade()
    # The TD Ameritrade flavor, like the real one, is a public client: it has no secret.
    demo_app = (SANDBOX_SCHWAB_CLIENT_ID, SANDBOX_SCHWAB_CLIENT_SECRET) if flavor == "schwab" else None
    return Provider(
        name="sandbox",
        flavor=flavor,
        authorize_url=base + urlsplit(real.authorize_url).path,
        token_url=base + urlsplit(real.token_url).path,
        auth_method=real.auth_method,
        pkce=True,
        refresh_lifetime=real.refresh_lifetime,
        refresh_expiry_fixed_at_login=real.refresh_expiry_fixed_at_login,
        client_id_suffix=real.client_id_suffix,
        extra_token_params=real.extra_token_params,
        login_domains=(host_of(base),),
        ca_file=ca_file,
        renews_refresh_token=real.renews_refresh_token,
        pinned_cert_file=pinned_cert_file,
        builtin_client=demo_app,
    )


def sandbox_profile(flavor: str, base_url: str, config_dir: Path) -> Provider:
    """The sandbox profile for a config dir: pins the local CA (tdgui.core.localtls) there,
    and its leaf for the embedded login view."""
    from tdgui.core import localtls

    tls_dir = localtls.local_tls_dir(config_dir)
    return sandbox(
        flavor,
        base_url,
        str(localtls.ca_file(tls_dir)),
        pinned_cert_file=str(localtls.leaf_cert_file(tls_dir)),
    )


def custom(
    authorize_url: str,
    token_url: str,
    auth_method: str,
    scopes: tuple[str, ...],
    pkce: bool,
    ca_file: str | None = None,
) -> Provider:
    if auth_method not in AUTH_METHODS:
        raise UsageError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
    check_endpoint_url(authorize_url, "authorize URL")
    check_endpoint_url(token_url, "token URL")
    return Provider(
        name="custom",
        flavor="generic",
        authorize_url=authorize_url,
        token_url=token_url,
        auth_method=auth_method,
        pkce=pkce,
        scopes=scopes,
        # The token URL is fetched by tdgui, never by the view: only the login page's host.
        login_domains=(host_of(authorize_url),),
        ca_file=ca_file,
    )

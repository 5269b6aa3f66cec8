"""What the login window and the login process share, without Qt WebEngine: results, the spec, errors.

The main app imports only this module (never tdgui.qt.login), so Chromium is never loaded in it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tdgui.core import flow
from tdgui.core.errors import AccessDenied, ProviderError, TdguiError
from tdgui.core.logs import SECRETS
from tdgui.core.providers import Provider, host_of
from tdgui.core.service import TokenService
from tdgui.core.tokens import TokenSet
from tdgui.qt.format import fmt_duration, fmt_time

#: How long the login window waits for the user before giving up (10 minutes).
DEFAULT_LOGIN_TIMEOUT = 600.0


class LoginOutcome(Enum):
    SUCCESS = "success"
    CANCELLED = "cancelled"
    CLOSED = "closed"
    DENIED = "denied"
    NETWORK = "network"
    TIMEOUT = "timeout"
    CERTIFICATE = "certificate"
    FAILED = "failed"


@dataclass(frozen=True)
class LoginResult:
    """How a login ended. `message` is for the user and never holds a secret."""

    account: str
    outcome: LoginOutcome
    message: str
    seconds: float
    tokens: TokenSet | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome is LoginOutcome.SUCCESS


@dataclass(frozen=True)
class _Prepared:
    pending: flow.PendingLogin
    provider: Provider
    #: sandbox only: SHA-256 (hex) of the one leaf certificate this view accepts, and its host.
    pinned_sha256: str | None
    pinned_host: str | None


@dataclass(frozen=True)
class LoginSpec:
    """Everything the web view needs, and nothing it must not have (no secret, no verifier).

    This is the one JSON line the parent writes to the login child's stdin.
    """

    account: str
    url: str
    redirect_uri: str
    allowed_hosts: tuple[str, ...]
    provider: str
    pinned_sha256: str | None = None
    pinned_host: str | None = None
    timeout: float = DEFAULT_LOGIN_TIMEOUT
    #: sandbox only (honoured only with a pinned host): fill demo/demo and allow.
    autofill_sandbox: bool = False
    #: with autofill_sandbox: the consent button to press, "allow" or "deny" (tests).
    autofill_consent: str = "allow"
    #: a PNG path: the child saves its window there once the page has loaded.
    screenshot: str | None = None

    @property
    def is_sandbox(self) -> bool:
        return self.provider == "sandbox" and bool(self.pinned_host)

    @classmethod
    def from_prepared(cls, name: str, prepared: _Prepared, timeout: float) -> LoginSpec:
        return cls(
            account=name,
            url=prepared.pending.url,
            redirect_uri=prepared.pending.redirect_uri,
            allowed_hosts=tuple(prepared.provider.allowed_hosts),
            provider=prepared.provider.name,
            pinned_sha256=prepared.pinned_sha256,
            pinned_host=prepared.pinned_host,
            timeout=timeout,
        )

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "account": self.account,
            "url": self.url,
            "redirect_uri": self.redirect_uri,
            "allowed_hosts": list(self.allowed_hosts),
            "provider": self.provider,
            "pinned_sha256": self.pinned_sha256,
            "pinned_host": self.pinned_host,
            "timeout": self.timeout,
            "autofill_sandbox": self.autofill_sandbox,
            "autofill_consent": self.autofill_consent,
            "screenshot": self.screenshot,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> LoginSpec:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("the login spec is not a JSON object")
        hosts = data.get("allowed_hosts") or []
        screenshot = data.get("screenshot")
        return cls(
            account=str(data["account"]),
            url=str(data["url"]),
            redirect_uri=str(data["redirect_uri"]),
            allowed_hosts=tuple(str(h) for h in hosts),
            provider=str(data.get("provider") or ""),
            pinned_sha256=data.get("pinned_sha256") or None,
            pinned_host=data.get("pinned_host") or None,
            timeout=float(data.get("timeout") or DEFAULT_LOGIN_TIMEOUT),
            autofill_sandbox=data.get("autofill_sandbox") is True,
            autofill_consent="deny" if data.get("autofill_consent") == "deny" else "allow",
            screenshot=str(screenshot) if screenshot else None,
        )


def prepare(service: TokenService, name: str) -> _Prepared:
    """Worker thread: build the authorization URL (reads the client secret) and the sandbox pin."""
    account = service.account(name)
    provider = service.provider(account)
    pending = service.begin_login(name)
    pinned_sha256 = pinned_host = None
    if provider.pinned_cert_file is not None:
        pinned_sha256 = provider.pinned_sha256()
        pinned_host = host_of(provider.authorize_url).lower()
    return _Prepared(pending, provider, pinned_sha256, pinned_host)


def success_message(name: str, tokens: TokenSet) -> str:
    parts = [f"Logged in to {name}. Access token valid until {fmt_time(tokens.access_expires_at)}"]
    if tokens.refresh_expires_at is not None:
        parts.append(f"refresh token until {fmt_time(tokens.refresh_expires_at)}")
    return "; ".join(parts) + "."


def error_outcome(error: BaseException) -> tuple[LoginOutcome, str]:
    """The outcome and user message of a failed code exchange (or system-browser login)."""
    if isinstance(error, AccessDenied):
        return (
            LoginOutcome.DENIED,
            "Access was denied on the consent page, so no tokens were issued. Nothing was changed.",
        )
    if isinstance(error, ProviderError):
        return LoginOutcome.NETWORK, f"The provider could not be reached: {error}. Nothing was changed."
    if isinstance(error, TdguiError):
        return LoginOutcome.FAILED, f"The login failed: {SECRETS.mask(str(error))}"
    logging.getLogger("tdgui.qt.login").error("login failed unexpectedly: %s", SECRETS.mask(repr(error)))
    return LoginOutcome.FAILED, f"The login failed unexpectedly ({type(error).__name__})."


def timeout_message(seconds: float) -> str:
    return (
        f"No login was completed within {fmt_duration(seconds)}; the login was abandoned. "
        "Nothing was changed."
    )

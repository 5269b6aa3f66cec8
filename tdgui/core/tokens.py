"""TokenSet: access + refresh token, expiry from local receipt time, versioned JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tdgui.core.errors import ProviderError, StoredDataError
from tdgui.core.providers import Provider

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TokenTimes:
    """The non-secret part of a TokenSet: what status and scheduling need, no token in it."""

    access_expires_at: float
    access_received_at: float
    refresh_expires_at: float | None
    login_at: float
    has_refresh_token: bool

    def access_valid(self, now: float, lead: float = 0.0) -> bool:
        return self.access_expires_at - now > lead

    def refresh_valid(self, now: float) -> bool:
        if not self.has_refresh_token:
            return False
        return self.refresh_expires_at is None or self.refresh_expires_at > now

    def refresh_remaining(self, now: float) -> float | None:
        return None if self.refresh_expires_at is None else self.refresh_expires_at - now


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    access_expires_at: float
    refresh_token: str | None
    refresh_expires_at: float | None
    #: Time of the browser login that started this grant (schwab-py's `creation_timestamp`).
    login_at: float
    #: Local time the current access token was received.
    received_at: float
    token_type: str = "Bearer"
    scope: str | None = None
    #: The provider's last token response as received (minus nothing: it is stored as secret).
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def has_refresh_token(self) -> bool:
        return bool(self.refresh_token)

    def times(self) -> TokenTimes:
        return TokenTimes(
            access_expires_at=self.access_expires_at,
            access_received_at=self.received_at,
            refresh_expires_at=self.refresh_expires_at,
            login_at=self.login_at,
            has_refresh_token=self.has_refresh_token,
        )

    def refresh_remaining(self, now: float) -> float | None:
        return None if self.refresh_expires_at is None else self.refresh_expires_at - now

    def access_valid(self, now: float, lead: float = 0.0) -> bool:
        return self.access_expires_at - now > lead

    def refresh_valid(self, now: float) -> bool:
        if not self.refresh_token:
            return False
        return self.refresh_expires_at is None or self.refresh_expires_at > now

    # -- serialisation ------------------------------------------------------------------
    def to_json(self) -> str:
        body = asdict(self)
        body["version"] = FORMAT_VERSION
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TokenSet:
        """Parse a stored record; anything malformed raises StoredDataError, nothing else."""
        try:
            body = json.loads(text)
        except (ValueError, TypeError, RecursionError) as exc:
            raise StoredDataError("stored tokens are not valid JSON") from exc
        if not isinstance(body, dict):
            raise StoredDataError("stored tokens are not a JSON object")
        version = body.get("version")
        if type(version) is not int or version != FORMAT_VERSION:
            raise StoredDataError(f"stored tokens have unknown format version {version!r}")
        try:
            tokens = cls(
                access_token=_str(body, "access_token"),
                access_expires_at=_num(body, "access_expires_at"),
                refresh_token=_opt_str(body, "refresh_token"),
                refresh_expires_at=_opt_num(body, "refresh_expires_at"),
                login_at=_num(body, "login_at"),
                received_at=_num(body, "received_at"),
                token_type=_str(body, "token_type"),
                scope=_opt_str(body, "scope"),
                response=_dict(body, "response"),
            )
        except KeyError as exc:
            raise StoredDataError(f"stored tokens lack field {exc.args[0]}") from None
        return tokens

    @classmethod
    def from_response(
        cls,
        response: dict[str, Any],
        provider: Provider,
        now: float,
        previous: TokenSet | None = None,
    ) -> TokenSet:
        """Build from a token endpoint response received at local time `now`.

        `previous` is the set being refreshed: without it this is a fresh login. Expiry is
        local receipt time + `expires_in` (never the server's clock). RFC 6749 §6: when the
        response carries a new refresh token the old one is gone; when it carries none, the
        old one stays.
        """
        access = response.get("access_token")
        if not isinstance(access, str) or not access:
            raise ProviderError("the token endpoint answered without an access_token")
        expires_in = _lifetime(response.get("expires_in"), provider.access_lifetime)
        new_refresh = response.get("refresh_token")
        if new_refresh is not None and (not isinstance(new_refresh, str) or not new_refresh):
            raise ProviderError("the token endpoint answered with an invalid refresh_token")
        login_at = now if previous is None else previous.login_at

        refresh_token: str | None
        refresh_expires_at: float | None
        if (
            previous is not None
            and new_refresh == previous.refresh_token
            and response.get("refresh_token_expires_in") is None
        ):
            # The same refresh token again (authlib copies the old one into a response that
            # had none): it was not renewed, so it keeps its expiry. Counting its lifetime
            # from now would hide TD Ameritrade's day-90 deadline and skip the renewal.
            new_refresh = None
        if new_refresh is None:
            refresh_token = previous.refresh_token if previous else None
            refresh_expires_at = previous.refresh_expires_at if previous else None
        else:
            refresh_token = new_refresh
            if provider.refresh_expiry_fixed_at_login:
                lifetime = provider.refresh_lifetime or 0
                refresh_expires_at = login_at + lifetime
            else:
                given = response.get("refresh_token_expires_in")
                lifetime_or_none = (
                    _lifetime(given, provider.refresh_lifetime or 0)
                    if given is not None or provider.refresh_lifetime
                    else None
                )
                refresh_expires_at = None if lifetime_or_none is None else now + lifetime_or_none
        token_type = response.get("token_type") or "Bearer"
        scope = response.get("scope")
        return cls(
            access_token=access,
            access_expires_at=now + expires_in,
            refresh_token=refresh_token,
            refresh_expires_at=refresh_expires_at,
            login_at=login_at,
            received_at=now,
            token_type=str(token_type),
            scope=scope if isinstance(scope, str) else None,
            response=dict(response),
        )


def _lifetime(value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ProviderError("the token endpoint sent an invalid expires_in") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ProviderError("the token endpoint sent an invalid expires_in")
    return int(seconds)


def _str(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise StoredDataError(f"stored field {key} is not a string")
    return value


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise StoredDataError(f"stored field {key} is not a string")
    return value


def _num(body: dict[str, Any], key: str) -> float:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StoredDataError(f"stored field {key} is not a number")
    return float(value)


def _opt_num(body: dict[str, Any], key: str) -> float | None:
    if body.get(key) is None:
        return None
    return _num(body, key)


def _dict(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise StoredDataError(f"stored field {key} is not an object")
    return value

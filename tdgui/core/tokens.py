"""TokenSet: access + refresh token, expiry from local receipt time, versioned JSON."""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from tdgui.core.errors import ProviderError, StoredDataError
from tdgui.core.logs import sanitize_provider_text
from tdgui.core.providers import Provider

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Longest lifetime believed from a provider (10 years); a longer one is treated like an
#: invalid one, so every time tdgui computes stays far inside what time.localtime and Qt's
#: QDateTime accept (1e20 overflowed both).
MAX_LIFETIME = 10 * 365 * 24 * 3600
#: Stored times beyond 9999-12-31 (a damaged or hand-edited record) are clamped on load.
MAX_TIMESTAMP = 253_402_300_799.0
#: RFC 6750 §2.1 b64token characters, plus "@": Schwab's tokens and codes end in one
#: (docs/design.md §2). No space, quote, backslash or control character can pass, so a token
#: is safe in a header, a terminal and a file. oauth.py applies the same check to answers.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/=@]+")
#: RFC 6749 §3.3 scope characters (space-separated NQCHAR tokens).
_SCOPE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{0,2048}")
_TOKEN_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}")
#: Fields of an answer tdgui and the exported formats use; everything else is "extra" and
#: kept only while small, so any answer oauth.py accepts fits every store.
KNOWN_FIELDS = (
    "access_token",
    "refresh_token",
    "token_type",
    "expires_in",
    "refresh_token_expires_in",
    "scope",
)
#: Never stored: tdgui, schwab-py and tda-api (which hand the token dict to authlib) do not
#: read Schwab's `id_token` (an OpenID JWT of ~1 KB), and without it a Schwab record fits one
#: keyring entry, so storing a refresh answer is a single D-Bus call (issue 11: the keyring's
#: SIGKILL window). `expires_at` is recomputed from `expires_in`.
NOT_KEPT = ("id_token", "expires_at")
MAX_EXTRA_FIELD = 1024
MAX_EXTRA_TOTAL = 8 * 1024


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
    #: The provider's last token response: the known fields plus at most MAX_EXTRA_TOTAL
    #: bytes of small extra ones (stored as secret; exports copy it).
    response: dict[str, Any] = field(default_factory=dict)
    #: This grant has rotated its refresh token on a refresh before: a refresh whose answer
    #: is lost must not be resent blindly (oauth.TokenClient.refresh, `rotating`).
    rotated: bool = False
    #: What was odd about the answer this set was built from (not stored; the service puts
    #: it in the status record). Already sanitized and free of secrets.
    warnings: tuple[str, ...] = field(default=(), compare=False)

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
        body.pop("warnings")
        if not self.rotated:
            body.pop("rotated")  # records stay byte-identical to older versions' when unset
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
                access_token=_token(body, "access_token"),
                access_expires_at=_num(body, "access_expires_at"),
                refresh_token=_opt_token(body, "refresh_token"),
                refresh_expires_at=_opt_num(body, "refresh_expires_at"),
                login_at=_num(body, "login_at"),
                received_at=_num(body, "received_at"),
                token_type=_str(body, "token_type"),
                scope=_opt_str(body, "scope"),
                response=_dict(body, "response"),
                rotated=_opt_bool(body, "rotated"),
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
        if not isinstance(access, str) or not B64TOKEN.fullmatch(access):
            raise ProviderError("the token endpoint answered without a valid access_token", transient=False)
        new_refresh = response.get("refresh_token")
        if new_refresh is not None and (
            not isinstance(new_refresh, str) or not B64TOKEN.fullmatch(new_refresh)
        ):
            raise ProviderError("the token endpoint answered with an invalid refresh_token", transient=False)
        # From here on nothing raises: a good answer is always stored (issue 11, finding 1).
        warnings: list[str] = []
        now = _clamp_time(now)
        expires_in = _lifetime(response.get("expires_in"), provider.access_lifetime, "expires_in", warnings)
        login_at = now if previous is None else previous.login_at
        given_refresh_lifetime = response.get("refresh_token_expires_in")

        refresh_token: str | None
        refresh_expires_at: float | None
        if previous is not None and new_refresh == previous.refresh_token and given_refresh_lifetime is None:
            # The same refresh token again (the answer had none, or repeated it): it was not
            # renewed, so it keeps its expiry. Counting its lifetime from now would hide TD
            # Ameritrade's day-90 deadline and skip the renewal.
            new_refresh = None
        rotated = previous.rotated if previous is not None else False
        if new_refresh is None:
            refresh_token = previous.refresh_token if previous else None
            refresh_expires_at = previous.refresh_expires_at if previous else None
        else:
            refresh_token = new_refresh
            if previous is not None and new_refresh != previous.refresh_token:
                rotated = True
            # A lifetime the server states wins over the assumed one (issue 14, defect 2).
            if provider.refresh_expiry_fixed_at_login and given_refresh_lifetime is None:
                refresh_expires_at = _clamp_time(login_at + (provider.refresh_lifetime or 0))
            else:
                lifetime = _lifetime(
                    given_refresh_lifetime, provider.refresh_lifetime, "refresh_token_expires_in", warnings
                )
                refresh_expires_at = None if lifetime is None else _clamp_time(now + lifetime)
        token_type = response.get("token_type")
        if token_type is None:
            token_type = "Bearer"
        elif not isinstance(token_type, str) or not _TOKEN_TYPE.fullmatch(token_type):
            warnings.append("the token endpoint sent an invalid token_type; using Bearer")
            token_type = "Bearer"
        scope = response.get("scope")
        if scope is not None and (not isinstance(scope, str) or not _SCOPE.fullmatch(scope)):
            warnings.append("the token endpoint sent an invalid scope; ignored")
            scope = None
        kept = _kept_fields(response, warnings)
        for warning in warnings:
            log.warning("%s", warning)
        return cls(
            access_token=access,
            access_expires_at=_clamp_time(now + (expires_in if expires_in is not None else 0)),
            refresh_token=refresh_token,
            refresh_expires_at=refresh_expires_at,
            login_at=login_at,
            received_at=now,
            token_type=token_type,
            scope=scope,
            response=kept,
            rotated=rotated,
            warnings=tuple(warnings),
        )


def _clamp_time(value: float) -> float:
    return min(max(value, 0.0), MAX_TIMESTAMP)


def _lifetime(value: Any, default: int | None, name: str, warnings: list[str]) -> int | None:
    """A lifetime in seconds from the answer; odd values fall back to `default`, with a warning.

    RFC 6749 §5.1 makes expires_in a number of seconds; numeric strings are accepted (some
    gateways quote numbers). Booleans, NaN, infinities, negatives and text are not.
    """
    if value is None:
        return default
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value) if not isinstance(value, int) or abs(value) < 10**30 else math.inf
    elif isinstance(value, str) and len(value) <= 32:
        try:
            seconds = float(value)
        except ValueError:
            seconds = None
    shown = sanitize_provider_text(
        json.dumps(value) if not isinstance(value, float) else repr(value), limit=40
    )
    fallback = "no expiry" if default is None else f"{default} s"
    if seconds is None or math.isnan(seconds) or seconds < 0:
        warnings.append(f"the token endpoint sent an invalid {name} ({shown}); assuming {fallback}")
        return default
    if seconds > MAX_LIFETIME:
        warnings.append(f"the token endpoint sent an implausible {name} ({shown}); assuming {fallback}")
        return default
    return int(seconds)


def _kept_fields(response: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The known fields (well-formed ones), then small extra fields up to MAX_EXTRA_TOTAL bytes."""
    kept: dict[str, Any] = {}
    for key in KNOWN_FIELDS:
        value = response.get(key)
        if value is None:
            continue
        if key in ("expires_in", "refresh_token_expires_in"):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_LIFETIME:
                kept[key] = value
        elif isinstance(value, str):
            kept[key] = value
    total = 0
    dropped = 0
    for key, value in response.items():
        if key in KNOWN_FIELDS or key in NOT_KEPT:
            continue
        try:
            size = len(json.dumps({key: value}, allow_nan=False))
        except (TypeError, ValueError, RecursionError):
            dropped += 1
            continue
        if size > MAX_EXTRA_FIELD or total + size > MAX_EXTRA_TOTAL:
            dropped += 1
            continue
        kept[key] = value
        total += size
    if dropped:
        warnings.append(f"{dropped} extra field(s) of the token answer were too large and were not stored")
    return kept


def _token(body: dict[str, Any], key: str) -> str:
    # `tdgui token` prints it and session() sends it in a header: a record edited or written
    # by an older version must not bring a control character or a space into either.
    value = _str(body, key)
    if not B64TOKEN.fullmatch(value):
        raise StoredDataError(f"stored field {key} is not a valid token")
    return value


def _opt_token(body: dict[str, Any], key: str) -> str | None:
    return None if body.get(key) is None else _token(body, key)


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
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StoredDataError(f"stored field {key} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise StoredDataError(f"stored field {key} is out of range") from None
    if not math.isfinite(number):
        raise StoredDataError(f"stored field {key} is not a number")
    return _clamp_time(number)


def _opt_num(body: dict[str, Any], key: str) -> float | None:
    if body.get(key) is None:
        return None
    return _num(body, key)


def _opt_bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if type(value) is not bool:
        raise StoredDataError(f"stored field {key} is not true or false")
    return value


def _dict(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise StoredDataError(f"stored field {key} is not an object")
    return value

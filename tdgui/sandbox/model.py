"""The sandbox's authorization-server state: codes, grants, tokens, rotation and reuse detection, clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from tdgui.core.providers import SCHWAB_REFRESH_LIFETIME, TDA_REFRESH_LIFETIME
from tdgui.sandbox import clients
from tdgui.sandbox.errors import OAuthError, PageError
from tdgui.sandbox.faults import FaultQueue, Stats

LOG = logging.getLogger(__name__)

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
SCHWAB_SCOPE = "api"
TDA_SCOPE = "PlaceTrades AccountAccess MoveMoney"
#: How long the consent page stays usable after a successful password login.
CONSENT_TTL = 600.0
#: RFC 7636 §4.1: the verifier's (and the plain challenge's) alphabet and length.
PKCE_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


@dataclass(frozen=True)
class AuthRequest:
    flavor: str
    client_id: str
    redirect_uri: str
    state: str | None
    code_challenge: str | None
    code_challenge_method: str | None

    def hidden_fields(self) -> list[tuple[str, str]]:
        fields = [
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
        ]
        if self.state is not None:
            fields.append(("state", self.state))
        if self.code_challenge is not None:
            fields.append(("code_challenge", self.code_challenge))
            fields.append(("code_challenge_method", self.code_challenge_method or "plain"))
        return fields


@dataclass
class Txn:
    request: AuthRequest
    user: str
    expires_at: float


@dataclass
class Code:
    request: AuthRequest
    user: str
    expires_at: float
    used: bool = False


@dataclass
class Grant:
    id: str
    flavor: str
    client_id: str
    user: str
    login_at: float
    revoked: bool = False
    superseded: bool = False


@dataclass
class Refresh:
    grant_id: str
    expires_at: float
    active: bool = True


@dataclass
class Access:
    grant_id: str
    expires_at: float


def random_code(flavor: str) -> str:
    if flavor == "schwab":
        # Schwab: "C0.<base64url>@" - the trailing @ arrives percent-encoded as %40.
        return "C0." + secrets.token_urlsafe(48) + "@"
    while True:
        # TD Ameritrade: long standard base64, full of + / = that must be url-encoded.
        code = base64.b64encode(secrets.token_bytes(241)).decode()
        if "+" in code and "/" in code:
            return code


def random_token(flavor: str, prefix: str) -> str:
    if flavor == "schwab":
        return prefix + secrets.token_urlsafe(64) + "@"
    return base64.b64encode(secrets.token_bytes(301)).decode()


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def b64url_json(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class State:
    """Every client, code, grant and token of one sandbox, behind one lock."""

    def __init__(
        self,
        *,
        access_ttl: int,
        refresh_ttl: int | None,
        rotate: bool,
        code_ttl: float,
        clock: Callable[[], float],
    ) -> None:
        self.lock = threading.RLock()
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.rotate = rotate
        self.code_ttl = code_ttl
        self.clock = clock
        self.clock_offset = 0.0
        self.txns: dict[str, Txn] = {}
        self.codes: dict[str, Code] = {}
        self.grants: dict[str, Grant] = {}
        self.refresh: dict[str, Refresh] = {}
        self.access: dict[str, Access] = {}
        self.faults = FaultQueue()
        self.stats = Stats()
        self.id_token_key = secrets.token_bytes(32)
        self.issuer = ""

    def now(self) -> float:
        return self.clock() + self.clock_offset

    def refresh_lifetime(self, flavor: str) -> int:
        if self.refresh_ttl is not None:
            return self.refresh_ttl
        return SCHWAB_REFRESH_LIFETIME if flavor == "schwab" else TDA_REFRESH_LIFETIME

    def count(self, name: str, by: int = 1) -> None:
        with self.lock:
            self.stats.counts[name] = self.stats.counts.get(name, 0) + by

    def counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.stats.counts)

    def requests(self) -> list[tuple[str, str, str | None]]:
        with self.lock:
            return list(self.stats.requests)

    def reset_stats(self) -> None:
        with self.lock:
            self.stats = Stats()

    def record(self, method: str, path: str, grant_type: str | None) -> None:
        """Note one request: (method, path, grant_type); never its query or body (secrets)."""
        with self.lock:
            self.stats.requests.append((method, path, grant_type))
        if grant_type is None:
            LOG.info("%s %s", method, path)
        else:
            LOG.info("%s %s grant_type=%s", method, path, grant_type)

    def advance_clock(self, seconds: float) -> None:
        """Move this sandbox's notion of time forward (codes and refresh tokens expire)."""
        with self.lock:
            self.clock_offset += seconds

    # ----------------------------------------------------------------- authorize

    def start_consent(self, request: AuthRequest, user: str) -> str:
        txn = secrets.token_urlsafe(24)
        with self.lock:
            now = self.now()
            for key in [k for k, t in self.txns.items() if t.expires_at <= now]:
                del self.txns[key]
            self.txns[txn] = Txn(request, user, now + CONSENT_TTL)
        return txn

    def finish_consent(self, txn_id: str, action: str) -> str:
        if action not in ("allow", "deny"):
            raise PageError("The consent form must be answered with allow or deny.")
        with self.lock:
            txn = self.txns.pop(txn_id, None)
            if txn is None or txn.expires_at <= self.now():
                raise PageError("This login has expired or was already answered; start again from the app.")
            request = txn.request
            if action == "deny":
                pairs = [
                    ("error", "access_denied"),
                    ("error_description", "The user denied the authorization request."),
                ]
            else:
                code = random_code(request.flavor)
                now = self.now()
                for key in [k for k, c in self.codes.items() if c.expires_at + 3600 <= now]:
                    del self.codes[key]
                self.codes[code] = Code(request, txn.user, now + self.code_ttl)
                self.stats.counts["codes_issued"] += 1
                pairs = [("code", code)]
                if request.flavor == "schwab":
                    pairs.append(("session", str(uuid.uuid4())))
        if request.state is not None:
            pairs.append(("state", request.state))
        return add_query(request.redirect_uri, pairs)

    # ----------------------------------------------------------------- token

    def token(self, flavor: str, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        """The token endpoint's answer (RFC 6749 §4.1.3, §6), the client authenticated first."""
        grant_type = form.get("grant_type", "")
        client_id = clients.authenticate(flavor, form, authorization)
        if not grant_type:
            raise OAuthError(400, "invalid_request", "grant_type is missing")
        with self.lock:
            if grant_type == "authorization_code":
                return self._exchange_code(flavor, client_id, form)
            if grant_type == "refresh_token":
                return self._refresh(flavor, client_id, form)
        raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def _exchange_code(self, flavor: str, client_id: str, form: dict[str, str]) -> dict[str, Any]:
        code = form.get("code", "")
        redirect_uri = form.get("redirect_uri")
        verifier = form.get("code_verifier")
        if not code:
            raise OAuthError(400, "invalid_request", "code is missing")
        if redirect_uri is None:
            raise OAuthError(400, "invalid_request", "redirect_uri is missing")
        now = self.now()
        record = self.codes.get(code)
        if record is None or record.request.flavor != flavor:
            raise OAuthError(400, "invalid_grant", "authorization code is unknown")
        if record.used:
            raise OAuthError(400, "invalid_grant", "authorization code was already used")
        record.used = True  # one-time, whatever happens next
        request = record.request
        if request.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "authorization code was issued to another client")
        if now >= record.expires_at:
            raise OAuthError(400, "invalid_grant", "authorization code has expired")
        if redirect_uri != request.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri differs from the authorization request's")
        if request.code_challenge is None:
            if verifier is not None:
                # RFC 9700 §2.1.1: a verifier without a challenge is a PKCE downgrade.
                raise OAuthError(
                    400, "invalid_grant", "code_verifier sent but the request had no code_challenge"
                )
        else:
            if not verifier:
                raise OAuthError(400, "invalid_grant", "code_verifier is missing (PKCE)")
            expected = s256(verifier) if request.code_challenge_method == "S256" else verifier
            if not PKCE_RE.match(verifier) or not hmac.compare_digest(expected, request.code_challenge):
                raise OAuthError(400, "invalid_grant", "code_verifier does not match (PKCE)")
        if flavor == "schwab":
            # Schwab quirk: a new login invalidates the tokens of the app's earlier logins.
            for grant in self.grants.values():
                if (
                    grant.flavor == flavor
                    and grant.client_id == client_id
                    and not grant.superseded
                    and not grant.revoked
                ):
                    grant.superseded = True
                    self.stats.counts["superseded_grants"] += 1
        grant = Grant(secrets.token_hex(8), flavor, client_id, record.user, now)
        self.grants[grant.id] = grant
        self.stats.counts["successful_code_exchanges"] += 1
        refresh_expires = now + self.refresh_lifetime(flavor)
        return self._issue(grant, refresh_token=self._new_refresh(grant, refresh_expires))

    def _refresh(self, flavor: str, client_id: str, form: dict[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token", "")
        if not token:
            raise OAuthError(400, "invalid_request", "refresh_token is missing")
        now = self.now()
        record = self.refresh.get(token)
        grant = self.grants.get(record.grant_id) if record else None
        if record is None or grant is None or grant.flavor != flavor:
            raise OAuthError(400, "invalid_grant", "refresh token is unknown")
        if grant.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "refresh token was issued to another client")
        if grant.revoked:
            raise OAuthError(400, "invalid_grant", "refresh token was revoked")
        if not record.active:
            # RFC 9700 §4.14.2: a rotated-out refresh token came back - revoke the whole grant.
            grant.revoked = True
            self.stats.counts["revoked_grants"] += 1
            LOG.warning("refresh token reuse detected: grant revoked")
            raise OAuthError(400, "invalid_grant", "refresh token was already used; the grant is revoked")
        if grant.superseded:
            raise OAuthError(
                400,
                "refresh_token_authentication_error",
                "refresh token was invalidated by a newer login for this app",
            )
        if now >= record.expires_at:
            if flavor == "schwab":
                raise OAuthError(
                    400, "refresh_token_authentication_error", "Failed refresh token authentication"
                )
            raise OAuthError(400, "invalid_grant", "refresh token has expired")
        self.stats.counts["successful_refreshes"] += 1
        offline = form.get("access_type") == "offline"
        if self.rotate:
            record.active = False
            expires = record.expires_at if flavor == "schwab" else now + self.refresh_lifetime(flavor)
            return self._issue(grant, refresh_token=self._new_refresh(grant, expires))
        if flavor == "schwab":
            return self._issue(grant, refresh_token=token)
        if offline:
            expires = now + self.refresh_lifetime(flavor)
            return self._issue(grant, refresh_token=self._new_refresh(grant, expires))
        return self._issue(grant, refresh_token=None)

    def _new_refresh(self, grant: Grant, expires_at: float) -> str:
        token = random_token(grant.flavor, "")
        self.refresh[token] = Refresh(grant.id, expires_at)
        return token

    def _issue(self, grant: Grant, *, refresh_token: str | None) -> dict[str, Any]:
        now = self.now()
        access = random_token(grant.flavor, "I0.")
        self.access[access] = Access(grant.id, now + self.access_ttl)
        for key in [k for k, a in self.access.items() if a.expires_at + 3600 <= now]:
            del self.access[key]
        if grant.flavor == "schwab":
            assert refresh_token is not None
            return {
                "expires_in": self.access_ttl,
                "token_type": "Bearer",
                "scope": SCHWAB_SCOPE,
                "refresh_token": refresh_token,
                "access_token": access,
                "id_token": self._id_token(grant, now),
            }
        body: dict[str, Any] = {
            "access_token": access,
            "scope": TDA_SCOPE,
            "expires_in": self.access_ttl,
            "token_type": "Bearer",
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
            body["refresh_token_expires_in"] = max(0, round(self.refresh[refresh_token].expires_at - now))
        return body

    def _id_token(self, grant: Grant, now: float) -> str:
        header = b64url_json({"alg": "HS256", "typ": "JWT"})
        payload = b64url_json(
            {
                "iss": self.issuer,
                "sub": grant.user,
                "aud": grant.client_id,
                "iat": int(now),
                "exp": int(now) + self.access_ttl,
            }
        )
        signing_input = f"{header}.{payload}".encode()
        signature = hmac.new(self.id_token_key, signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()

    def check_access(self, token: str) -> Grant | None:
        with self.lock:
            record = self.access.get(token)
            if record is None or self.now() >= record.expires_at:
                return None
            grant = self.grants.get(record.grant_id)
            if grant is None or grant.revoked or grant.superseded:
                return None
            return grant


def add_query(uri: str, pairs: list[tuple[str, str]]) -> str:
    parts = urlsplit(uri)
    extra = urlencode(pairs, quote_via=quote, safe="")
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

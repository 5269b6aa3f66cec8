"""Local HTTPS emulator of the Schwab and TD Ameritrade OAuth servers, with switchable faults."""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import hmac
import json
import logging
import re
import secrets
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit, urlunsplit

from tdgui.core.errors import UsageError
from tdgui.core.providers import (
    ACCESS_LIFETIME,
    SANDBOX_CALLBACK_URL,
    SANDBOX_DEFAULT_PORT,
    SANDBOX_FLAVORS,
    SANDBOX_SCHWAB_CLIENT_ID,
    SANDBOX_SCHWAB_CLIENT_SECRET,
    SANDBOX_TDA_CLIENT_ID,
    SCHWAB_REFRESH_LIFETIME,
    TDA_CLIENT_ID_SUFFIX,
    TDA_REFRESH_LIFETIME,
    Provider,
    sandbox,
    schwab,
    tdameritrade,
)
from tdgui.sandbox import pages
from tdgui.sandbox.certs import SandboxCerts, ensure_sandbox_certs

LOG = logging.getLogger("tdgui.sandbox")

#: The real brokers' paths, which the sandbox mirrors.
SCHWAB_AUTHORIZE_PATH = urlsplit(schwab().authorize_url).path
SCHWAB_TOKEN_PATH = urlsplit(schwab().token_url).path
TDA_AUTHORIZE_PATH = urlsplit(tdameritrade().authorize_url).path
TDA_TOKEN_PATH = urlsplit(tdameritrade().token_url).path
USERINFO_PATH = "/v1/userinfo"
ACCOUNT_NUMBERS_PATHS = ("/v1/accounts/accountNumbers", "/trader/v1/accounts/accountNumbers")

TDA_FULL_CLIENT_ID = SANDBOX_TDA_CLIENT_ID + TDA_CLIENT_ID_SUFFIX
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
WRONG_LOGIN = "Wrong user name or password"
SCHWAB_SCOPE = "api"
TDA_SCOPE = "PlaceTrades AccountAccess MoveMoney"
#: How long the consent page stays usable after a successful password login.
CONSENT_TTL = 600.0

FAULT_KINDS = (
    "500",
    "503",
    "429",
    "hang",
    "malformed",
    "no_access_token",
    "html",
    "invalid_grant",
    "invalid_client",
    "refresh_token_authentication_error",
)
STAT_NAMES = (
    "token_requests",
    "code_exchanges",
    "refresh_requests",
    "revoked_grants",
    "faults_served",
    "successful_code_exchanges",
    "successful_refreshes",
    "superseded_grants",
    "codes_issued",
    "api_requests",
)

_MAX_BODY = 64 * 1024
_HANDSHAKE_TIMEOUT = 10.0
_PKCE_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_KNOWN_GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", "password")
_ADDR_IN_USE = {errno.EADDRINUSE, 10048}  # 10048: WSAEADDRINUSE
_ADDR_DENIED = {errno.EACCES, 10013}  # 10013: WSAEACCES (Windows reports a taken port so)
_LOCAL_ADDRESSES = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


# --------------------------------------------------------------------------- state


class _OAuthError(Exception):
    """An RFC 6749 §5.2 error answer of the token endpoint."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description


class _PageError(Exception):
    """An authorization request we refuse with an HTML page (never a redirect)."""


@dataclass(frozen=True)
class _AuthRequest:
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
class _Txn:
    request: _AuthRequest
    user: str
    expires_at: float


@dataclass
class _Code:
    request: _AuthRequest
    user: str
    expires_at: float
    used: bool = False


@dataclass
class _Grant:
    id: str
    flavor: str
    client_id: str
    user: str
    login_at: float
    revoked: bool = False
    superseded: bool = False


@dataclass
class _Refresh:
    grant_id: str
    expires_at: float
    active: bool = True


@dataclass
class _Access:
    grant_id: str
    expires_at: float


@dataclass
class _Fault:
    kind: str
    remaining: int
    retry_after: float | None
    hang_seconds: float


@dataclass
class _Stats:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_NAMES, 0))
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


def _random_code(flavor: str) -> str:
    if flavor == "schwab":
        # Schwab: "C0.<base64url>@" - the trailing @ arrives percent-encoded as %40.
        return "C0." + secrets.token_urlsafe(48) + "@"
    while True:
        # TD Ameritrade: long standard base64, full of + / = that must be url-encoded.
        code = base64.b64encode(secrets.token_bytes(241)).decode()
        if "+" in code and "/" in code:
            return code


def _random_token(flavor: str, prefix: str) -> str:
    if flavor == "schwab":
        return prefix + secrets.token_urlsafe(64) + "@"
    return base64.b64encode(secrets.token_bytes(301)).decode()


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _b64url_json(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class _State:
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
        self.txns: dict[str, _Txn] = {}
        self.codes: dict[str, _Code] = {}
        self.grants: dict[str, _Grant] = {}
        self.refresh: dict[str, _Refresh] = {}
        self.access: dict[str, _Access] = {}
        self.faults: list[_Fault] = []
        self.stats = _Stats()
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

    # ----------------------------------------------------------------- authorize

    def check_authorize(self, flavor: str, params: dict[str, str]) -> _AuthRequest:
        client_id = params.get("client_id", "")
        if not client_id:
            raise _PageError("The request has no client_id.")
        if flavor == "schwab":
            if client_id != SANDBOX_SCHWAB_CLIENT_ID:
                raise _PageError(
                    f"Unknown client_id {client_id!r}: the sandbox's Schwab app key is "
                    f"{SANDBOX_SCHWAB_CLIENT_ID}."
                )
        else:
            if not client_id.endswith(TDA_CLIENT_ID_SUFFIX):
                raise _PageError(f"The client_id must end with {TDA_CLIENT_ID_SUFFIX} (got {client_id!r}).")
            if client_id != TDA_FULL_CLIENT_ID:
                raise _PageError(
                    f"Unknown client_id {client_id!r}: the sandbox's TD Ameritrade consumer key "
                    f"is {TDA_FULL_CLIENT_ID}."
                )
        redirect_uri = params.get("redirect_uri", "")
        _check_redirect_uri(flavor, redirect_uri)
        response_type = params.get("response_type", "")
        if response_type != "code":
            raise _PageError(f"response_type must be 'code' (got {response_type!r}).")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if challenge is None:
            if method is not None:
                raise _PageError("code_challenge_method was sent without a code_challenge.")
        else:
            if method is None:
                method = "plain"  # RFC 7636 §4.3
            if method not in ("S256", "plain"):
                raise _PageError(f"code_challenge_method must be S256 (got {method!r}).")
            if not _PKCE_RE.match(challenge):
                raise _PageError("code_challenge must be 43 to 128 characters [A-Za-z0-9-._~].")
        state = params.get("state")
        return _AuthRequest(flavor, client_id, redirect_uri, state, challenge, method)

    def start_consent(self, request: _AuthRequest, user: str) -> str:
        txn = secrets.token_urlsafe(24)
        with self.lock:
            now = self.now()
            for key in [k for k, t in self.txns.items() if t.expires_at <= now]:
                del self.txns[key]
            self.txns[txn] = _Txn(request, user, now + CONSENT_TTL)
        return txn

    def finish_consent(self, txn_id: str, action: str) -> str:
        if action not in ("allow", "deny"):
            raise _PageError("The consent form must be answered with allow or deny.")
        with self.lock:
            txn = self.txns.pop(txn_id, None)
            if txn is None or txn.expires_at <= self.now():
                raise _PageError("This login has expired or was already answered; start again from the app.")
            request = txn.request
            if action == "deny":
                pairs = [
                    ("error", "access_denied"),
                    ("error_description", "The user denied the authorization request."),
                ]
            else:
                code = _random_code(request.flavor)
                now = self.now()
                for key in [k for k, c in self.codes.items() if c.expires_at + 3600 <= now]:
                    del self.codes[key]
                self.codes[code] = _Code(request, txn.user, now + self.code_ttl)
                self.stats.counts["codes_issued"] += 1
                pairs = [("code", code)]
                if request.flavor == "schwab":
                    pairs.append(("session", str(uuid.uuid4())))
        if request.state is not None:
            pairs.append(("state", request.state))
        return _add_query(request.redirect_uri, pairs)

    # ----------------------------------------------------------------- token

    def take_fault(self) -> _Fault | None:
        with self.lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.faults.pop(0)
            self.stats.counts["faults_served"] += 1
            return _Fault(fault.kind, 1, fault.retry_after, fault.hang_seconds)

    def token(self, flavor: str, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        if flavor == "schwab":
            client_id = _basic_client(authorization)
        else:
            client_id = _tda_client(form.get("client_id"))
        if not grant_type:
            raise _OAuthError(400, "invalid_request", "grant_type is missing")
        with self.lock:
            if grant_type == "authorization_code":
                return self._exchange_code(flavor, client_id, form)
            if grant_type == "refresh_token":
                return self._refresh(flavor, client_id, form)
        raise _OAuthError(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def _exchange_code(self, flavor: str, client_id: str, form: dict[str, str]) -> dict[str, Any]:
        code = form.get("code", "")
        redirect_uri = form.get("redirect_uri")
        verifier = form.get("code_verifier")
        if not code:
            raise _OAuthError(400, "invalid_request", "code is missing")
        if redirect_uri is None:
            raise _OAuthError(400, "invalid_request", "redirect_uri is missing")
        now = self.now()
        record = self.codes.get(code)
        if record is None or record.request.flavor != flavor:
            raise _OAuthError(400, "invalid_grant", "authorization code is unknown")
        if record.used:
            raise _OAuthError(400, "invalid_grant", "authorization code was already used")
        record.used = True  # one-time, whatever happens next
        request = record.request
        if request.client_id != client_id:
            raise _OAuthError(400, "invalid_grant", "authorization code was issued to another client")
        if now >= record.expires_at:
            raise _OAuthError(400, "invalid_grant", "authorization code has expired")
        if redirect_uri != request.redirect_uri:
            raise _OAuthError(400, "invalid_grant", "redirect_uri differs from the authorization request's")
        if request.code_challenge is None:
            if verifier is not None:
                # RFC 9700 §2.1.1: a verifier without a challenge is a PKCE downgrade.
                raise _OAuthError(
                    400, "invalid_grant", "code_verifier sent but the request had no code_challenge"
                )
        else:
            if not verifier:
                raise _OAuthError(400, "invalid_grant", "code_verifier is missing (PKCE)")
            expected = _s256(verifier) if request.code_challenge_method == "S256" else verifier
            if not _PKCE_RE.match(verifier) or not hmac.compare_digest(expected, request.code_challenge):
                raise _OAuthError(400, "invalid_grant", "code_verifier does not match (PKCE)")
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
        grant = _Grant(secrets.token_hex(8), flavor, client_id, record.user, now)
        self.grants[grant.id] = grant
        self.stats.counts["successful_code_exchanges"] += 1
        refresh_expires = now + self.refresh_lifetime(flavor)
        return self._issue(grant, refresh_token=self._new_refresh(grant, refresh_expires))

    def _refresh(self, flavor: str, client_id: str, form: dict[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token", "")
        if not token:
            raise _OAuthError(400, "invalid_request", "refresh_token is missing")
        now = self.now()
        record = self.refresh.get(token)
        grant = self.grants.get(record.grant_id) if record else None
        if record is None or grant is None or grant.flavor != flavor:
            raise _OAuthError(400, "invalid_grant", "refresh token is unknown")
        if grant.client_id != client_id:
            raise _OAuthError(400, "invalid_grant", "refresh token was issued to another client")
        if grant.revoked:
            raise _OAuthError(400, "invalid_grant", "refresh token was revoked")
        if not record.active:
            # RFC 9700 §4.14.2: a rotated-out refresh token came back - revoke the whole grant.
            grant.revoked = True
            self.stats.counts["revoked_grants"] += 1
            LOG.warning("refresh token reuse detected: grant revoked")
            raise _OAuthError(400, "invalid_grant", "refresh token was already used; the grant is revoked")
        if grant.superseded:
            raise _OAuthError(
                400,
                "refresh_token_authentication_error",
                "refresh token was invalidated by a newer login for this app",
            )
        if now >= record.expires_at:
            if flavor == "schwab":
                raise _OAuthError(
                    400, "refresh_token_authentication_error", "Failed refresh token authentication"
                )
            raise _OAuthError(400, "invalid_grant", "refresh token has expired")
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

    def _new_refresh(self, grant: _Grant, expires_at: float) -> str:
        token = _random_token(grant.flavor, "")
        self.refresh[token] = _Refresh(grant.id, expires_at)
        return token

    def _issue(self, grant: _Grant, *, refresh_token: str | None) -> dict[str, Any]:
        now = self.now()
        access = _random_token(grant.flavor, "I0.")
        self.access[access] = _Access(grant.id, now + self.access_ttl)
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

    def _id_token(self, grant: _Grant, now: float) -> str:
        header = _b64url_json({"alg": "HS256", "typ": "JWT"})
        payload = _b64url_json(
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

    def check_access(self, token: str) -> _Grant | None:
        with self.lock:
            record = self.access.get(token)
            if record is None or self.now() >= record.expires_at:
                return None
            grant = self.grants.get(record.grant_id)
            if grant is None or grant.revoked or grant.superseded:
                return None
            return grant


def _check_redirect_uri(flavor: str, uri: str) -> None:
    if not uri:
        raise _PageError("The request has no redirect_uri.")
    parts = urlsplit(uri)
    hosts = ("127.0.0.1",) if flavor == "schwab" else ("127.0.0.1", "localhost")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _PageError(f"redirect_uri has an invalid port: {uri!r}") from None
    if parts.scheme != "https" or parts.hostname not in hosts:
        raise _PageError(
            f"redirect_uri must be an https URL on {' or '.join(hosts)} "
            f"(like {SANDBOX_CALLBACK_URL}), got {uri!r}."
        )
    if parts.fragment or "#" in uri:
        raise _PageError("redirect_uri must not contain a #fragment.")
    if parts.username or parts.password:
        raise _PageError("redirect_uri must not contain a user name or password.")


def _add_query(uri: str, pairs: list[tuple[str, str]]) -> str:
    parts = urlsplit(uri)
    extra = urlencode(pairs, quote_via=quote, safe="")
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _basic_client(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("basic "):
        raise _OAuthError(401, "invalid_client", "HTTP Basic client authentication is required")
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise _OAuthError(401, "invalid_client", "malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _OAuthError(401, "invalid_client", "malformed Basic credentials")
    for cid, sec in ((client_id, secret), (unquote(client_id), unquote(secret))):
        if hmac.compare_digest(cid.encode(), SANDBOX_SCHWAB_CLIENT_ID.encode()) and (
            hmac.compare_digest(sec.encode(), SANDBOX_SCHWAB_CLIENT_SECRET.encode())
        ):
            return SANDBOX_SCHWAB_CLIENT_ID
    raise _OAuthError(401, "invalid_client", "client authentication failed")


def _tda_client(client_id: str | None) -> str:
    if client_id in (TDA_FULL_CLIENT_ID, SANDBOX_TDA_CLIENT_ID):
        return TDA_FULL_CLIENT_ID
    if not client_id:
        raise _OAuthError(401, "invalid_client", "client_id is missing")
    raise _OAuthError(401, "invalid_client", "unknown client_id")


# --------------------------------------------------------------------------- HTTP


class _RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _single_values(raw: dict[str, list[str]]) -> dict[str, str]:
    """RFC 6749 §3.1: a parameter must not be sent twice."""
    repeated = sorted(name for name, values in raw.items() if len(values) > 1)
    if repeated:
        raise _RequestError(400, f"parameter sent more than once: {', '.join(repeated)}")
    return {name: values[0] for name, values in raw.items()}


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer doing the TLS handshake in the request thread, not the accept loop."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = sys.platform != "win32"
    #: socketserver's default backlog of 5 drops the 6th simultaneous connect (1 s SYN retry).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer, context: ssl.SSLContext) -> None:
        self.sandbox = sandbox
        self.ssl_context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), which can hang on a reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        sock = cast(socket.socket, request)
        sock.settimeout(_HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(sock, server_side=True)
        except (OSError, ValueError) as exc:
            LOG.debug("TLS handshake failed: %s", type(exc).__name__)
            return
        with self.connections_lock:
            self.connections.add(tls)
        try:
            _Handler(tls, client_address, self)
        finally:
            with self.connections_lock:
                self.connections.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)):
            LOG.debug("connection ended: %s", type(exc).__name__)
        else:
            LOG.exception("sandbox request failed")

    def close_connections(self) -> None:
        with self.connections_lock:
            open_ = list(self.connections)
        for conn in open_:
            with contextlib.suppress(OSError):
                # Plain socket shutdown: wakes a thread blocked reading, leaves the TLS object be.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tdgui-sandbox/1"
    sys_version = ""
    timeout = 60
    #: Headers and body go out as separate writes: without this each answer waits ~40 ms.
    disable_nagle_algorithm = True

    @property
    def sandbox(self) -> SandboxServer:
        return cast(_HTTPServer, self.server).sandbox

    def log_message(self, format: str, *args: Any) -> None:
        """The stdlib logs the request line (with its query): never do that."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            self.sandbox._route(self, method)
        except _RequestError as exc:
            self.send_text(exc.status, str(exc))

    # ----------------------------------------------------------------- helpers

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise _RequestError(411, "send the body with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            self.close_connection = True
            raise _RequestError(400, "bad Content-Length") from None
        if length < 0 or length > _MAX_BODY:
            self.close_connection = True
            raise _RequestError(413, "request body too large")
        return self.rfile.read(length) if length else b""

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_text(self, status: int, text: str) -> None:
        self.send(status, (text + "\n").encode(), "text/plain; charset=utf-8")

    def send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(data).encode(), "application/json", headers)

    def send_html(self, status: int, body: bytes) -> None:
        self.send(status, body, "text/html; charset=utf-8", {"X-Frame-Options": "DENY"})

    def send_redirect(self, location: str) -> None:
        self.send(302, b"", "text/plain; charset=utf-8", {"Location": location})


# --------------------------------------------------------------------------- server


class SandboxServer:
    """The local HTTPS emulator of both brokers; start() serves it in a daemon thread."""

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        flavor: str | None = None,
        access_ttl: int = ACCESS_LIFETIME,
        refresh_ttl: int | None = None,
        rotate: bool = False,
        code_ttl: float = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if flavor is not None and flavor not in SANDBOX_FLAVORS:
            raise UsageError(f"sandbox flavor must be one of {', '.join(SANDBOX_FLAVORS)}")
        if access_ttl <= 0:
            raise UsageError("the access token lifetime must be a positive number of seconds")
        if refresh_ttl is not None and refresh_ttl <= 0:
            raise UsageError("the refresh token lifetime must be a positive number of seconds")
        if not 0 <= port <= 65535:
            raise UsageError(f"port must be between 0 and 65535, got {port}")
        self.host = host
        self.flavor = flavor
        self._port = port
        self._certs = ensure_sandbox_certs(state_dir)
        self._state = _State(
            access_ttl=access_ttl,
            refresh_ttl=refresh_ttl,
            rotate=rotate,
            code_ttl=code_ttl,
            clock=clock,
        )
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> SandboxServer:
        """Bind, listen and serve in a daemon thread; returns once connections are accepted."""
        if self._httpd is not None:
            return self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self._certs.cert_file), str(self._certs.key_file))
        context.set_alpn_protocols(["http/1.1"])
        try:
            httpd = _HTTPServer((self.host, self._port), self, context)
        except OSError as exc:
            if exc.errno in _ADDR_IN_USE or (exc.errno in _ADDR_DENIED and self._port >= 1024):
                raise UsageError(
                    f"port {self._port} is in use (is a sandbox already running?); "
                    "choose another one with --port"
                ) from None
            raise UsageError(f"cannot listen on {self.host}:{self._port}: {exc}") from None
        self._port = int(httpd.server_address[1])
        self._state.issuer = self.base_url
        self._stopping.clear()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"tdgui-sandbox-{self._port}",
            daemon=True,
        )
        self._thread.start()
        LOG.info("sandbox listening on %s (flavor %s)", self.base_url, self.flavor or "both")
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections; does not wait for hanging requests."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        closer = threading.Thread(target=httpd.shutdown, name="tdgui-sandbox-stop", daemon=True)
        closer.start()
        # Wake the accept loop's select() now instead of after its poll interval.
        with contextlib.suppress(OSError):
            wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
            wake = wildcard.get(self.host, self.host)
            socket.create_connection((wake, self._port), timeout=0.2).close()
        closer.join()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None
        LOG.info("sandbox on port %d stopped", self._port)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        if self._port == 0:
            raise RuntimeError("the sandbox has no port yet: call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self._port}"

    @property
    def certs(self) -> SandboxCerts:
        return self._certs

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def provider(self, flavor: str) -> Provider:
        """The `sandbox` Provider profile for this server (pins its CA)."""
        return sandbox(flavor, self.base_url, str(self._certs.ca_file))

    def authorize_url(
        self,
        flavor: str,
        *,
        redirect_uri: str = SANDBOX_CALLBACK_URL,
        state: str | None = None,
        code_challenge: str | None = None,
        client_id: str | None = None,
    ) -> str:
        """An authorization URL for the demo app of `flavor` (a convenience for tests)."""
        if client_id is None:
            client_id = SANDBOX_SCHWAB_CLIENT_ID if flavor == "schwab" else TDA_FULL_CLIENT_ID
        path = SCHWAB_AUTHORIZE_PATH if flavor == "schwab" else TDA_AUTHORIZE_PATH
        params = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
        ]
        if state is not None:
            params.append(("state", state))
        if code_challenge is not None:
            params += [("code_challenge", code_challenge), ("code_challenge_method", "S256")]
        return f"{self.base_url}{path}?{urlencode(params, quote_via=quote, safe='')}"

    # ----------------------------------------------------------------- test controls

    def set_fault(
        self,
        kind: str,
        count: int = 1,
        retry_after: float | None = None,
        hang_seconds: float = 30,
    ) -> None:
        """Make the next `count` token requests fail as `kind` (queued after earlier faults)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if hang_seconds < 0:
            raise ValueError("hang_seconds must not be negative")
        with self._state.lock:
            self._state.faults.append(_Fault(kind, count, retry_after, hang_seconds))

    def clear_faults(self) -> None:
        with self._state.lock:
            self._state.faults.clear()

    def stats(self) -> dict[str, int]:
        """Counters: token_requests, code_exchanges, refresh_requests, revoked_grants, ..."""
        with self._state.lock:
            return dict(self._state.stats.counts)

    def reset_stats(self) -> None:
        with self._state.lock:
            self._state.stats = _Stats()

    @property
    def requests(self) -> list[tuple[str, str, str | None]]:
        """(method, path, grant_type) of every request so far (a copy)."""
        with self._state.lock:
            return list(self._state.stats.requests)

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox's notion of time forward (codes and refresh tokens expire)."""
        with self._state.lock:
            self._state.clock_offset += seconds

    # ----------------------------------------------------------------- routing

    def _record(self, method: str, path: str, grant_type: str | None) -> None:
        with self._state.lock:
            self._state.stats.requests.append((method, path, grant_type))
        if grant_type is None:
            LOG.info("%s %s", method, path)
        else:
            LOG.info("%s %s grant_type=%s", method, path, grant_type)

    def _flavor_served(self, flavor: str) -> bool:
        return self.flavor is None or self.flavor == flavor

    def _route(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        safe_path = path if len(path) <= 200 else path[:200] + "..."
        token_flavor = {SCHWAB_TOKEN_PATH: "schwab", TDA_TOKEN_PATH: "tdameritrade"}.get(path)
        auth_flavor = {SCHWAB_AUTHORIZE_PATH: "schwab", TDA_AUTHORIZE_PATH: "tdameritrade"}.get(path)
        flavor = token_flavor or auth_flavor
        if flavor is not None and not self._flavor_served(flavor):
            self._record(method, safe_path, None)
            if method == "POST":
                handler.read_body()
            handler.send_text(
                404,
                f"This sandbox serves only the {self.flavor} flavor (started with --flavor "
                f"{self.flavor}); {path} belongs to {flavor}.",
            )
            return
        if token_flavor is not None:
            if method != "POST":
                self._record(method, safe_path, None)
                handler.send_json(
                    405,
                    {"error": "invalid_request", "error_description": "use POST"},
                    {"Allow": "POST"},
                )
                return
            self._token_endpoint(handler, token_flavor, safe_path)
            return
        body = handler.read_body() if method == "POST" else b""
        self._record(method, safe_path, None)
        if auth_flavor is not None:
            self._authorize_endpoint(handler, auth_flavor, method, parts.query, body)
        elif path == USERINFO_PATH or path in ACCOUNT_NUMBERS_PATHS:
            self._api_endpoint(handler, path)
        elif path.startswith("/_sandbox/"):
            self._control_endpoint(handler, method, path, body)
        elif method != "GET":
            handler.send_text(405, "method not allowed")
        elif path == "/":
            handler.send_html(200, self._index())
        elif path == "/_test/redirect-away":
            handler.send_redirect("https://example.invalid/phish")
        elif path == "/_test/popup":
            handler.send_html(200, pages.popup_page("https://example.invalid/popup"))
        else:
            handler.send_text(404, f"not found: {safe_path}")

    def _index(self) -> bytes:
        links = [("Statistics (JSON)", "/_sandbox/stats")]
        if self._flavor_served("tdameritrade"):
            links.insert(0, ("Log in (TD Ameritrade flavor)", self.authorize_url("tdameritrade")))
        if self._flavor_served("schwab"):
            links.insert(0, ("Log in (Schwab flavor)", self.authorize_url("schwab")))
        return pages.index_page(links)

    def _authorize_endpoint(
        self, handler: _Handler, flavor: str, method: str, query: str, body: bytes
    ) -> None:
        path = SCHWAB_AUTHORIZE_PATH if flavor == "schwab" else TDA_AUTHORIZE_PATH
        state = self._state
        try:
            if method == "GET":
                params = _single_values(parse_qs(query, keep_blank_values=True))
                request = state.check_authorize(flavor, params)
                handler.send_html(200, pages.login_page(flavor, path, request.hidden_fields(), error=None))
                return
            if method != "POST":
                handler.send_text(405, "method not allowed")
                return
            form = _single_values(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
            if "txn" in form:
                location = state.finish_consent(form["txn"], form.get("action", ""))
                handler.send_redirect(location)
                return
            request = state.check_authorize(flavor, form)
            username = form.get("username", "")
            good = hmac.compare_digest(username.encode(), DEMO_USER.encode()) and hmac.compare_digest(
                form.get("password", "").encode(), DEMO_PASSWORD.encode()
            )
            if not good:
                page = pages.login_page(
                    flavor, path, request.hidden_fields(), error=WRONG_LOGIN, username=username
                )
                handler.send_html(200, page)
                return
            txn = state.start_consent(request, username)
            handler.send_html(
                200,
                pages.consent_page(flavor, path, txn, request.client_id, request.redirect_uri),
            )
        except (_PageError, _RequestError) as exc:
            handler.send_html(400, pages.error_page(str(exc)))

    def _token_endpoint(self, handler: _Handler, flavor: str, safe_path: str) -> None:
        state = self._state
        try:
            body = handler.read_body()
        except _RequestError as exc:
            self._record("POST", safe_path, None)
            state.count("token_requests")
            handler.send_json(exc.status, {"error": "invalid_request", "error_description": str(exc)})
            return
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        raw = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        grant_values = raw.get("grant_type") or [""]
        grant_type = (
            grant_values[0]
            if grant_values[0] in _KNOWN_GRANT_TYPES
            else ("other" if grant_values[0] else None)
        )
        self._record("POST", safe_path, grant_type)
        state.count("token_requests")
        if grant_type == "authorization_code":
            state.count("code_exchanges")
        elif grant_type == "refresh_token":
            state.count("refresh_requests")
        fault = state.take_fault()
        if fault is not None:
            self._serve_fault(handler, fault)
            return
        try:
            if content_type != "application/x-www-form-urlencoded":
                raise _OAuthError(
                    400, "invalid_request", "the body must be application/x-www-form-urlencoded"
                )
            try:
                form = _single_values(raw)
            except _RequestError as exc:
                raise _OAuthError(400, "invalid_request", str(exc)) from None
            answer = state.token(flavor, form, handler.headers.get("Authorization"))
        except _OAuthError as exc:
            headers: dict[str, str] = {}
            if exc.status == 401 and flavor == "schwab":
                headers["WWW-Authenticate"] = 'Basic realm="sandbox"'
            handler.send_json(exc.status, {"error": exc.error, "error_description": exc.description}, headers)
            return
        handler.send_json(200, answer)

    def _serve_fault(self, handler: _Handler, fault: _Fault) -> None:
        LOG.info("serving fault %s", fault.kind)
        kind = fault.kind
        if kind == "hang":
            self._stopping.wait(fault.hang_seconds)
            handler.close_connection = True
            return
        if kind in ("500", "503", "429"):
            headers: dict[str, str] = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            text = {"500": "Internal Server Error", "503": "Service Unavailable"}.get(
                kind, "Too Many Requests"
            )
            handler.send(int(kind), f"{text} (sandbox fault)\n".encode(), "text/plain", headers)
        elif kind == "malformed":
            handler.send(200, b'{"access_token": ', "application/json")
        elif kind == "no_access_token":
            handler.send_json(200, {"token_type": "Bearer", "expires_in": 1800, "scope": "api"})
        elif kind == "html":
            handler.send_html(
                200,
                b"<!doctype html><html><body><h1>Maintenance</h1>"
                b"<p>The service is down for maintenance (sandbox fault).</p></body></html>",
            )
        else:
            status = 401 if kind == "invalid_client" else 400
            handler.send_json(status, {"error": kind, "error_description": f"{kind} (sandbox fault)"})

    def _api_endpoint(self, handler: _Handler, path: str) -> None:
        self._state.count("api_requests")
        auth = handler.headers.get("Authorization") or ""
        grant = None
        if auth.lower().startswith("bearer "):
            grant = self._state.check_access(auth[7:].strip())
        if grant is None:
            handler.send_json(
                401,
                {"error": "invalid_token", "error_description": "access token missing, invalid or expired"},
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            return
        if path == USERINFO_PATH:
            handler.send_json(200, {"sub": grant.user, "flavor": grant.flavor, "client_id": grant.client_id})
        else:
            digest = hashlib.sha256(grant.user.encode()).hexdigest().upper()
            handler.send_json(200, [{"accountNumber": "12345678", "hashValue": digest[:32]}])

    def _control_endpoint(self, handler: _Handler, method: str, path: str, body: bytes) -> None:
        if handler.client_address[0] not in _LOCAL_ADDRESSES:
            handler.send_text(403, "sandbox controls answer only 127.0.0.1")
            return
        if path == "/_sandbox/stats" and method == "GET":
            handler.send_json(200, self.stats())
            return
        if method != "POST":
            handler.send_text(405, "use POST")
            return
        try:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            if path == "/_sandbox/fault":
                self.set_fault(
                    str(data.get("kind")),
                    int(data.get("count", 1)),
                    None if data.get("retry_after") is None else float(data["retry_after"]),
                    float(data.get("hang_seconds", 30)),
                )
            elif path == "/_sandbox/clear-faults":
                self.clear_faults()
            elif path == "/_sandbox/reset-stats":
                self.reset_stats()
            elif path == "/_sandbox/advance-clock":
                self.advance_clock(float(data["seconds"]))
            else:
                handler.send_text(404, f"no such control: {path}")
                return
        except (ValueError, TypeError, KeyError) as exc:
            handler.send_json(400, {"error": "invalid_request", "error_description": str(exc)})
            return
        handler.send_json(200, {"ok": True})


# --------------------------------------------------------------------------- CLI entry


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: list[tuple[int, Any]] = []
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
            signum = getattr(signal, name, None)
            if signum is not None:
                previous.append((signum, signal.signal(signum, handler)))
    try:
        yield
    finally:
        for signum, old in previous:
            signal.signal(signum, old)


def serve_forever(
    state_dir: Path,
    port: int = SANDBOX_DEFAULT_PORT,
    flavor: str | None = None,
    access_ttl: int = ACCESS_LIFETIME,
    refresh_ttl: int | None = None,
    rotate: bool = False,
) -> None:
    """Run the sandbox until SIGINT/SIGTERM; prints its base URL as the one line on stdout."""
    server = SandboxServer(
        state_dir,
        port=port,
        flavor=flavor,
        access_ttl=access_ttl,
        refresh_ttl=refresh_ttl,
        rotate=rotate,
    )
    server.start()
    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            sys.stdout.write(server.base_url + "\n")
            sys.stdout.flush()
            while not stop.wait(0.25):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()

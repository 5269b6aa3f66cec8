"""A faithful Schwab login emulator: the real host names, a script-built login app, 2FA, terms, accounts.

The plain sandbox (tdgui.sandbox.authserver) is one host with one HTML form. The real Schwab
login (docs/providers.md) is a chain: the authorize URL on api.schwabapi.com hands over to a
single-page login app on a schwab.com host, which loads scripts and frames of other hosts,
asks for a security code on a device it does not know, then terms and account selection,
and only then redirects to the callback with `code=…%40&session=…`. This server plays every
host of that chain on one 127.0.0.1 port, told apart by the Host header; a test maps the real
names to it (Chromium's --host-resolver-rules, see `resolver_rules`) so the shipped `schwab`
profile runs unchanged. One leaf of the local CA covers all names (tdgui.core.localtls).
It records what a test needs to see: the steps shown, the third host's loads and the user
agents each request carried.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import secrets
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

from tdgui.core.localtls import LocalTLS, issue_named_leaf
from tdgui.sandbox import schwab_real_pages as pages
from tdgui.sandbox.transport import Handler, HTTPServer, RequestError, single_values

log = logging.getLogger(__name__)

AUTH_HOST = "api.schwabapi.com"
#: The login app's host: a schwab.com name other than the authorize host (docs/providers.md).
LOGIN_HOST = "sws-gateway.schwab.com"
#: Stands in for the bot-detection/analytics vendors the real page loads from their own hosts.
THIRD_HOST = "sdk.bot-detect.example"
#: A look-alike host off Schwab's domains, where `offsite` mode sends the top page.
OFFSITE_HOST = "schwab-login.example"
HOSTS = (AUTH_HOST, LOGIN_HOST, THIRD_HOST, OFFSITE_HOST)

AUTHORIZE_PATH = "/v1/oauth/authorize"
TOKEN_PATH = "/v1/oauth/token"
FINISH_PATH = "/v1/oauth/finish"
DEVICE_COOKIE = "emu_device"
ACCESS_TTL = 1800


@dataclass
class Txn:
    """One authorization in progress."""

    client_id: str
    redirect_uri: str
    state: str | None
    step: str = "login"
    #: "allow" or "deny" once the user finished
    decision: str | None = None


@dataclass
class EmulatorLog:
    """What the emulator saw (tests read it)."""

    #: routes the login app rendered, in order ("login", "2fa", "terms", "accounts")
    views: list[str] = field(default_factory=list)
    #: (host, path, User-Agent header) of every request
    user_agents: list[tuple[str, str, str]] = field(default_factory=list)
    #: what page scripts reported: {"frame": "top"|"third", "ua": ..., "webdriver": ...}
    reports: list[dict[str, str]] = field(default_factory=list)
    third_script_loads: int = 0
    third_frame_loads: int = 0
    offsite_requests: int = 0
    codes_issued: int = 0
    code_exchanges: int = 0


class SchwabEmulator:
    """The emulator's state and routes; `start()` serves it over HTTPS on 127.0.0.1."""

    def __init__(
        self,
        tls_dir: Path,
        *,
        client_id: str,
        client_secret: str,
        redirect_uris: tuple[str, ...],
        autopilot: bool = False,
        accept_terms: bool = True,
        offsite_after_login: bool = False,
        probe_url: str | None = None,
    ) -> None:
        self.tls_dir = tls_dir
        self.client_id, self._client_secret = client_id, client_secret
        self.redirect_uris = redirect_uris
        self.autopilot, self.accept_terms = autopilot, accept_terms
        self.offsite_after_login = offsite_after_login
        #: the login page also loads this URL as an image (a test of the view's request guard)
        self.probe_url = probe_url
        self.log = EmulatorLog()
        self._lock = threading.Lock()
        self._txns: dict[str, Txn] = {}
        self._codes: dict[str, Txn] = {}
        self._devices: set[str] = set()
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.tls: LocalTLS | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> SchwabEmulator:
        self.tls = issue_named_leaf(self.tls_dir, "schwab_emulator", HOSTS)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.tls.cert_file), str(self.tls.key_file))
        self._server = HTTPServer(("127.0.0.1", 0), self, context)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="schwab-emulator", daemon=True
        )
        self._thread.start()
        log.info("Schwab emulator on 127.0.0.1:%d for %s", self.port, ", ".join(HOSTS))
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None

    def resolver_rules(self) -> str:
        """Chromium's --host-resolver-rules sending every emulated name to this port (tests only)."""
        return ", ".join(f"MAP {host} 127.0.0.1:{self.port}" for host in HOSTS)

    def url(self, host: str, path: str) -> str:
        """The real URL of `path` on `host` (port 443, as the browser sees it)."""
        return f"https://{host}{path}"

    # -- routing ----------------------------------------------------------------------------
    def route(self, handler: Handler, method: str) -> None:
        host = (handler.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        parts = urlsplit(handler.path)
        with self._lock:
            self.log.user_agents.append((host, parts.path, handler.headers.get("User-Agent") or ""))
        body = handler.read_body() if method == "POST" else b""
        if host == AUTH_HOST:
            self._auth_host(handler, method, parts.path, parts.query, body)
        elif host == LOGIN_HOST:
            self._login_host(handler, method, parts.path, parts.query, body)
        elif host == THIRD_HOST:
            self._third_host(handler, parts.path, parts.query)
        elif host == OFFSITE_HOST:
            with self._lock:
                self.log.offsite_requests += 1
            handler.send_html(200, pages.error_page("You left Schwab: this page is not Schwab's."))
        else:
            # RFC 9110 §15.5.20: this server does not serve that name.
            handler.send_text(421, f"not a host of this emulator: {host or '(none)'}")

    # -- api.schwabapi.com ------------------------------------------------------------------
    def _auth_host(self, handler: Handler, method: str, path: str, query: str, body: bytes) -> None:
        if path == AUTHORIZE_PATH and method == "GET":
            params = single_values(parse_qs(query, keep_blank_values=True))
            problem = self._check_authorize(params)
            if problem:
                # Like the real server for a bad client or redirect URI: a page, not the callback
                # (RFC 6749 §4.1.2.1 forbids redirecting to an unverified redirect URI).
                handler.send_html(400, pages.error_page(problem))
                return
            txn_id = secrets.token_urlsafe(12)
            with self._lock:
                self._txns[txn_id] = Txn(params["client_id"], params["redirect_uri"], params.get("state"))
            handler.send_redirect(f"https://{LOGIN_HOST}/ui/host/#/login?txn={txn_id}")
        elif path == FINISH_PATH and method == "GET":
            txn_id = single_values(parse_qs(query)).get("txn", "")
            with self._lock:
                txn = self._txns.pop(txn_id, None)
            if txn is None or txn.decision is None:
                handler.send_html(400, pages.error_page("This login has expired. Start again."))
                return
            handler.send_redirect(self._callback(txn))
        elif path == TOKEN_PATH and method == "POST":
            self._token(handler, body)
        else:
            handler.send_html(404, pages.error_page(f"Not found: {path[:100]}"))

    def _check_authorize(self, params: dict[str, str]) -> str | None:
        if params.get("client_id") != self.client_id:
            return "The app key is not valid (unknown client_id)."
        if params.get("redirect_uri") not in self.redirect_uris:
            return "The callback URL does not match the app's registered callback URL."
        if params.get("response_type") != "code":
            return "Unsupported response_type."
        return None

    def _callback(self, txn: Txn) -> str:
        query: list[tuple[str, str]] = []
        if txn.decision == "allow":
            # Schwab's code ends in "@", sent percent-encoded (%40); a session id comes with it.
            code = "C0." + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=") + "@"
            with self._lock:
                self._codes[code] = txn
                self.log.codes_issued += 1
            query += [("code", code), ("session", str(uuid.uuid4()))]
        else:
            query.append(("error", "access_denied"))
        if txn.state is not None:
            query.append(("state", txn.state))
        parts = urlsplit(txn.redirect_uri)
        return urlunsplit(
            (parts.scheme, parts.netloc, parts.path or "/", urlencode(query, quote_via=quote), "")
        )

    def _token(self, handler: Handler, body: bytes) -> None:
        if not self._client_ok(handler.headers.get("Authorization") or ""):
            handler.send_json(401, {"error": "invalid_client"})
            return
        form = single_values(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") == "authorization_code":
            with self._lock:
                txn = self._codes.pop(form.get("code", ""), None)
                self.log.code_exchanges += 1
            if txn is None or form.get("redirect_uri") != txn.redirect_uri:
                handler.send_json(400, {"error": "invalid_grant"})
                return
        elif form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            handler.send_json(400, {"error": "unsupported_grant_type"})
            return
        handler.send_json(
            200,
            {
                "expires_in": ACCESS_TTL,
                "token_type": "Bearer",
                "scope": "api",
                "refresh_token": form.get("refresh_token") or secrets.token_urlsafe(32) + "@",
                "access_token": "I0." + secrets.token_urlsafe(32) + "@",
            },
        )

    def _client_ok(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return hmac.compare_digest(user, self.client_id) and hmac.compare_digest(
            password, self._client_secret
        )

    # -- sws-gateway.schwab.com -------------------------------------------------------------
    def _login_host(self, handler: Handler, method: str, path: str, query: str, body: bytes) -> None:
        if path == "/ui/host/" and method == "GET":
            page = pages.shell_page(
                third_host=THIRD_HOST,
                autopilot=self.autopilot,
                accept_terms=self.accept_terms,
                probe_url=self.probe_url,
            )
            handler.send_html(200, page)
        elif path == "/ui/app.js":
            handler.send(200, pages.APP_JS.encode(), "text/javascript; charset=utf-8")
        elif path == "/api/view":
            route = single_values(parse_qs(query)).get("route", "")
            with self._lock:
                self.log.views.append(route[:20])
            handler.send_json(200, {})
        elif path == "/api/env" and method == "POST":
            self._report(body, "top")
            handler.send_json(200, {})
        elif path.startswith("/api/") and method == "POST":
            self._step(handler, path.removeprefix("/api/"), body)
        else:
            handler.send_html(404, pages.error_page(f"Not found: {path[:100]}"))

    def _step(self, handler: Handler, step: str, body: bytes) -> None:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise RequestError(400, "not JSON") from None
        with self._lock:
            txn = self._txns.get(str(data.get("txn", "")))
        if txn is None:
            handler.send_json(200, {"error": "Your session has expired. Start again."})
            return
        cookies = SimpleCookie(handler.headers.get("Cookie") or "")
        device = cookies[DEVICE_COOKIE].value if DEVICE_COOKIE in cookies else ""
        headers: dict[str, str] = {}
        answer: dict[str, str]
        if step == "login" and txn.step == "login":
            if data.get("username") != pages.DEMO_USER or data.get("password") != pages.DEMO_PASSWORD:
                handler.send_json(200, {"error": "The login ID or password is not correct."})
                return
            if self.offsite_after_login:
                answer = {"url": f"https://{OFFSITE_HOST}/verify"}
            else:
                with self._lock:
                    known = device in self._devices
                txn.step = "terms" if known else "2fa"
                answer = {"next": txn.step}
        elif step == "2fa" and txn.step == "2fa":
            if data.get("code") != pages.DEMO_SECURITY_CODE:
                handler.send_json(200, {"error": "That code is not correct."})
                return
            device = secrets.token_urlsafe(16)
            with self._lock:
                self._devices.add(device)
            # The mark of a known device (the real one's name and lifetime are unverified).
            headers["Set-Cookie"] = (
                f"{DEVICE_COOKIE}={device}; Path=/; Max-Age=31536000; Secure; HttpOnly; SameSite=Lax"
            )
            txn.step = "terms"
            answer = {"next": "terms"}
        elif step == "terms" and txn.step == "terms":
            if data.get("accept") is True:
                txn.step = "accounts"
                answer = {"next": "accounts"}
            else:
                txn.decision = "deny"
                answer = {"url": f"https://{AUTH_HOST}{FINISH_PATH}?txn={data['txn']}"}
        elif step == "accounts" and txn.step == "accounts":
            txn.decision = "allow"
            answer = {"url": f"https://{AUTH_HOST}{FINISH_PATH}?txn={data['txn']}"}
        else:
            answer = {"error": f"unexpected step {step[:20]!r}"}
        handler.send(200, json.dumps(answer).encode(), "application/json", headers)

    # -- the third host ---------------------------------------------------------------------
    def _third_host(self, handler: Handler, path: str, query: str) -> None:
        if path == "/sdk.js":
            with self._lock:
                self.log.third_script_loads += 1
            handler.send(200, pages.sdk_js(THIRD_HOST), "text/javascript; charset=utf-8")
        elif path == "/frame.html":
            with self._lock:
                self.log.third_frame_loads += 1
            # No X-Frame-Options: this page is meant to be framed by the login app.
            handler.send(200, pages.FRAME_HTML, "text/html; charset=utf-8")
        elif path == "/beacon":
            params = single_values(parse_qs(query))
            self._report(json.dumps({"frame": "third", **params}).encode(), "third")
            handler.send(200, b"", "image/gif")
        else:
            handler.send_text(404, "not found")

    def _report(self, body: bytes, frame: str) -> None:
        try:
            data: Any = json.loads(body or b"{}")
        except ValueError:
            return
        if isinstance(data, dict):
            with self._lock:
                self.log.reports.append({"frame": frame, **{k: str(v)[:300] for k, v in data.items()}})

"""The sandbox's OAuth endpoints: authorize, login and consent pages, token and API, per flavor.

Mirrors the real brokers' paths and quirks (docs/design.md §2): Schwab authenticates the
client with HTTP Basic and a secret, TD Ameritrade is a public client with a suffixed id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from tdgui.core.providers import (
    SANDBOX_CALLBACK_URL,
    SANDBOX_SCHWAB_CLIENT_ID,
    TDA_CLIENT_ID_SUFFIX,
    schwab,
    tdameritrade,
)
from tdgui.sandbox import pages
from tdgui.sandbox.clients import TDA_FULL_CLIENT_ID
from tdgui.sandbox.controls import CONTROL_PREFIX, control_endpoint
from tdgui.sandbox.errors import OAuthError, PageError
from tdgui.sandbox.faults import serve_fault, serve_page_fault
from tdgui.sandbox.model import (
    DEMO_PASSWORD,
    DEMO_USER,
    PKCE_RE,
    AuthRequest,
    State,
)
from tdgui.sandbox.transport import Handler, RequestError, single_values

LOG = logging.getLogger(__name__)

#: The real brokers' paths, which the sandbox mirrors.
SCHWAB_AUTHORIZE_PATH = urlsplit(schwab().authorize_url).path
SCHWAB_TOKEN_PATH = urlsplit(schwab().token_url).path
TDA_AUTHORIZE_PATH = urlsplit(tdameritrade().authorize_url).path
TDA_TOKEN_PATH = urlsplit(tdameritrade().token_url).path
USERINFO_PATH = "/v1/userinfo"
ACCOUNT_NUMBERS_PATHS = ("/v1/accounts/accountNumbers", "/trader/v1/accounts/accountNumbers")

WRONG_LOGIN = "Wrong user name or password"
_KNOWN_GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", "password")


class AuthServer:
    """Routes one sandbox's requests to its endpoints; the state it answers from is `state`."""

    def __init__(
        self, state: State, *, flavor: str | None, control_secret: str, stopping: threading.Event
    ) -> None:
        self.state = state
        self.flavor = flavor
        self.control_secret = control_secret
        #: Set while the server stops: a hanging fault ends then.
        self.stopping = stopping
        #: Set by the runner once the port is known.
        self.base_url = ""

    def _flavor_served(self, flavor: str) -> bool:
        return self.flavor is None or self.flavor == flavor

    def route(self, handler: Handler, method: str) -> None:
        """Answer one request (called by the transport's handler thread)."""
        parts = urlsplit(handler.path)
        path = parts.path
        safe_path = path if len(path) <= 200 else path[:200] + "..."
        token_flavor = {SCHWAB_TOKEN_PATH: "schwab", TDA_TOKEN_PATH: "tdameritrade"}.get(path)
        auth_flavor = {SCHWAB_AUTHORIZE_PATH: "schwab", TDA_AUTHORIZE_PATH: "tdameritrade"}.get(path)
        flavor = token_flavor or auth_flavor
        if flavor is not None and not self._flavor_served(flavor):
            self.state.record(method, safe_path, None)
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
                self.state.record(method, safe_path, None)
                handler.send_json(
                    405,
                    {"error": "invalid_request", "error_description": "use POST"},
                    {"Allow": "POST"},
                )
                return
            self._token_endpoint(handler, token_flavor, safe_path)
            return
        body = handler.read_body() if method == "POST" else b""
        self.state.record(method, safe_path, None)
        if auth_flavor is not None:
            self._authorize_endpoint(handler, auth_flavor, method, parts.query, body)
        elif path == USERINFO_PATH or path in ACCOUNT_NUMBERS_PATHS:
            self._api_endpoint(handler, path)
        elif path.startswith(CONTROL_PREFIX):
            control_endpoint(self.state, self.control_secret, handler, method, safe_path, body)
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
        # No link to /_sandbox/stats: the control API needs the run's secret, a browser has none.
        links: list[tuple[str, str]] = []
        if self._flavor_served("tdameritrade"):
            links.insert(0, ("Log in (TD Ameritrade flavor)", self.authorize_url("tdameritrade")))
        if self._flavor_served("schwab"):
            links.insert(0, ("Log in (Schwab flavor)", self.authorize_url("schwab")))
        return pages.index_page(links)

    def _authorize_endpoint(
        self, handler: Handler, flavor: str, method: str, query: str, body: bytes
    ) -> None:
        path = SCHWAB_AUTHORIZE_PATH if flavor == "schwab" else TDA_AUTHORIZE_PATH
        state = self.state
        try:
            if method == "GET":
                page_fault = state.faults.take_page()
                if page_fault is not None:
                    state.count("faults_served")
                    serve_page_fault(handler, page_fault)
                    return
                params = single_values(parse_qs(query, keep_blank_values=True))
                request = check_authorize(flavor, params)
                handler.send_html(200, pages.login_page(flavor, path, request.hidden_fields(), error=None))
                return
            if method != "POST":
                handler.send_text(405, "method not allowed")
                return
            form = single_values(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
            if "txn" in form:
                location = state.finish_consent(form["txn"], form.get("action", ""))
                handler.send_redirect(location)
                return
            request = check_authorize(flavor, form)
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
        except (PageError, RequestError) as exc:
            handler.send_html(400, pages.error_page(str(exc)))

    def _token_endpoint(self, handler: Handler, flavor: str, safe_path: str) -> None:
        state = self.state
        try:
            body = handler.read_body()
        except RequestError as exc:
            self.state.record("POST", safe_path, None)
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
        self.state.record("POST", safe_path, grant_type)
        state.count("token_requests")
        if grant_type == "authorization_code":
            state.count("code_exchanges")
        elif grant_type == "refresh_token":
            state.count("refresh_requests")
        fault = state.faults.take()
        if fault is not None:
            state.count("faults_served")
            serve_fault(handler, fault, self.stopping)
            return
        try:
            if content_type != "application/x-www-form-urlencoded":
                raise OAuthError(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
            try:
                form = single_values(raw)
            except RequestError as exc:
                raise OAuthError(400, "invalid_request", str(exc)) from None
            answer = state.token(flavor, form, handler.headers.get("Authorization"))
        except OAuthError as exc:
            headers: dict[str, str] = {}
            if exc.status == 401 and flavor == "schwab":
                headers["WWW-Authenticate"] = 'Basic realm="sandbox"'
            handler.send_json(exc.status, {"error": exc.error, "error_description": exc.description}, headers)
            return
        if grant_type != "refresh_token":
            handler.send_json(200, answer)
            return
        processed = time.monotonic()
        delay = state.faults.answer_delay
        if delay > 0:
            # The refresh is done (under rotation the old refresh token is already dead): the
            # answer is held, so a kill can land between the provider acting and tdgui storing.
            self.stopping.wait(delay)
        handler.send_json(200, answer)
        with state.lock:
            state.stats.answers.append((processed, time.monotonic()))

    def _api_endpoint(self, handler: Handler, path: str) -> None:
        self.state.count("api_requests")
        auth = handler.headers.get("Authorization") or ""
        grant = None
        if auth.lower().startswith("bearer "):
            grant = self.state.check_access(auth[7:].strip())
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


def check_authorize(flavor: str, params: dict[str, str]) -> AuthRequest:
    """The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3) if it is acceptable, else PageError."""
    client_id = params.get("client_id", "")
    if not client_id:
        raise PageError("The request has no client_id.")
    if flavor == "schwab":
        if client_id != SANDBOX_SCHWAB_CLIENT_ID:
            raise PageError(
                f"Unknown client_id {client_id!r}: the sandbox's Schwab app key is "
                f"{SANDBOX_SCHWAB_CLIENT_ID}."
            )
    else:
        if not client_id.endswith(TDA_CLIENT_ID_SUFFIX):
            raise PageError(f"The client_id must end with {TDA_CLIENT_ID_SUFFIX} (got {client_id!r}).")
        if client_id != TDA_FULL_CLIENT_ID:
            raise PageError(
                f"Unknown client_id {client_id!r}: the sandbox's TD Ameritrade consumer key "
                f"is {TDA_FULL_CLIENT_ID}."
            )
    redirect_uri = params.get("redirect_uri", "")
    _check_redirect_uri(flavor, redirect_uri)
    response_type = params.get("response_type", "")
    if response_type != "code":
        raise PageError(f"response_type must be 'code' (got {response_type!r}).")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise PageError("code_challenge_method was sent without a code_challenge.")
    else:
        if method is None:
            method = "plain"  # RFC 7636 §4.3
        if method not in ("S256", "plain"):
            raise PageError(f"code_challenge_method must be S256 (got {method!r}).")
        if not PKCE_RE.match(challenge):
            raise PageError("code_challenge must be 43 to 128 characters [A-Za-z0-9-._~].")
    state = params.get("state")
    return AuthRequest(flavor, client_id, redirect_uri, state, challenge, method)


def _check_redirect_uri(flavor: str, uri: str) -> None:
    if not uri:
        raise PageError("The request has no redirect_uri.")
    parts = urlsplit(uri)
    hosts = ("127.0.0.1",) if flavor == "schwab" else ("127.0.0.1", "localhost")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise PageError(f"redirect_uri has an invalid port: {uri!r}") from None
    if parts.scheme != "https" or parts.hostname not in hosts:
        raise PageError(
            f"redirect_uri must be an https URL on {' or '.join(hosts)} "
            f"(like {SANDBOX_CALLBACK_URL}), got {uri!r}."
        )
    if parts.fragment or "#" in uri:
        raise PageError("redirect_uri must not contain a #fragment.")
    if parts.username or parts.password:
        raise PageError("redirect_uri must not contain a user name or password.")

"""Token endpoint calls (code exchange, refresh) on authlib, with typed errors and bounded retries.

Every request is bounded three ways: an overall deadline (a watchdog shuts the socket down,
so a provider dripping bytes cannot hold the refresh lock), a cap on the bytes read (gzip
decoded under the same cap, so a bomb stays small), and no redirects. Retries are limited to
failures that provably happened before the provider could act on the request, unless
resending is known to be harmless (docs/reliability.md, "answers lost after sending").
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from tdgui.core.clock import Clock
from tdgui.core.errors import LoginFailed, LoginRequired, ProviderError
from tdgui.core.http_bounds import Attempt, AttemptAdapter, read_body
from tdgui.core.logs import sanitize_provider_text
from tdgui.core.providers import Provider, host_of
from tdgui.core.tokens import B64TOKEN

# The CLI quiets retry warnings by this name (cli.py, quiet_retries).
log = logging.getLogger(__name__)

#: Errors that mean the grant is dead and only a new browser login helps. Schwab reports an
#: expired refresh token as invalid_client / refresh_token_authentication_error (docs/design.md §2).
GRANT_DEAD_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "refresh_token_authentication_error", "unauthorized_client"}
)
MAX_ATTEMPTS = 3
MAX_RETRY_AFTER = 60.0
#: Overall time one HTTP attempt may take, connect to last byte (TD_HTTP_DEADLINE).
DEFAULT_DEADLINE = 30.0
#: Most bytes of a token answer read (after gzip decoding; TD_HTTP_MAX_BODY). Real answers
#: are a few KB; beyond this the provider is broken or hostile.
MAX_BODY = 1 << 20
#: RFC 6749 §5.2: the characters of an error code.
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")
#: 429 (RFC 6585 §4) and 503 (RFC 9110 §15.6.4) say the server did not handle the request:
#: the only answers after sending that make a resend of a refresh token provably harmless.
_NOT_PROCESSED = frozenset({429, 503})
_Found = TypeVar("_Found", bound=BaseException)


def tls_failure(error: BaseException) -> ssl.SSLError | None:
    """The ssl.SSLError anywhere in `error`'s chain (requests and urllib3 wrap it twice), or None."""
    return _in_chain(error, ssl.SSLError)


def _in_chain(error: BaseException, kind: type[_Found]) -> _Found | None:
    """The first exception of `kind` in `error`'s args, causes, contexts and reasons, or None."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend(link for link in (current.__cause__, current.__context__) if link is not None)
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
    return None


class OAuthErrorResponse(Exception):
    """RFC 6749 §5.2 error answer from the token endpoint (already sanitized)."""

    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status


class AnswerLost(ProviderError):
    """The request was sent, but no usable answer came back: the provider may have acted on it."""


class RefreshOutcomeUnknown(ProviderError):
    """A refresh was sent and its answer lost; resending the refresh token could revoke the grant.

    Not transient: nothing retries it automatically. The service records it so that a later
    invalid_grant is explained ("the provider probably rotated the refresh token") and the
    user can decide to try once more or log in again.
    """

    outcome_unknown = True

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


def _retry_after(value: str | None) -> float | None:
    """Retry-After is delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _AnswerCheck:
    """authlib compliance hook: read the answer within bounds, turn anything unusable into a
    typed error (every provider string sanitized and masked), hand authlib clean JSON."""

    def __init__(self, limit: int, secrets: tuple[str | None, ...]) -> None:
        self.limit = limit
        self.secrets = secrets
        self.body: dict[str, Any] = {}

    def text(self, value: object, limit: int = 200) -> str:
        return sanitize_provider_text(value, self.secrets, limit)

    def __call__(self, resp: requests.Response) -> requests.Response:
        where = host_of(resp.url)
        status = resp.status_code
        if 300 <= status < 400:
            # RFC 9700 §4.11: a token request is never sent anywhere but the configured
            # endpoint (a 307/308 would resend the code, verifier, refresh token and secret).
            target = host_of(resp.headers.get("Location") or "") or "elsewhere"
            raise ProviderError(
                f"{where} answered HTTP {status} (a redirect to {self.text(target, 80)}); "
                "tdgui never follows redirects on the token endpoint",
                transient=False,
            )
        if status in _NOT_PROCESSED:
            raise ProviderError(
                f"{where} answered HTTP {status}; try again later",
                retry_after=_retry_after(resp.headers.get("Retry-After")),
            )
        if status >= 500:
            raise AnswerLost(f"{where} answered HTTP {status}")
        try:
            raw = read_body(resp, self.limit)
        except ProviderError as exc:
            raise AnswerLost(str(exc), transient=False) from None
        try:
            body = json.loads(raw, parse_int=_parse_int)
        except (ValueError, RecursionError):
            raise AnswerLost(f"{where} answered HTTP {status} with something that is not JSON") from None
        if not isinstance(body, dict):
            raise AnswerLost(f"{where} answered with JSON that is not an object")
        if "error" in body or status >= 400:
            code = str(body.get("error") or f"http_{status}")
            if not _ERROR_CODE.fullmatch(code):
                code = self.text(code, 64) or f"http_{status}"
            raise OAuthErrorResponse(
                self.text(code, 64), self.text(body.get("error_description") or ""), status
            )
        for key in ("access_token", "refresh_token"):
            value = body.get(key)
            if key == "refresh_token" and value is None:
                continue
            if not isinstance(value, str) or not B64TOKEN.fullmatch(value):
                what = (
                    "without an access token" if key == "access_token" and not value else f"an invalid {key}"
                )
                raise AnswerLost(f"{where} answered {what}")
        # authlib gets only what it needs to accept the answer (its OAuth2Token does int() on
        # expires_in and would throw on "soon", NaN or infinity); the answer as received goes
        # to tokens.py, which parses every odd field into a storable TokenSet.
        self.body = body
        minimal = {k: body[k] for k in ("access_token", "refresh_token") if k in body}
        resp._content = json.dumps({**minimal, "token_type": "Bearer"}).encode()
        return resp


def _parse_int(digits: str) -> int | float:
    # Python refuses to convert ints over 4300 digits (CVE-2020-10735); a provider's huge
    # number becomes infinity, which the lifetime checks in tokens.py replace by a default.
    return int(digits) if len(digits) <= 100 else float("inf")


class TokenClient:
    """Talks to one provider's token endpoint for one client."""

    def __init__(
        self,
        provider: Provider,
        client_id: str,
        client_secret: str | None,
        clock: Clock,
        *,
        timeout: float | None = None,
        backoff: float | None = None,
        deadline: float | None = None,
        max_body: int | None = None,
        on_secret: Callable[[str], None] = lambda _s: None,
    ) -> None:
        self.provider = provider
        self.client_id = provider.full_client_id(client_id)
        self.client_secret = client_secret
        self.clock = clock
        self.timeout = timeout if timeout is not None else 20.0
        self.backoff = backoff if backoff is not None else 1.0
        self.deadline = deadline if deadline is not None else DEFAULT_DEADLINE
        self.max_body = max_body if max_body is not None else MAX_BODY
        self.on_secret = on_secret

    def _session(self, attempt: Attempt, check: _AnswerCheck, redirect_uri: str | None = None) -> Any:
        from authlib.integrations.requests_client import OAuth2Session

        session = OAuth2Session(
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method=self.provider.auth_method,
            redirect_uri=redirect_uri,
        )
        # Pin the sandbox's own CA; real brokers use the system trust store. Never verify=False.
        session.verify = self.provider.ca_file or True
        session.trust_env = False  # no proxy/netrc surprises for secrets
        # Only encodings read_body decodes under its cap (no br/zstd).
        session.headers["Accept-Encoding"] = "gzip, deflate"
        adapter = AttemptAdapter(attempt)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.register_compliance_hook("access_token_response", check)
        session.register_compliance_hook("refresh_token_response", check)
        return session

    def _request_options(self) -> dict[str, Any]:
        read = min(self.timeout, self.deadline)
        return {"timeout": (read, read), "allow_redirects": False, "stream": True}

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None) -> dict[str, Any]:
        """Authorization code → tokens (RFC 6749 §4.1.3). A rejected code raises LoginFailed.

        Retried after a lost answer too: a code is single-use, so a resend is at worst refused
        (and revokes tokens this process never received), never worse than a new login.
        """
        extra: dict[str, str] = dict(self.provider.extra_token_params)
        if code_verifier:
            extra["code_verifier"] = code_verifier
        secrets = (code, code_verifier, self.client_secret)

        def call(attempt: Attempt, check: _AnswerCheck) -> dict[str, Any]:
            with self._session(attempt, check, redirect_uri) as session:
                session.fetch_token(
                    self.provider.token_url,
                    grant_type="authorization_code",
                    code=code,
                    **self._request_options(),
                    **extra,
                )
            return dict(check.body)

        try:
            return self._with_retries(call, "exchanging the login code", secrets, resend_safe=True)
        except OAuthErrorResponse as exc:
            raise LoginFailed(
                f"the provider rejected the login code ({exc.error}); please log in again"
            ) from None

    def refresh(self, refresh_token: str, *, renew: bool, rotating: bool = False) -> dict[str, Any]:
        """Refresh grant (RFC 6749 §6); `renew` asks TD Ameritrade for a new refresh token.

        `rotating`: this grant has rotated its refresh token before. Then (and always for a
        custom provider, whose policy is unknown) a refresh whose answer was lost after it
        was sent is not resent: it raises RefreshOutcomeUnknown.
        """
        extra: dict[str, str] = dict(self.provider.extra_token_params) if renew else {}
        secrets = (refresh_token, self.client_secret)

        def call(attempt: Attempt, check: _AnswerCheck) -> dict[str, Any]:
            with self._session(attempt, check) as session:
                session.refresh_token(
                    self.provider.token_url,
                    refresh_token=refresh_token,
                    **self._request_options(),
                    **extra,
                )
            # RFC 6749 §6: an answer without a refresh token leaves the old one in force;
            # tokens.py tells "the same one again" from a rotation (as authlib's copy did).
            return {"refresh_token": refresh_token, **check.body}

        resend_safe = not rotating and self.provider.flavor != "generic"
        try:
            return self._with_retries(call, "refreshing the token", secrets, resend_safe=resend_safe)
        except OAuthErrorResponse as exc:
            if exc.error in GRANT_DEAD_ERRORS:
                raise LoginRequired(
                    f"the provider no longer accepts the refresh token ({exc.error}): log in again"
                ) from None
            detail = f": {exc.description}" if exc.description else ""
            raise ProviderError(
                f"the provider refused the refresh ({exc.error}, HTTP {exc.status}){detail}",
                transient=False,
            ) from None

    def _attempt(
        self, call: Callable[[Attempt, _AnswerCheck], dict[str, Any]], what: str, check: _AnswerCheck
    ) -> dict[str, Any]:
        """One HTTP attempt under the deadline; every failure becomes a typed, sanitized error."""
        where = host_of(self.provider.token_url)
        with Attempt(self.deadline) as attempt:
            try:
                return call(attempt, check)
            except (ProviderError, OAuthErrorResponse):
                if not attempt.expired:
                    raise
                error: Exception = requests.Timeout()
            except Exception as exc:  # classified below, never passed through raw
                error = exc
        if attempt.expired:
            message = f"{where} did not finish answering within the {self.deadline:g} s deadline while {what}"
            if attempt.sent:
                raise AnswerLost(message, transient=False)
            raise ProviderError(message, transient=False)
        tls = tls_failure(error) if isinstance(error, requests.exceptions.SSLError) else None
        if tls is not None and not isinstance(tls, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            # A certificate (or protocol) problem is not transient and never worked around. The
            # reason is OpenSSL's text ("certificate has expired", a hostname mismatch): no secrets.
            reason = getattr(tls, "verify_message", None) or tls.reason or type(tls).__name__
            raise ProviderError(f"TLS certificate check failed for {where}: {reason}", transient=False)
        handshake_cut = isinstance(error, requests.exceptions.SSLError) or (
            # A reset needs an established TCP connection (a refused SYN is ECONNREFUSED), so a
            # reset before the request went out on https broke the handshake. Which of EOF or
            # reset the client sees depends on whether its ClientHello had arrived (CI row 38).
            self.provider.token_url.startswith("https:")
            and _in_chain(error, ConnectionResetError) is not None
        )
        if handshake_cut and not attempt.sent:
            # The handshake was cut short (EOF, reset): the network's doing, not a certificate's.
            message = f"the TLS handshake with {where} broke off while {what}; check the network connection"
        elif isinstance(error, requests.Timeout):
            message = f"{where} did not answer within {min(self.timeout, self.deadline):g} s while {what}"
        elif isinstance(error, requests.RequestException):
            message = f"cannot reach {where} while {what}; check the network connection"
            if attempt.sent:
                message = f"the connection to {where} broke while {what}"
        elif isinstance(error, ValueError):
            message = f"the provider's answer could not be read while {what}"
        else:
            raise error
        raise AnswerLost(message) if attempt.sent else ProviderError(message)

    def _with_retries(
        self,
        call: Callable[[Attempt, _AnswerCheck], dict[str, Any]],
        what: str,
        secrets: tuple[str | None, ...],
        *,
        resend_safe: bool,
    ) -> dict[str, Any]:
        """At most MAX_ATTEMPTS tries for transient failures, exponential backoff, Retry-After.

        A failure after the request was sent (AnswerLost) is retried only when `resend_safe`;
        otherwise it ends as RefreshOutcomeUnknown (finding 19 of issue 11).
        """
        check = _AnswerCheck(self.max_body, secrets)
        delay = self.backoff
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self._attempt(call, what, check)
                for key in ("access_token", "refresh_token", "id_token"):
                    if isinstance(response.get(key), str):
                        self.on_secret(response[key])
                return response
            except AnswerLost as exc:
                if not resend_safe:
                    raise RefreshOutcomeUnknown(
                        f"{exc}. The request had been sent, so the provider may already have "
                        "replaced the refresh token; tdgui did not send it again. If the next "
                        "refresh is refused, log in again"
                    ) from None
                error: ProviderError = exc
            except ProviderError as exc:
                error = exc
            if not error.transient or attempt == MAX_ATTEMPTS:
                raise error
            wait = delay
            if error.retry_after is not None:
                wait = max(wait, min(error.retry_after, MAX_RETRY_AFTER))
            log.warning(
                "attempt %d of %d failed (%s); retrying in %.2f s", attempt, MAX_ATTEMPTS, error, wait
            )
            self.clock.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

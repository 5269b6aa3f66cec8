"""Token endpoint calls (code exchange, refresh) on authlib, with typed errors and bounded retries."""

from __future__ import annotations

import email.utils
import logging
import os
from collections.abc import Callable
from typing import Any

import requests

from tdgui.core.clock import Clock
from tdgui.core.errors import LoginFailed, LoginRequired, ProviderError
from tdgui.core.providers import Provider, host_of

log = logging.getLogger("tdgui.oauth")

#: Errors that mean the grant is dead and only a new browser login helps. Schwab reports an
#: expired refresh token as invalid_client / refresh_token_authentication_error (docs/design.md §2).
GRANT_DEAD_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "refresh_token_authentication_error", "unauthorized_client"}
)
MAX_ATTEMPTS = 3
MAX_RETRY_AFTER = 60.0


class OAuthErrorResponse(Exception):
    """RFC 6749 §5.2 error answer from the token endpoint."""

    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


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
    import time

    return max(0.0, when.timestamp() - time.time())


def _check_token_response(resp: requests.Response) -> requests.Response:
    """authlib compliance hook: turn every unusable answer into a typed error before parsing."""
    where = host_of(resp.url)
    # 429 Too Many Requests (RFC 6585 §4) is transient like a 5xx and may carry Retry-After.
    if resp.status_code >= 500 or resp.status_code == 429:
        raise ProviderError(
            f"{where} answered HTTP {resp.status_code}; try again later",
            retry_after=_retry_after(resp.headers.get("Retry-After")),
        )
    try:
        body = resp.json()
    except ValueError:
        raise ProviderError(
            f"{where} answered HTTP {resp.status_code} with something that is not JSON"
        ) from None
    if not isinstance(body, dict):
        raise ProviderError(f"{where} answered with JSON that is not an object")
    if "error" in body or resp.status_code >= 400:
        raise OAuthErrorResponse(
            str(body.get("error") or f"http_{resp.status_code}"),
            str(body.get("error_description") or ""),
            resp.status_code,
        )
    if not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise ProviderError(f"{where} answered without an access token")
    return resp


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
        on_secret: Callable[[str], None] = lambda _s: None,
    ) -> None:
        self.provider = provider
        self.client_id = provider.full_client_id(client_id)
        self.client_secret = client_secret
        self.clock = clock
        self.timeout = timeout if timeout is not None else _env_float("TD_HTTP_TIMEOUT", 20.0)
        self.backoff = backoff if backoff is not None else _env_float("TD_HTTP_BACKOFF", 1.0)
        self.on_secret = on_secret

    def _session(self, redirect_uri: str | None = None) -> Any:
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
        session.register_compliance_hook("access_token_response", _check_token_response)
        session.register_compliance_hook("refresh_token_response", _check_token_response)
        return session

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None) -> dict[str, Any]:
        """Authorization code → tokens (RFC 6749 §4.1.3). A rejected code raises LoginFailed."""
        extra: dict[str, str] = dict(self.provider.extra_token_params)
        if code_verifier:
            extra["code_verifier"] = code_verifier

        def call() -> dict[str, Any]:
            session = self._session(redirect_uri)
            with session:
                return dict(
                    session.fetch_token(
                        self.provider.token_url,
                        grant_type="authorization_code",
                        code=code,
                        timeout=self.timeout,
                        **extra,
                    )
                )

        try:
            return self._with_retries(call, "exchanging the login code")
        except OAuthErrorResponse as exc:
            raise LoginFailed(
                f"the provider rejected the login code ({exc.error}); please log in again"
            ) from None

    def refresh(self, refresh_token: str, *, renew: bool) -> dict[str, Any]:
        """Refresh grant (RFC 6749 §6); `renew` asks TD Ameritrade for a new refresh token."""
        extra: dict[str, str] = dict(self.provider.extra_token_params) if renew else {}

        def call() -> dict[str, Any]:
            session = self._session()
            with session:
                return dict(
                    session.refresh_token(
                        self.provider.token_url,
                        refresh_token=refresh_token,
                        timeout=self.timeout,
                        **extra,
                    )
                )

        try:
            return self._with_retries(call, "refreshing the token")
        except OAuthErrorResponse as exc:
            if exc.error in GRANT_DEAD_ERRORS:
                raise LoginRequired(
                    f"the provider no longer accepts the refresh token ({exc.error}): log in again"
                ) from None
            raise ProviderError(
                f"the provider refused the refresh ({exc.error}, HTTP {exc.status})",
                transient=False,
            ) from None

    def _with_retries(self, call: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
        """At most MAX_ATTEMPTS tries for transient failures, exponential backoff, Retry-After."""
        delay = self.backoff
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = call()
                for key in ("access_token", "refresh_token", "id_token"):
                    if isinstance(response.get(key), str):
                        self.on_secret(response[key])
                return response
            except requests.Timeout:
                error = ProviderError(
                    f"{host_of(self.provider.token_url)} did not answer within "
                    f"{self.timeout:g} s while {what}"
                )
            except requests.exceptions.SSLError as exc:
                # A certificate problem is not transient and never worked around.
                raise ProviderError(
                    f"TLS certificate check failed for {host_of(self.provider.token_url)}: "
                    f"{type(exc).__name__}",
                    transient=False,
                ) from None
            except requests.ConnectionError:
                error = ProviderError(
                    f"cannot reach {host_of(self.provider.token_url)} while {what}; "
                    "check the network connection"
                )
            except ProviderError as exc:
                error = exc
            except ValueError:
                error = ProviderError(f"the provider's answer could not be read while {what}")
            if not error.transient or attempt == MAX_ATTEMPTS:
                raise error
            wait = delay
            if error.retry_after is not None:
                wait = max(wait, min(error.retry_after, MAX_RETRY_AFTER))
            log.warning(
                "attempt %d of %d failed (%s); retrying in %.2f s",
                attempt,
                MAX_ATTEMPTS,
                error,
                wait,
            )
            self.clock.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

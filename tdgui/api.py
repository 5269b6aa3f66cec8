"""Python API for scripts: pyTD-compatible `api`, `session`, `get_token` and `Accounts`."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import requests

from tdgui.cache import DiskCache, MemCache, SQLCache, TokenCache
from tdgui.core import providers
from tdgui.core.config import Account, Config, sandbox_account, store_tokens_from_env
from tdgui.core.errors import UsageError
from tdgui.core.service import AccountStatus, TokenService
from tdgui.core.tokens import TokenSet

__all__ = ["Accounts", "DiskCache", "MemCache", "SQLCache", "api", "get_token", "session"]

log = logging.getLogger("tdgui.api")


def _provider_for_key(consumer_key: str) -> str:
    return "tdameritrade" if consumer_key.endswith(providers.TDA_CLIENT_ID_SUFFIX) else "schwab"


class api:  # the lowercase name pyTD scripts import
    """pyTD's `api`: tokens for one app (consumer key + callback URL), refreshed on demand.

    `consumer_key` and `callback_url` default to `TD_CONSUMER_KEY` / `TD_CALLBACK_URL`.
    The account is the configured one with that key and callback (or `account=NAME`); if none
    exists, one is added to the config (no secret is written anywhere by that).
    `store_tokens=False` (or `TD_STORE_TOKENS=False`, which wins) keeps tokens in memory only.
    """

    def __init__(
        self,
        consumer_key: str | None = None,
        callback_url: str | None = None,
        store_tokens: bool = True,
        cache: TokenCache | None = None,
        *,
        account: str | None = None,
        provider: str | None = None,
    ) -> None:
        self.store_tokens = store_tokens_from_env(store_tokens)
        if not self.store_tokens:
            if cache is not None and not isinstance(cache, MemCache):
                log.warning(
                    "TD_STORE_TOKENS/store_tokens is False: using memory, not %s", type(cache).__name__
                )
            cache = MemCache()
        self.cache = cache
        config = Config()
        self.account_name = account or self._find_or_add(config, consumer_key, callback_url, provider)
        self.service = TokenService(config, store_override=cache.store if cache else None)
        acc = config.account(self.account_name)
        self.consumer_key = acc.client_id
        self.callback_url = acc.callback_url

    @staticmethod
    def _find_or_add(config: Config, key: str | None, callback: str | None, provider: str | None) -> str:
        key = key or os.environ.get("TD_CONSUMER_KEY")
        callback = callback or os.environ.get("TD_CALLBACK_URL")
        if not key:
            raise UsageError("no consumer key: pass consumer_key=... or set TD_CONSUMER_KEY")
        if not callback:
            raise UsageError("no callback URL: pass callback_url=... or set TD_CALLBACK_URL")
        bare = key.removesuffix(providers.TDA_CLIENT_ID_SUFFIX)
        for existing in config.accounts():
            if existing.client_id.removesuffix(providers.TDA_CLIENT_ID_SUFFIX) == bare and (
                existing.callback_url == callback
            ):
                return existing.name
        chosen = provider or _provider_for_key(key)
        digest = hashlib.sha256(f"{bare}|{callback}".encode()).hexdigest()[:8]
        name = f"{chosen}-{digest}"
        config.add_account(Account(name=name, provider=chosen, client_id=bare, callback_url=callback))
        return name

    @property
    def tokens(self) -> TokenSet | None:
        return self.service.read_tokens(self.service.account(self.account_name))

    @property
    def access_valid(self) -> bool:
        tokens = self.tokens
        return tokens is not None and tokens.access_valid(self.service.clock.now())

    @property
    def refresh_valid(self) -> bool:
        tokens = self.tokens
        return tokens is not None and tokens.refresh_valid(self.service.clock.now())

    @property
    def auth_valid(self) -> bool:
        """True when a valid access token is stored or can be had with the refresh token."""
        return self.access_valid or self.refresh_valid

    def refresh_auth(self) -> None:
        """Refresh the access token now (single-flight with every other tdgui process)."""
        self.service.refresh(self.account_name, force=True)

    @property
    def access_token(self) -> str:
        """A valid access token, refreshed first if due."""
        return self.service.get_token(self.account_name).access_token

    def login(self, timeout: float = 300.0) -> None:
        """The system-browser login (pyTD's "script application" flow)."""
        import webbrowser

        from tdgui.core.loopback import run_browser_login

        run_browser_login(self.service, self.account_name, webbrowser.open, timeout=timeout)

    def session(self) -> requests.Session:
        return _BearerSession(self.service, self.account_name)


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self, service: TokenService, name: str) -> None:
        self.service = service
        self.name = name

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        tokens = self.service.get_token(self.name)
        request.headers["Authorization"] = f"Bearer {tokens.access_token}"
        return request


class _BearerSession(requests.Session):
    """Sends a token valid at send time; on a 401 refreshes once and retries once."""

    def __init__(self, service: TokenService, name: str) -> None:
        super().__init__()
        self.service = service
        self.account_name = name
        self.auth = _BearerAuth(service, name)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)
        if response.status_code == 401:
            response.close()
            self.service.refresh(self.account_name, force=True)
            response = super().request(method, url, *args, **kwargs)
        return response


def session(name: str) -> requests.Session:
    """A `requests.Session` that sends `Authorization: Bearer` for account `name`."""
    service = TokenService()
    service.account(name)  # unknown account: fail now, not on the first request
    return _BearerSession(service, name)


def get_token(name: str) -> str:
    """A valid access token for account `name` (refreshed first if due)."""
    return TokenService().get_token(name).access_token


class Accounts:
    """The CLI's operations as Python calls."""

    def __init__(self, service: TokenService | None = None) -> None:
        self.service = service or TokenService()

    def list(self) -> list[Account]:
        return self.service.config.accounts()

    def add(self, account: Account, client_secret: str | None = None) -> Account:
        account.validate()
        if client_secret is not None:
            self.service.set_client_secret(account, client_secret)
        self.service.config.add_account(account)
        return account

    def add_sandbox(self, name: str, flavor: str = "schwab", sandbox_url: str | None = None) -> Account:
        return self.add(sandbox_account(name, flavor, sandbox_url))

    def remove(self, name: str) -> None:
        self.service.remove_account(name)

    def login_url(self, name: str) -> Any:
        """Begin a login: returns the pending login (`.url` to open); pass it to `finish_login`."""
        return self.service.begin_login(name)

    def finish_login(self, pending: Any, redirect_url: str) -> TokenSet:
        return self.service.finish_login(pending, redirect_url)

    def status(self, name: str) -> AccountStatus:
        return self.service.status(name)

    def token(self, name: str) -> str:
        return self.service.get_token(name).access_token

    def refresh(self, name: str, force: bool = False) -> TokenSet:
        return self.service.refresh(name, force=force)

    def export(self, name: str, fmt: str, path: str | Path, keep_synced: bool = False) -> None:
        self.service.export(name, fmt, Path(path), keep_synced=keep_synced)

    def logout(self, name: str) -> None:
        self.service.logout(name)


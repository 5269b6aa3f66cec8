"""Python API for scripts: pyTD-compatible `api`, `session`, `get_token` and `Accounts`."""

from __future__ import annotations

import builtins
import hashlib
import logging
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tdgui.cache import DiskCache, MemCache, SQLCache, TokenCache
from tdgui.core import hardening, providers
from tdgui.core.accounts import AccountDraft, AccountManager
from tdgui.core.config import Account
from tdgui.core.environment import Environment
from tdgui.core.errors import UsageError
from tdgui.core.flow import PendingLogin
from tdgui.core.root import Core, build_core
from tdgui.core.service import TokenService
from tdgui.core.status import AccountStatus
from tdgui.core.stores.base import TokenStore
from tdgui.core.tokens import TokenSet

__all__ = ["Accounts", "DiskCache", "MemCache", "SQLCache", "api", "get_token", "session"]

log = logging.getLogger(__name__)
hardening.disable_core_dumps(library=True)  # the script will hold tokens: no core file of them

#: How long a browser login waits for the redirect (RFC 8252 loopback listener).
LOGIN_TIMEOUT = 300.0


def _provider_for_key(consumer_key: str) -> str:
    return "tdameritrade" if consumer_key.endswith(providers.TDA_CLIENT_ID_SUFFIX) else "schwab"


def _core(store_override: TokenStore | None = None) -> Core:
    """This call's core objects: the API's entry point reads the environment here, once."""
    return build_core(Environment.from_os(), store_override=store_override)


def _print_and_open(url: str) -> None:
    """The default browser opener: the URL goes to stderr too, in case no browser opens."""
    from tdgui.core.loopback import open_browser_telling

    open_browser_telling(url, lambda line: print(line, file=sys.stderr, flush=True))


def _browser_login(
    service: TokenService,
    name: str,
    open_browser: Callable[[str], object] | None,
    timeout: float,
) -> TokenSet:
    return service.browser_login(name, open_browser or _print_and_open, timeout=timeout)


class api:  # the lowercase name pyTD scripts import
    """pyTD's `api`: tokens for one app (consumer key + callback URL), refreshed on demand.

    `consumer_key` and `callback_url` default to `TD_CONSUMER_KEY` / `TD_CALLBACK_URL`.
    The account is the configured one with that key and callback (or `account=NAME`); if none
    exists, one is added to the config (no secret is written there). Schwab apps need their
    secret: pass `client_secret=...` once; it goes to the token store, never to the config.
    `store_tokens=False` (or `TD_STORE_TOKENS=False`, which wins over the argument) keeps
    tokens in memory only. `cache` (MemCache, DiskCache, SQLCache) chooses where tokens are
    kept instead of the account's store (the keyring by default).
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
        client_secret: str | None = None,
    ) -> None:
        env = Environment.from_os()
        self.store_tokens = store_tokens if env.store_tokens is None else env.store_tokens
        if cache is not None and not isinstance(cache, TokenCache):
            raise UsageError(f"cache must be a MemCache, DiskCache or SQLCache, not {type(cache).__name__}")
        if not self.store_tokens:
            if cache is not None and not isinstance(cache, MemCache):
                log.warning(
                    "TD_STORE_TOKENS/store_tokens is False: using memory, not %s", type(cache).__name__
                )
            if not isinstance(cache, MemCache):
                cache = MemCache()
        self.cache = cache
        core = build_core(env, store_override=cache.store if cache else None)
        config = core.config
        if account is not None:
            config.account(account)  # unknown: UsageError now
            self.account_name = account
        else:
            self.account_name = self._find_or_add(
                core, consumer_key or env.consumer_key, callback_url or env.callback_url, provider
            )
        self.service = core.service
        acc = config.account(self.account_name)
        if client_secret is not None:
            self.service.set_client_secret(acc, client_secret)
        self.consumer_key = acc.client_id
        self.callback_url = acc.callback_url

    @staticmethod
    def _find_or_add(core: Core, key: str | None, callback: str | None, provider: str | None) -> str:
        config = core.config
        if not key:
            raise UsageError("no consumer key: pass consumer_key=... or set TD_CONSUMER_KEY")
        if not callback:
            raise UsageError("no callback URL: pass callback_url=... or set TD_CALLBACK_URL")
        if provider is not None and provider not in providers.PROVIDER_NAMES:
            raise UsageError(f"unknown provider {provider!r}: one of {', '.join(providers.PROVIDER_NAMES)}")
        if provider == "custom":
            raise UsageError("a custom provider needs endpoints: add it with tdgui.Accounts().add(...)")
        bare = key.removesuffix(providers.TDA_CLIENT_ID_SUFFIX)
        for existing in config.accounts():
            if (
                existing.client_id.removesuffix(providers.TDA_CLIENT_ID_SUFFIX) == bare
                and existing.callback_url == callback
                and (provider is None or existing.provider == provider)
            ):
                return existing.name
        chosen = provider or _provider_for_key(key)
        flavor = None
        if chosen == "sandbox":
            is_tda = key.endswith(providers.TDA_CLIENT_ID_SUFFIX) or bare == providers.SANDBOX_TDA_CLIENT_ID
            flavor = "tdameritrade" if is_tda else "schwab"
        digest = hashlib.sha256(f"{chosen}|{bare}|{callback}".encode()).hexdigest()[:8]
        name = f"{chosen}-{digest}"
        account = Account(name=name, provider=chosen, client_id=bare, callback_url=callback, flavor=flavor)
        # No secret yet: pyTD's api() takes it as `client_secret=` after the account exists.
        core.accounts.add(account, require_secret=False, forget_previous=False)
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

    def login(
        self, timeout: float = LOGIN_TIMEOUT, open_browser: Callable[[str], object] | None = None
    ) -> TokenSet:
        """The system-browser login (pyTD's "script application" flow, RFC 8252 loopback).

        `open_browser(url)` replaces the system browser (e.g. to print the URL instead). `url` is
        a one-time start URL on the loopback listener that redirects to the authorization URL
        once (so the login's `state` is on no command line); `url.authorize_url` is that URL.
        """
        return _browser_login(self.service, self.account_name, open_browser, timeout)

    def session(self) -> requests.Session:
        return _bearer_session(self.service, self.account_name)


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
        #: CA file to verify with unless a request says otherwise (the sandbox's own CA).
        self.pinned_ca: str | None = None

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.pinned_ca and kwargs.get("verify") is None and len(args) < 12:
            # Passed per request: requests lets REQUESTS_CA_BUNDLE override `Session.verify`.
            kwargs["verify"] = self.pinned_ca
        response = super().request(method, url, *args, **kwargs)
        if response.status_code == 401:
            response.close()
            # Force: the token was rejected although it looked valid (revoked, or replaced by a
            # newer login). If another process refreshed meanwhile, its token is reused.
            self.service.refresh(self.account_name, force=True)
            response = super().request(method, url, *args, **kwargs)
        return response


def _bearer_session(service: TokenService, name: str) -> requests.Session:
    account = service.account(name)  # unknown account: fail now, not on the first request
    bearer = _BearerSession(service, name)
    provider = service.provider(account)
    if provider.ca_file:
        # The sandbox's own CA: its API is only reachable through it.
        bearer.verify = bearer.pinned_ca = provider.ca_file
    return bearer


def session(name: str) -> requests.Session:
    """A `requests.Session` that sends `Authorization: Bearer` for account `name`.

    The token is valid when each request is sent (refreshed first if due); a 401 answer
    triggers one refresh and one retry.
    """
    return _bearer_session(_core().service, name)


def get_token(name: str) -> str:
    """A valid access token for account `name` (refreshed first if due, single-flight)."""
    return _core().service.get_token(name).access_token


class Accounts:
    """The CLI's operations as Python calls (same errors, same stores, same single-flight)."""

    def __init__(self, service: TokenService | None = None) -> None:
        self.service = service or _core().service
        self.manager = AccountManager(self.service)

    def list(self) -> list[Account]:
        return self.service.config.accounts()

    def get(self, name: str) -> Account:
        return self.service.account(name)

    def add(self, account: Account, client_secret: str | None = None) -> Account:
        """Add `account` (nothing is written if anything is wrong, as `tdgui accounts add`)."""
        return self.manager.add(account, client_secret, require_secret=False)

    def add_sandbox(
        self,
        name: str,
        flavor: str = "schwab",
        sandbox_url: str | None = None,
        *,
        store: str = "keyring",
        callback_url: str | None = None,
    ) -> Account:
        draft = AccountDraft(name, "sandbox", None, callback_url, store, flavor, sandbox_url)
        return self.add(draft.to_account())

    def remove(self, name: str) -> None:
        """Remove the account with its tokens, client secret and exported token files."""
        self.manager.remove(name)

    def login_url(self, name: str) -> PendingLogin:
        """Begin a manual login: open `.url`, then pass it and the redirect to `finish_login`."""
        return self.service.begin_login(name)

    def finish_login(self, pending: PendingLogin, redirect_url: str) -> TokenSet:
        return self.service.finish_login(pending, redirect_url)

    def login(
        self,
        name: str,
        open_browser: Callable[[str], object] | None = None,
        timeout: float = LOGIN_TIMEOUT,
    ) -> TokenSet:
        """The browser login (`tdgui login NAME --browser`)."""
        return _browser_login(self.service, name, open_browser, timeout)

    def status(self, name: str) -> AccountStatus:
        return self.service.status(name)

    def statuses(self) -> builtins.list[AccountStatus]:
        return self.service.statuses()

    def token(self, name: str) -> str:
        return self.service.get_token(name).access_token

    def refresh(self, name: str, force: bool = False) -> TokenSet:
        return self.service.refresh(name, force=force)

    def export(self, name: str, fmt: str, path: str | Path, keep_synced: bool = False) -> None:
        self.service.export(name, fmt, Path(path), keep_synced=keep_synced)

    def logout(self, name: str) -> None:
        self.manager.logout(name)

    def session(self, name: str) -> requests.Session:
        return _bearer_session(self.service, name)


class _CallableModule(types.ModuleType):
    """`tdgui.api(...)` must build an `api` even where `tdgui.api` is this module: importing
    the submodule binds that name on the package, hiding the class of the same name."""

    def __call__(self, *args: Any, **kwargs: Any) -> api:
        return api(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

"""Login, refresh (single-flight across processes), status and logout: used by GUI, CLI and API."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from tdgui.core import export, flow, fsutil, schedule
from tdgui.core.clock import SYSTEM_CLOCK, Clock
from tdgui.core.config import Account, Config
from tdgui.core.environment import HttpSettings
from tdgui.core.errors import (
    LoginFailed,
    LoginRequired,
    ProviderError,
    StoreUnavailable,
    TdguiError,
)
from tdgui.core.logs import SECRETS
from tdgui.core.providers import Provider
from tdgui.core.records import RefreshRecord, StatusRecords
from tdgui.core.service_status import StatusReading
from tdgui.core.signals import critical_section
from tdgui.core.status import AccountPlan, AccountStatus
from tdgui.core.stores.base import TokenStore
from tdgui.core.tokens import TokenSet, TokenTimes

if TYPE_CHECKING:
    import threading


__all__ = ["AccountPlan", "AccountStatus", "RefreshRecord", "TokenService"]

log = logging.getLogger(__name__)

#: How long a process waits for another one's refresh before giving up.
LOCK_TIMEOUT = 120.0
#: How long bringing kept export files up to date waits for the refresh lock.
CATCH_UP_WAIT = 1.0


def _no_tokens(name: str) -> LoginRequired:
    return LoginRequired(f"no tokens stored for {name!r}: run `tdgui login {name}`")


class TokenService(StatusReading):
    """The one place that reads, refreshes and writes tokens."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        lead: float = schedule.DEFAULT_LEAD,
        store_override: TokenStore | None = None,
        http: HttpSettings | None = None,
    ) -> None:
        self.config = config or Config()
        # Entry points pass the Environment's; a service built by hand (tests, benchmarks) reads
        # the TD_HTTP_* variables here, in the one function that knows them.
        self.http = http or HttpSettings.from_os()
        self.clock = clock
        self.lead = lead
        self.store_override = store_override
        #: Status and plans from the status records alone, never from the token store: for a
        #: long-lived app that must not load the keyring (an account without a record reads as
        #: having no tokens until its next login or refresh writes one).
        self.status_from_records_only = False
        self.records = StatusRecords(self.config.directory)
        #: Status records of accounts whose tokens live in this process only (see _shares_records).
        self._private_records: dict[str, RefreshRecord] = {}
        self._stores: dict[str, TokenStore] = {}
        #: The last tokens read from a shared (database) store, per account: a long-running
        #: consumer (tdgui.session, the tray) rides out a short database outage on them while
        #: their access token is valid (issue 12).
        self._last_shared: dict[str, TokenSet] = {}
        self.exports = export.KeptExports(self.config)

    # -- records --------------------------------------------------------------------------
    def read_tokens(self, account: Account) -> TokenSet | None:
        text = self.store(account).read(f"{account.name}/tokens")
        if text is None:
            return None
        tokens = TokenSet.from_json(text)
        for secret in (tokens.access_token, tokens.refresh_token):
            SECRETS.add(secret)
        if self._shared_store(account) is not None:
            self._last_shared[account.name] = tokens
        return tokens

    def _write_tokens(self, account: Account, tokens: TokenSet) -> None:
        # The provider's answer is stored before anything else (exports, status): a process
        # killed after the provider rotated the refresh token loses the least possible.
        store, key, text = self.store(account), f"{account.name}/tokens", tokens.to_json()
        # The answer in hand is the only copy of a rotated grant, so a store that fails to take
        # it is asked again for a while (its answer_write_patience) instead of giving it up.
        # Signals stay deferred meanwhile: the caller's critical section covers the write.
        deadline = time.monotonic() + store.answer_write_patience
        pause = 0.25
        while True:
            try:
                store.write(key, text)
                break
            except StoreUnavailable as exc:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning(
                    "%s: the token store did not take the new tokens (%s); trying again in %.2g s",
                    account.name,
                    exc,
                    pause,
                )
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
        self.exports.rewrite(account.name, tokens)  # the caller holds the refresh lock

    def _shares_records(self, account: Account) -> bool:
        """Whether this account's tokens are the ones every process sees (a durable store).

        A memory store (or a cache given to this service object) is per process: its grant
        dying must not mark the real account "login required" for everybody else.
        """
        return self.store_override is None and account.store != "memory"

    def refresh_record(self, name: str) -> RefreshRecord:
        if name in self._private_records:
            return self._private_records[name]
        account = self.config.find(name)
        if account is not None and self._shared_store(account) is not None:
            return self._record_for(account)
        return self.records.read(name)

    def _record_for(self, account: Account) -> RefreshRecord:
        if not self._shares_records(account):
            return self._private_records.get(account.name, RefreshRecord())
        shared = self._shared_store(account)
        if shared is not None:
            # One truth for every machine: a refresh done elsewhere shows here (issue 12).
            from tdgui.core.records import record_from_json

            text = shared.read(f"{account.name}/status")
            return RefreshRecord() if text is None else record_from_json(text)
        return self.records.read(account.name)

    def _save_record(self, account: Account, record: RefreshRecord, *, before_refresh: bool = False) -> None:
        shared = self._shared_store(account) if self._shares_records(account) else None
        if shared is not None:
            from tdgui.core.records import record_to_json

            shared.write(f"{account.name}/status", record_to_json(record))
        elif self._shares_records(account):
            self.records.save(account.name, record, before_refresh=before_refresh)
        else:
            self._private_records[account.name] = record

    @contextmanager
    def refresh_lock(self, name: str, *, wait: float = LOCK_TIMEOUT) -> Iterator[None]:
        """The store's lock when every machine shares the store (postgres: a session advisory
        lock the server frees when its holder dies, waited on for the store's lock_wait), else
        a kernel lock (flock on POSIX) waited on for `wait` seconds."""
        account = self.config.find(name)
        shared = self._shared_store(account) if account is not None else None
        lock = shared.refresh_lock(name) if shared is not None else None
        if lock is not None:
            with lock:
                yield
            return
        from filelock import Timeout

        try:
            with fsutil.kernel_lock(self.directory / "locks" / f"{name}.lock", wait, root=self.directory):
                yield
        except Timeout:
            raise ProviderError(
                f"another tdgui process has been refreshing {name!r} for {wait:g} s"
            ) from None

    # -- login ----------------------------------------------------------------------------
    def begin_login(self, name: str) -> flow.PendingLogin:
        """Start a login: the store and the app secret are checked first, so a login that cannot
        be kept fails before the user types a password, not after."""
        account = self.account(name)
        provider = self.provider(account)
        self.store(account).check_available()
        self.client_secret(account, provider)
        pending = flow.begin_login(
            account.name, provider, account.client_id, account.callback_url, self.clock.now()
        )
        SECRETS.add(pending.state)
        if pending.code_verifier:
            SECRETS.add(pending.code_verifier)
        return replace(pending, account_fingerprint=account.fingerprint())

    def finish_login(self, pending: flow.PendingLogin, redirect_url: str) -> TokenSet:
        """Check the redirect, exchange the code, store the tokens. Errors change nothing."""
        account = self._login_account(pending)
        provider = self.provider(account)
        code = flow.parse_redirect(pending, redirect_url)
        SECRETS.add(code)
        client = self.token_client(account, provider)
        with self.refresh_lock(account.name), critical_section("the login"):
            self._login_account(pending)  # again, under the lock that `accounts remove` takes
            response = client.exchange_code(code, pending.redirect_uri, pending.code_verifier)
            tokens = TokenSet.from_response(response, provider, self.clock.now())
            self._write_tokens(account, tokens)
            self._save_record(account, RefreshRecord.succeeded(tokens.times(), tokens.warnings))
        log.info("logged in to %s (%s)", account.name, provider.name)
        return tokens

    def _login_account(self, pending: flow.PendingLogin) -> Account:
        """The account a login began for, unchanged: removed or replaced by another of the same
        name while the user was on the login page, its code goes to no provider and its tokens
        to no store (issue: a new account inherited the old one's grant)."""
        account = self.config.find(pending.account)
        if account is None or (
            pending.account_fingerprint and account.fingerprint() != pending.account_fingerprint
        ):
            raise LoginFailed(f"the account {pending.account!r} was changed or removed during the login")
        return account

    def browser_login(
        self,
        name: str,
        open_browser: Callable[[str], object],
        *,
        timeout: float,
        cancel: threading.Event | None = None,
    ) -> TokenSet:
        """The system-browser login (RFC 8252 §7.3): loopback listener, browser, code exchange."""
        from tdgui.core.loopback import wait_for_redirect

        pending = self.begin_login(name)
        redirect = wait_for_redirect(pending, self.directory, open_browser, timeout=timeout, cancel=cancel)
        return self.finish_login(pending, redirect)

    # -- tokens ---------------------------------------------------------------------------
    def get_token(self, name: str) -> TokenSet:
        """Tokens with an access token valid for at least the lead time, refreshing if due.

        If a refresh fails for a transient reason while the stored access token is still
        valid, that token is served: a script keeps working through a provider hiccup.
        """
        account = self.account(name)
        provider = self.provider(account)
        try:
            tokens = self.read_tokens(account)
        except StoreUnavailable:
            held = self._last_shared.get(name)
            if held is None or not held.access_valid(self.clock.now()):
                raise
            log.warning("%s: the database is unreachable; serving the still-valid access token", name)
            return held
        if tokens is None:
            raise _no_tokens(name)
        # A wall clock set back (by hand, a bad NTP step) would make a token the provider has
        # already expired look fresh: the real time since it arrived decides (docs/reliability.md).
        now = self._record_for(account).real_now(tokens.times(), self.clock.now())
        if not schedule.needs_refresh(tokens, provider, now, self.lead):
            if tokens.access_valid(now):
                self._catch_up_exports(account, tokens.times())
                return tokens
            raise LoginRequired(f"the refresh token of {name!r} has expired: log in again")
        try:
            return self._refresh(account, provider, tokens, force=False)
        except (ProviderError, fsutil.LockUnavailable):
            if tokens.access_valid(self._record_for(account).real_now(tokens.times(), self.clock.now())):
                log.warning("refresh of %s failed; serving the still-valid access token", name)
                return tokens
            raise

    def refresh(self, name: str, *, force: bool = False) -> TokenSet:
        """Refresh if due (or always with `force`), single-flight across processes.

        Under refresh-token rotation two processes refreshing at once look like token theft
        (RFC 9700 §4.14.2) and can revoke the grant, so read-check-refresh-write happens under
        one kernel lock; a process that waited re-reads what the winner stored instead.
        """
        account = self.account(name)
        return self._refresh(account, self.provider(account), self.read_tokens(account), force=force)

    def _refresh(
        self, account: Account, provider: Provider, seen: TokenSet | None, *, force: bool
    ) -> TokenSet:
        """`seen` is what the caller read before taking the lock."""
        name = account.name
        with self.refresh_lock(name):
            current = self.read_tokens(account)
            if current is None:
                raise _no_tokens(name)
            now = self._record_for(account).real_now(current.times(), self.clock.now())
            someone_refreshed = seen is not None and current.received_at > seen.received_at
            if force and someone_refreshed:
                return self._exports_hold(account, current)
            if not force and not schedule.needs_refresh(current, provider, now, self.lead):
                if current.refresh_valid(now) or current.access_valid(now):
                    return self._exports_hold(account, current)
            if not current.refresh_valid(now) or current.refresh_token is None:
                self._mark_failed(account, "the refresh token has expired", login_required=True)
                raise LoginRequired(f"the refresh token of {name!r} has expired: log in again")
            if not force and self._record_for(account).login_required:
                # The provider already refused this grant: asking again with the same dead
                # refresh token only adds failed requests (`refresh --force` still tries).
                raise LoginRequired(f"{name!r} needs a new login (the provider refused the refresh)")
            client = self.token_client(account, provider)
            renew = schedule.renewal_due(current, provider, now)
            record = self._record_for(account)
            interrupted = record.interrupted_note()
            if interrupted:
                log.warning("%s: %s", name, interrupted)
            with critical_section("the token refresh"):
                # Before sending: on a disk too full for this small record the new tokens could
                # not be stored either, and under rotation the grant would be lost; so the
                # refresh is not sent (issue 11 #9).
                self._save_record(
                    account, replace(record, refresh_started_at=self.clock.now()), before_refresh=True
                )
                try:
                    response = client.refresh(current.refresh_token, renew=renew, rotating=current.rotated)
                except LoginRequired as exc:
                    message = f"{exc} ({interrupted})" if interrupted else str(exc)
                    self._mark_failed(account, message, login_required=True)
                    raise LoginRequired(message) from None
                except TdguiError as exc:
                    unknown = bool(getattr(exc, "outcome_unknown", False))  # oauth.RefreshOutcomeUnknown
                    self._mark_failed(account, str(exc), login_required=False, outcome_unknown=unknown)
                    raise
                tokens = TokenSet.from_response(response, provider, self.clock.now(), previous=current)
                self._write_tokens(account, tokens)
                self._save_record(account, RefreshRecord.succeeded(tokens.times(), tokens.warnings))
            log.info("refreshed %s", name)
            return tokens

    def _mark_failed(
        self, account: Account, error: str, *, login_required: bool, outcome_unknown: bool = False
    ) -> None:
        record = self._record_for(account)
        failed = record.failed(
            self.clock.now(), error, login_required=login_required, outcome_unknown=outcome_unknown
        )
        self._save_record(account, failed)

    # -- logout / exports -----------------------------------------------------------------
    def logout(self, name: str) -> None:
        account = self.account(name)
        with self.refresh_lock(name):
            self.forget_tokens(account)

    def forget_tokens(self, account: Account) -> None:
        """Delete the tokens and the status record (the caller holds the refresh lock)."""
        self.store(account).delete(f"{account.name}/tokens")
        self._private_records.pop(account.name, None)
        self._last_shared.pop(account.name, None)
        shared = self._shared_store(account)
        if shared is not None:
            shared.delete(f"{account.name}/status")
        self.records.delete(account.name)
        self.exports.forget(account.name)

    def export(self, name: str, fmt: str, path: Path, *, keep_synced: bool) -> None:
        """Under the refresh lock: what is written is the newest, and a later refresh sees the
        new kept file (issue 11 #8)."""
        account = self.account(name)
        with self.refresh_lock(name):
            tokens = self.read_tokens(account)
            if tokens is None:
                raise _no_tokens(name)
            self.exports.export(name, tokens, fmt, path, keep_synced=keep_synced)

    def _exports_hold(self, account: Account, tokens: TokenSet) -> TokenSet:
        """`tokens` (read under the refresh lock) into kept files that hold older ones. Not for
        tokens private to this process (a memory store): they are no news to the files."""
        if self._shares_records(account) and self.exports.stale(account, tokens.times()):
            self.exports.rewrite(account.name, tokens)
        return tokens

    def _catch_up_exports(self, account: Account, times: TokenTimes) -> None:
        """Tokens newer than the kept files hold (another machine refreshed them, or a refresh
        here was killed before writing them): rewrite the files, never failing the caller."""
        if not self._shares_records(account) or not self.exports.stale(account, times):
            return
        try:
            # Briefly: `status` and `token` must not wait out another process's refresh for
            # this (that refresh rewrites the files itself; a later read catches up otherwise).
            with self.refresh_lock(account.name, wait=CATCH_UP_WAIT):
                tokens = self.read_tokens(account)
                if tokens is not None:
                    self._exports_hold(account, tokens)
        except TdguiError as exc:
            log.warning("could not bring the exported token files of %s up to date: %s", account.name, exc)

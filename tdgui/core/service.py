"""Login, refresh (single-flight across processes), status and logout: used by GUI, CLI and API."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tdgui.core import export, flow, fsutil, providers, schedule
from tdgui.core.clock import SYSTEM_CLOCK, Clock
from tdgui.core.config import Account, Config, ExportTarget
from tdgui.core.errors import (
    LoginRequired,
    ProviderError,
    StoredDataError,
    StoreUnavailable,
    TdguiError,
    UsageError,
)
from tdgui.core.fsutil import atomic_write
from tdgui.core.logs import SECRETS
from tdgui.core.providers import Provider
from tdgui.core.stores.base import TokenStore
from tdgui.core.tokens import TokenSet, TokenTimes

if TYPE_CHECKING:
    from tdgui.core.oauth import TokenClient

log = logging.getLogger("tdgui.service")

#: How long a process waits for another one's refresh before giving up.
LOCK_TIMEOUT = 120.0


@dataclass(frozen=True)
class RefreshRecord:
    """Non-secret bookkeeping per account, kept beside the config (not in the token store)."""

    last_refresh_at: float | None = None
    last_refresh_ok: bool | None = None
    last_error: str | None = None
    login_required: bool = False
    #: A copy of the stored tokens' times (no token): status and the scheduler read this
    #: instead of the keyring, saving a D-Bus round trip (and any unlock prompt) per account.
    times: TokenTimes | None = None


def _times_ok(body: object) -> bool:
    if not isinstance(body, dict) or set(body) != {f.name for f in fields(TokenTimes)}:
        return False
    numbers = [body["access_expires_at"], body["access_received_at"], body["login_at"]]
    if body["refresh_expires_at"] is not None:
        numbers.append(body["refresh_expires_at"])
    return all(type(n) in (int, float) and math.isfinite(n) for n in numbers) and (
        type(body["has_refresh_token"]) is bool
    )


def _record_types_ok(record: RefreshRecord) -> bool:
    """The JSON types RefreshRecord promises (a hand-edited or damaged file may break them)."""
    at = record.last_refresh_at
    return (
        (at is None or (type(at) in (int, float) and math.isfinite(at)))
        and (record.last_refresh_ok is None or type(record.last_refresh_ok) is bool)
        and (record.last_error is None or type(record.last_error) is str)
        and type(record.login_required) is bool
    )


@dataclass(frozen=True)
class AccountStatus:
    name: str
    provider: str
    store: str
    state: schedule.AccountState
    access_expires_at: float | None
    #: when the current access token arrived (the countdown's start)
    access_received_at: float | None
    refresh_expires_at: float | None
    login_at: float | None
    last_refresh_at: float | None
    last_refresh_ok: bool | None
    last_error: str | None
    now: float

    def to_json(self) -> dict[str, Any]:
        """The stable `--json` form (documented in the README)."""

        def remaining(at: float | None) -> int | None:
            return None if at is None else int(at - self.now)

        body = asdict(self)
        body.pop("now")
        body["state"] = self.state.value
        body["access_expires_in"] = remaining(self.access_expires_at)
        body["refresh_expires_in"] = remaining(self.refresh_expires_at)
        return body


@dataclass(frozen=True)
class AccountPlan:
    """What the background scheduler needs of one account, from one read of its tokens."""

    name: str
    refresh_at: float | None
    warning_at: float | None
    refresh_expires_at: float | None
    has_tokens: bool
    login_required: bool
    error: str | None = None


class TokenService:
    """The one place that reads, refreshes and writes tokens."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        lead: float = schedule.DEFAULT_LEAD,
        store_override: TokenStore | None = None,
    ) -> None:
        self.config = config or Config()
        self.clock = clock
        self.lead = lead
        self.store_override = store_override
        self._stores: dict[str, TokenStore] = {}

    # -- wiring ---------------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        return self.config.directory

    def account(self, name: str) -> Account:
        return self.config.account(name)

    def provider(self, account: Account) -> Provider:
        return account.resolve_provider(self.directory)

    def store(self, account: Account) -> TokenStore:
        if self.store_override is not None:
            return self.store_override
        return self._open_store(account.store)

    def _open_store(self, kind: str) -> TokenStore:
        """One store object per kind for this service (a keyring store caches its backend)."""
        if kind not in self._stores:
            from tdgui.core.stores import open_store

            self._stores[kind] = open_store(kind)
        return self._stores[kind]

    def secret_store(self, account: Account) -> TokenStore:
        """Client secrets go to the keyring, unless the user chose a disk store for the account."""
        if self.store_override is not None or account.store in ("file", "sql", "keyring"):
            return self.store(account)
        return self._open_store("keyring")

    def client_secret(self, account: Account, provider: Provider) -> str | None:
        if not provider.needs_client_secret:
            return None
        if account.provider == "sandbox" and account.client_id == providers.SANDBOX_SCHWAB_CLIENT_ID:
            return providers.SANDBOX_SCHWAB_CLIENT_SECRET
        secret = self.secret_store(account).read(f"{account.name}/secret")
        if not secret:
            raise UsageError(
                f"no app secret is stored for {account.name!r}: enter it again "
                "(in the app: Edit account; on the command line: `tdgui accounts remove`, "
                "then `accounts add ... --client-secret-stdin`)"
            )
        SECRETS.add(secret)
        return secret

    def set_client_secret(self, account: Account, secret: str) -> None:
        if not secret or any(c.isspace() for c in secret):
            raise UsageError("the client secret must be non-empty and contain no spaces")
        SECRETS.add(secret)
        self.secret_store(account).write(f"{account.name}/secret", secret)

    def token_client(self, account: Account, provider: Provider) -> TokenClient:
        # Imported here: requests + authlib cost ~0.2 s, and `tdgui token` with a valid
        # stored token needs neither.
        from tdgui.core.oauth import TokenClient

        return TokenClient(
            provider,
            account.client_id,
            self.client_secret(account, provider),
            self.clock,
            on_secret=SECRETS.add,
        )

    # -- records --------------------------------------------------------------------------
    def read_tokens(self, account: Account) -> TokenSet | None:
        text = self.store(account).read(f"{account.name}/tokens")
        if text is None:
            return None
        tokens = TokenSet.from_json(text)
        for secret in (tokens.access_token, tokens.refresh_token):
            SECRETS.add(secret)
        return tokens

    def _write_tokens(self, account: Account, tokens: TokenSet) -> None:
        self.store(account).write(f"{account.name}/tokens", tokens.to_json())
        self._sync_exports(account, tokens)

    def _status_path(self, name: str) -> Path:
        return self.directory / "status" / f"{name}.json"

    def refresh_record(self, name: str) -> RefreshRecord:
        try:
            body = json.loads(fsutil.read_private_text(self._status_path(name), fsutil.STATUS_LIMIT))
            if not isinstance(body, dict):
                return RefreshRecord()
            times = body.pop("times", None)
            if times is not None and not _times_ok(times):
                times = None
            record = RefreshRecord(**body, times=TokenTimes(**times) if times else None)
        except FileNotFoundError:
            return RefreshRecord()
        except (OSError, ValueError, TypeError, RecursionError):
            return RefreshRecord()  # bookkeeping only: a damaged file is rebuilt on next write
        if not _record_types_ok(record):
            return RefreshRecord()
        return record

    def _save_record(self, name: str, record: RefreshRecord) -> None:
        try:
            atomic_write(self._status_path(name), json.dumps(asdict(record)))
        except OSError as exc:  # bookkeeping only: an unusable status/ must not fail `token`
            log.warning("could not write the status record of %s: %s", name, exc.strerror or exc)

    @contextmanager
    def _refresh_lock(self, name: str) -> Iterator[None]:
        """Kernel lock (flock on POSIX): released by the kernel if the holder dies."""
        from filelock import Timeout

        # Every token write happens under this lock: keep the config dir itself 0700 too (a
        # pre-existing 0755 one, or one a store created with its parents under a loose umask).
        try:
            with fsutil.kernel_lock(
                self.directory / "locks" / f"{name}.lock", LOCK_TIMEOUT, root=self.directory
            ):
                yield
        except Timeout:
            raise ProviderError(
                f"another tdgui process has been refreshing {name!r} for {LOCK_TIMEOUT:g} s"
            ) from None

    # -- login ----------------------------------------------------------------------------
    def begin_login(self, name: str) -> flow.PendingLogin:
        account = self.account(name)
        provider = self.provider(account)
        self.client_secret(account, provider)  # fail before the browser opens, not after
        pending = flow.begin_login(
            account.name, provider, account.client_id, account.callback_url, self.clock.now()
        )
        SECRETS.add(pending.state)
        SECRETS.add(pending.code_verifier)
        return pending

    def finish_login(self, pending: flow.PendingLogin, redirect_url: str) -> TokenSet:
        """Check the redirect, exchange the code, store the tokens. Errors change nothing."""
        account = self.account(pending.account)
        provider = self.provider(account)
        code = flow.parse_redirect(pending, redirect_url)
        SECRETS.add(code)
        client = self.token_client(account, provider)
        response = client.exchange_code(code, pending.redirect_uri, pending.code_verifier)
        tokens = TokenSet.from_response(response, provider, self.clock.now())
        with self._refresh_lock(account.name):
            self._write_tokens(account, tokens)
            self._save_record(
                account.name,
                RefreshRecord(last_refresh_at=tokens.received_at, last_refresh_ok=True, times=tokens.times()),
            )
        log.info("logged in to %s (%s)", account.name, provider.name)
        return tokens

    # -- tokens ---------------------------------------------------------------------------
    def get_token(self, name: str) -> TokenSet:
        """Tokens with an access token valid for at least the lead time, refreshing if due.

        If a refresh fails for a transient reason while the stored access token is still
        valid, that token is served: a script keeps working through a provider hiccup.
        """
        account = self.account(name)
        provider = self.provider(account)
        tokens = self.read_tokens(account)
        now = self.clock.now()
        if tokens is None:
            raise LoginRequired(f"no tokens stored for {name!r}: run `tdgui login {name}`")
        if not schedule.needs_refresh(tokens, provider, now, self.lead):
            if tokens.access_valid(now):
                return tokens
            raise LoginRequired(f"the refresh token of {name!r} has expired: log in again")
        try:
            return self._refresh(account, provider, tokens, force=False)
        except (ProviderError, fsutil.LockUnavailable):
            if tokens.access_valid(self.clock.now()):
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
        with self._refresh_lock(name):
            current = self.read_tokens(account)
            now = self.clock.now()
            if current is None:
                raise LoginRequired(f"no tokens stored for {name!r}: run `tdgui login {name}`")
            someone_refreshed = seen is not None and current.received_at > seen.received_at
            if force and someone_refreshed:
                return current
            if not force and not schedule.needs_refresh(current, provider, now, self.lead):
                if current.refresh_valid(now) or current.access_valid(now):
                    return current
            if not current.refresh_valid(now) or current.refresh_token is None:
                self._mark_failed(name, "the refresh token has expired", login_required=True)
                raise LoginRequired(f"the refresh token of {name!r} has expired: log in again")
            if not force and self.refresh_record(name).login_required:
                # The provider already refused this grant: asking again with the same dead
                # refresh token only adds failed requests (`refresh --force` still tries).
                raise LoginRequired(f"{name!r} needs a new login (the provider refused the refresh)")
            client = self.token_client(account, provider)
            renew = schedule.renewal_due(current, provider, now)
            try:
                response = client.refresh(current.refresh_token, renew=renew)
            except LoginRequired as exc:
                self._mark_failed(name, str(exc), login_required=True)
                raise
            except TdguiError as exc:
                self._mark_failed(name, str(exc), login_required=False)
                raise
            tokens = TokenSet.from_response(response, provider, self.clock.now(), previous=current)
            self._write_tokens(account, tokens)
            self._save_record(
                name,
                RefreshRecord(last_refresh_at=tokens.received_at, last_refresh_ok=True, times=tokens.times()),
            )
            log.info("refreshed %s", name)
            return tokens

    def _mark_failed(self, name: str, error: str, *, login_required: bool) -> None:
        previous = self.refresh_record(name)
        self._save_record(
            name,
            RefreshRecord(
                last_refresh_at=self.clock.now(),
                last_refresh_ok=False,
                last_error=error,
                login_required=login_required or previous.login_required,
                times=previous.times,
            ),
        )

    # -- status ---------------------------------------------------------------------------
    def status(self, name: str) -> AccountStatus:
        account = self.account(name)
        return self._status_of(account)

    def statuses(self) -> list[AccountStatus]:
        return [self._status_of(a) for a in self.config.accounts()]

    def _status_of(self, account: Account) -> AccountStatus:
        now = self.clock.now()
        record = self.refresh_record(account.name)
        provider = self.provider(account)
        error = record.last_error if record.last_refresh_ok is False else None
        try:
            tokens = self._times(account, record)
        except (StoreUnavailable, StoredDataError) as exc:
            tokens, error = None, str(exc)
            state = schedule.AccountState.ERROR
        else:
            state = schedule.account_state(
                tokens,
                provider,
                now,
                self.lead,
                login_required=record.login_required,
                last_error=error,
            )
        return AccountStatus(
            name=account.name,
            provider=account.provider,
            store=self.store_override.kind if self.store_override else account.store,
            state=state,
            access_expires_at=tokens.access_expires_at if tokens else None,
            access_received_at=tokens.access_received_at if tokens else None,
            refresh_expires_at=tokens.refresh_expires_at if tokens else None,
            login_at=tokens.login_at if tokens else None,
            last_refresh_at=record.last_refresh_at,
            last_refresh_ok=record.last_refresh_ok,
            last_error=error,
            now=now,
        )

    def plans(self) -> list[AccountPlan]:
        """Per account: the next refresh and the next expiry warning (schedule.py), read once."""
        now = self.clock.now()
        plans = []
        for account in self.config.accounts():
            record = self.refresh_record(account.name)
            try:
                tokens = self._times(account, record)
                provider = self.provider(account)
            except TdguiError as exc:
                plans.append(AccountPlan(account.name, None, None, None, False, False, str(exc)))
                continue
            dead = tokens is not None and not tokens.refresh_valid(now) and not tokens.access_valid(now)
            login_required = record.login_required or dead
            plans.append(
                AccountPlan(
                    name=account.name,
                    refresh_at=None
                    if tokens is None or login_required
                    else schedule.next_refresh_at(tokens, provider, self.lead),
                    warning_at=schedule.next_warning_at(tokens, now) if tokens else None,
                    refresh_expires_at=tokens.refresh_expires_at if tokens else None,
                    has_tokens=tokens is not None,
                    login_required=login_required,
                )
            )
        return plans

    def next_refresh_at(self, name: str) -> float | None:
        account = self.account(name)
        record = self.refresh_record(name)
        tokens = self._times(account, record)
        if tokens is None or record.login_required:
            return None
        return schedule.next_refresh_at(tokens, self.provider(account), self.lead)

    def _times(self, account: Account, record: RefreshRecord) -> TokenTimes | None:
        """Token times from the status record when the tokens live in a durable store.

        A memory store (or a store given to this service object) is per process, so the
        record on disk may describe tokens this process does not have: read the store then.
        """
        if self.store_override is None and account.store != "memory" and record.times is not None:
            return record.times
        tokens = self.read_tokens(account)
        return tokens.times() if tokens else None

    # -- logout / exports -----------------------------------------------------------------
    def logout(self, name: str) -> None:
        account = self.account(name)
        with self._refresh_lock(name):
            self.store(account).delete(f"{account.name}/tokens")
            self._status_path(name).unlink(missing_ok=True)

    def remove_account(self, name: str) -> None:
        account = self.account(name)
        self.logout(name)
        self.secret_store(account).delete(f"{account.name}/secret")
        self.config.remove_account(name)

    def export(self, name: str, fmt: str, path: Path, *, keep_synced: bool) -> None:
        account = self.account(name)
        tokens = self.read_tokens(account)
        if tokens is None:
            raise LoginRequired(f"no tokens stored for {name!r}: run `tdgui login {name}`")
        target = ExportTarget(format=fmt, path=str(export.target_path(path)))
        export.write_export(tokens, fmt, Path(target.path))
        if keep_synced:
            kept = (*tuple(e for e in account.exports if e.path != target.path), target)
            self.config.update_account(name, exports=kept)

    def _sync_exports(self, account: Account, tokens: TokenSet) -> None:
        for target in account.exports:
            try:
                export.write_export(tokens, target.format, Path(target.path))
            except TdguiError as exc:
                log.warning("could not update the token file %s: %s", target.path, exc)

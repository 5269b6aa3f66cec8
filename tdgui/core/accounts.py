"""Adding, editing and removing accounts: validate, check the store, secret first, roll back.

The CLI, the Python API and the desktop app all change accounts through this module, so an
account is never half-added (a secret without its account), never inherits another's tokens,
and an edit never sends old tokens or the app secret somewhere the user did not confirm.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from tdgui.core import providers
from tdgui.core.config import Account, sandbox_account
from tdgui.core.errors import TdguiError, UsageError
from tdgui.core.service import TokenService

log = logging.getLogger(__name__)

#: Fields that decide where tokens are valid: a change makes the stored grant worthless there,
#: and the refresh token (and app secret) must not be sent to the new place.
GRANT_FIELDS = (
    "provider",
    "client_id",
    "callback_url",
    "flavor",
    "sandbox_url",
    "authorize_url",
    "token_url",
    "auth_method",
)


@dataclass(frozen=True)
class AccountDraft:
    """What a person types to add an account (CLI flags, dialog fields, API arguments)."""

    name: str
    provider: str
    client_id: str | None = None
    callback_url: str | None = None
    store: str = "keyring"
    flavor: str | None = None
    sandbox_url: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    auth_method: str | None = None
    scopes: tuple[str, ...] = ()
    pkce: bool = True
    remember_device: bool = False

    def to_account(self) -> Account:
        """The validated account; UsageError naming the first thing that is wrong."""
        custom_only = self.authorize_url or self.token_url or self.auth_method or self.scopes
        if self.provider != "custom" and custom_only:
            raise UsageError(
                "--authorize-url, --token-url, --auth-method and --scope are for --provider custom"
            )
        if self.provider != "sandbox" and (self.flavor or self.sandbox_url):
            raise UsageError("--flavor and --sandbox-url are for --provider sandbox")
        if self.provider == "sandbox":
            base = sandbox_account(self.name, self.flavor or "schwab", self.sandbox_url)
            return replace(
                base,
                client_id=self.client_id or base.client_id,
                callback_url=self.callback_url or base.callback_url,
                store=self.store,
                remember_device=self.remember_device,
            ).validate()
        if self.provider in providers.PROVIDER_NAMES and not self.client_id:
            raise UsageError(f"--client-id is required for provider {self.provider}")
        if self.provider in providers.PROVIDER_NAMES and not self.callback_url:
            raise UsageError("--callback-url is required (exactly as registered with the provider)")
        return Account(
            name=self.name,
            provider=self.provider,
            client_id=self.client_id or "",
            callback_url=self.callback_url or "",
            store=self.store,
            authorize_url=self.authorize_url,
            token_url=self.token_url,
            auth_method=self.auth_method,
            scopes=tuple(self.scopes),
            pkce=self.pkce,
            remember_device=self.remember_device,
        ).validate()


#: Under the config dir: one 0700 dir per account that remembers its device (cookies only).
DEVICES_DIRNAME = "devices"


def device_dir(config_dir: Path, name: str) -> Path:
    """Where the login view keeps `name`'s cookies when it remembers the device. Never shared
    between accounts (account names are single path components, ACCOUNT_NAME)."""
    return config_dir / DEVICES_DIRNAME / name


def wipe_device(config_dir: Path, name: str) -> bool:
    """Wipe `name`'s remembered device (its cookies); True if there was one."""
    path = device_dir(config_dir, name)
    if not path.exists():
        return False
    shutil.rmtree(path)
    log.info("forgot the remembered device of %s", name)
    return True


@dataclass(frozen=True)
class EditResult:
    """What an edit did to the stored tokens, for the caller to tell the user."""

    account: Account
    #: the tokens (and secret) went to the account's new store
    moved: bool = False
    #: the tokens were deleted: they are not valid where the account now points
    dropped: bool = False


class AccountManager:
    """Account changes over one TokenService (its config, stores and locks)."""

    def __init__(self, service: TokenService) -> None:
        self.service = service

    @property
    def config_dir(self) -> Path:
        return self.service.directory

    def needs_secret(self, account: Account) -> bool:
        """Whether the user must supply an app secret for this account (the sandbox has its own)."""
        provider = self.service.provider(account)
        return provider.needs_client_secret and provider.builtin_client_secret(account.client_id) is None

    @staticmethod
    def check_entry(account: Account, old: Account | None = None) -> None:
        """Rules for what a person types, beyond Account.validate(): checked when an account is
        added, and on an edit for the fields it changes. Kept out of validate() so that an
        accounts.json written by an older tdgui still loads (issue 14, defect 8)."""
        if old is None or (old.callback_url, old.provider) != (account.callback_url, account.provider):
            providers.check_callback_host(account.callback_url, account.provider)
        if (old is None or old.client_id != account.client_id) and not (
            account.client_id.isascii() and account.client_id.isprintable()
        ):
            # RFC 6749 Appendix A.1: client_id = *VSCHAR (%x20-7E); anything else is a bad copy
            # (a 32-letter Cyrillic string is not a Schwab app key).
            raise UsageError(
                "the app key (client id) has characters that are not plain ASCII letters, digits "
                "or punctuation: copy it again from the developer portal"
            )

    def add(
        self,
        account: Account,
        secret: str | None = None,
        *,
        require_secret: bool = True,
        forget_previous: bool = True,
    ) -> Account:
        """Add `account`; nothing is written if anything is wrong (secret first, then the config).

        `forget_previous`: delete what an earlier account of this name left in the store. Off
        only for pyTD's `api()`, whose names are derived from provider, key and callback, so what
        is found under the name belongs to the same app.
        """
        account.validate()
        self.check_entry(account)
        service = self.service
        provider = service.provider(account)
        if secret is not None and not provider.needs_client_secret:
            raise UsageError(
                f"provider {account.provider} takes no client secret: drop --client-secret-stdin"
            )
        if require_secret and secret is None and self.needs_secret(account):
            raise UsageError(f"provider {account.provider} needs the app secret: pass --client-secret-stdin")
        # Under the config lock (taken first: a shared or damaged config dir is refused before
        # any store is touched): a second `accounts add` of the same name waits, then finds the
        # account and leaves the winner's secret alone (its own was never written).
        with service.config.editing() as data:
            if account.name in data.accounts:
                raise UsageError(f"an account named {account.name!r} already exists")
            # Fail now, not at the end of the first login, if the chosen store cannot be used
            # (e.g. no Secret Service on a headless machine: exit 5, naming --store file).
            service.store(account).check_available()
            if forget_previous:
                # Debris of an earlier account of this name (removed while a login finished, or a
                # crash mid-removal) must not become this account's grant.
                with service.refresh_lock(account.name):
                    service.forget_tokens(account)
            if secret is not None:
                service.set_client_secret(account, secret)
            data.accounts[account.name] = account
            try:
                # Saved here, inside the lock, so a failed save can still roll the secret back.
                service.config.save(data)
            except BaseException:
                if secret is not None:
                    with contextlib.suppress(TdguiError):
                        service.secret_store(account).delete(f"{account.name}/secret")
                raise
        return account

    def edit(self, name: str, account: Account, secret: str | None = None) -> EditResult:
        """Replace account `name` by `account`; its tokens move with a store change, and are
        dropped (the user logs in again) when the account now points at another grant."""
        account.validate()
        if account.name != name:
            raise UsageError("an account cannot be renamed: add a new one and remove this one")
        service = self.service
        old = service.account(name)
        self.check_entry(account, old)
        provider = service.provider(account)
        if secret is not None and not provider.needs_client_secret:
            raise UsageError(f"provider {account.provider} takes no client secret")
        regranted = any(getattr(old, f) != getattr(account, f) for f in GRANT_FIELDS)
        if regranted and secret is None and self.needs_secret(account):
            # The old secret belongs to the old app or endpoint: never send it somewhere new.
            raise UsageError("enter the app secret again: the app key or the endpoint changed")
        moved = dropped = False
        old_store, new_store = service.store(old), service.store(account)
        new_store.check_available()
        with service.refresh_lock(name):
            tokens_text = old_store.read(f"{name}/tokens")
            old_secret = None if secret is not None else service.secret_store(old).read(f"{name}/secret")
            if secret is not None:
                service.set_client_secret(account, secret)
            elif old_secret and service.secret_store(old) is not service.secret_store(account):
                service.secret_store(account).write(f"{name}/secret", old_secret)
            if regranted:
                dropped = tokens_text is not None
                service.forget_tokens(old)
            elif old_store is not new_store and tokens_text is not None:
                new_store.write(f"{name}/tokens", tokens_text)
                old_store.delete(f"{name}/tokens")
                moved = True
            if service.secret_store(old) is not service.secret_store(account):
                service.secret_store(old).delete(f"{name}/secret")
            service.config.add_account(account, replace_existing=True)
        log.info(
            "edited account %s (tokens %s)", name, "moved" if moved else "dropped" if dropped else "kept"
        )
        return EditResult(account, moved=moved, dropped=dropped)

    def remove(self, name: str) -> list[Path]:
        """Remove the account with its tokens, status, app secret and the token files exported for
        it (they hold a working refresh token). Returns the exported files that were deleted."""
        service = self.service
        service.account(name)  # an unknown name: AccountNotFound before any lock is taken
        # Under the refresh lock, so a login that finishes now cannot store its tokens after us;
        # the account is read there too, so an export registered meanwhile is deleted with it.
        with service.refresh_lock(name):
            account = service.account(name)
            service.forget_tokens(account)
            service.secret_store(account).delete(f"{account.name}/secret")
            removed = _delete_exports(account)
            if account.store == "postgres":
                from tdgui.core.sharing import forget_shared

                forget_shared(service, account)  # the shared description, and this machine's key
            service.config.remove_account(name)
            wipe_device(service.config.directory, name)
        return removed

    def logout(self, name: str, *, forget_device: bool = False) -> list[Path]:
        """Delete the tokens, and the token files exported for the account (they would keep working).
        The exports stay registered: the next login writes them again. `forget_device` also
        wipes the login view's remembered cookies (the broker asks for a security code again)."""
        self.service.logout(name)
        # Read after the tokens are gone: an export registered until then is deleted too, and
        # none can be written later (there is nothing left to export).
        account = self.service.account(name)
        if forget_device:
            wipe_device(self.service.config.directory, name)
        return _delete_exports(account)


def _delete_exports(account: Account) -> list[Path]:
    """Delete the token files exported for `account` (they hold a working refresh token)."""
    removed = []
    for target in account.exports:
        path = Path(target.path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed

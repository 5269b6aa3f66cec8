"""Which store, secret and token client an account uses: the service's wiring, kept apart from
what the service does with them (tdgui.core.service)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tdgui.core.clock import Clock
from tdgui.core.config import Account, Config
from tdgui.core.environment import HttpSettings
from tdgui.core.errors import UsageError
from tdgui.core.logs import SECRETS
from tdgui.core.providers import Provider
from tdgui.core.stores.base import TokenStore

if TYPE_CHECKING:
    from tdgui.core.oauth import TokenClient


class StoreWiring:
    """Mixed into TokenService, whose constructor sets these attributes."""

    config: Config
    clock: Clock
    http: HttpSettings
    store_override: TokenStore | None
    _stores: dict[str, TokenStore]

    # -- wiring ---------------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        return self.config.directory

    def account(self, name: str) -> Account:
        return self.config.account(name)

    def provider(self, account: Account) -> Provider:
        return account.resolve_provider(self.directory, default_sandbox_url=self.config.sandbox_url)

    def store(self, account: Account) -> TokenStore:
        if self.store_override is not None:
            return self.store_override
        if account.store == "postgres":
            return self._postgres_store(account)
        return self.open_store(account.store)

    def _postgres_store(self, account: Account) -> TokenStore:
        """A postgres account's own store, one object per database settings: an edit that keeps
        them (a new callback URL) gets the same object, so it does not "move" the tokens from
        the database to itself and delete them (AccountService.edit compares stores by identity)."""
        where = (
            account.db_url,
            account.db_schema,
            account.db_key_id,
            account.db_secrets,
            account.db_allow_insecure,
        )
        cache_key = f"postgres:{account.name}:{where!r}"
        if cache_key not in self._stores:
            from tdgui.core.db_account import open_postgres

            keyring = None if account.db_secrets == "file" else self.open_store("keyring")
            self._stores[cache_key] = open_postgres(account, self.directory, keyring)
        return self._stores[cache_key]

    def _shared_store(self, account: Account) -> TokenStore | None:
        """The store every machine shares for this account (status records live there too)."""
        if self.store_override is None and account.store == "postgres":
            return self.store(account)
        return None

    def open_store(self, kind: str) -> TokenStore:
        """One store object per kind for this service, under its own config directory."""
        if kind not in self._stores:
            from tdgui.core.stores import open_store

            self._stores[kind] = open_store(kind, self.directory)
        return self._stores[kind]

    def secret_store(self, account: Account) -> TokenStore:
        """Client secrets go to the keyring, unless the user chose a disk store for the account."""
        if self.store_override is not None or account.store in ("file", "sql", "keyring", "postgres"):
            return self.store(account)
        return self.open_store("keyring")

    def store_kind(self, account: Account) -> str:
        return self.store_override.kind if self.store_override else account.store

    def client_secret(self, account: Account, provider: Provider) -> str | None:
        if not provider.needs_client_secret:
            return None
        builtin = provider.builtin_client_secret(account.client_id)
        if builtin is not None:
            return builtin
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
            timeout=self.http.timeout,
            backoff=self.http.backoff,
            deadline=self.http.deadline,
            max_body=self.http.max_body,
            on_secret=SECRETS.add,
        )

"""`tdgui share` and `tdgui join`: an account's records moved into PostgreSQL, used on other machines."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tdgui.core import localtls
from tdgui.core.accounts import GRANT_FIELDS
from tdgui.core.config import Account
from tdgui.core.db_account import DbSecrets, delete_secrets, save_secrets
from tdgui.core.errors import LoginRequired, Reason, StoredDataError, UsageError
from tdgui.core.fsutil import atomic_write, read_private_text
from tdgui.core.record_crypto import RecordKey

if TYPE_CHECKING:
    from tdgui.core.service import TokenService
    from tdgui.core.stores.base import TokenStore
    from tdgui.core.stores.postgres import PostgresStore

log = logging.getLogger(__name__)

#: Format of the `NAME/account` record: the provider settings another machine needs.
SHARED_ACCOUNT_VERSION = 1
#: What travels: everything that decides where tokens come from, nothing machine-local
#: (exports are paths on the desktop; the store settings are each machine's own).
_TRAVELS = (*GRANT_FIELDS, "scopes", "pkce")
_CA_LIMIT = 64 * 1024


@dataclass(frozen=True)
class DbChoice:
    """The database settings `share` and `join` take from the user."""

    url: str
    password: str | None = None
    schema: str | None = None
    allow_insecure: bool = False
    secrets: str = "keyring"


def _open(choice: DbChoice, key: RecordKey) -> PostgresStore:
    from tdgui.core.stores.postgres import DEFAULT_SCHEMA, PostgresStore

    store = PostgresStore(
        choice.url,
        key=key,
        password=choice.password,
        schema=choice.schema or DEFAULT_SCHEMA,
        allow_insecure=choice.allow_insecure,
    )
    store.check_available()  # StoreUnavailable (exit 5) naming the database, before any change
    return store


def _postgres_account(account: Account, choice: DbChoice, key: RecordKey) -> Account:
    return replace(
        account,
        store="postgres",
        db_url=choice.url,
        db_schema=choice.schema,
        db_key_id=key.key_id.hex(),
        db_secrets=choice.secrets,
        db_allow_insecure=choice.allow_insecure,
    ).validate()


def share(service: TokenService, name: str, choice: DbChoice, *, replace_existing: bool = False) -> RecordKey:
    """Move `name`'s tokens, app secret and status into the database; returns the new key.

    Nothing changes locally until every record is in the database; the local copies are
    deleted only after accounts.json names the database.
    """
    account = service.account(name)
    if account.store == "postgres":
        raise UsageError(f"{name!r} is already shared ({account.db_url}); `tdgui join` it elsewhere")
    if account.store == "memory":
        raise UsageError(f"{name!r} keeps its tokens in one process only (memory store): nothing to share")
    key = RecordKey.generate()
    store = _open(choice, key)
    shared_account = _postgres_account(account, choice, key)
    provider = service.provider(account)
    with service.refresh_lock(name):  # the local lock: no refresh on this machine meanwhile
        tokens = service.store(account).read(f"{name}/tokens")
        if tokens is None:
            raise LoginRequired(f"no tokens stored for {name!r}: run `tdgui login {name}` first")
        secret = None
        if provider.needs_client_secret and provider.builtin_client_secret(account.client_id) is None:
            secret = service.secret_store(account).read(f"{name}/secret")
        record = service.refresh_record(name)
        if replace_existing:
            store.delete_account(name)
        elif _holds(store, name):
            raise UsageError(
                f"{store.where} already holds an account {name!r} (shared before): pass --replace "
                "to start over (machines that joined with the old key must join again)",
                reason=Reason.ALREADY_SHARED,
            )
        description = _describe(account, service.directory, provider.ca_file)
        try:
            store.write(f"{name}/account", description)
            if secret is not None:
                store.write(f"{name}/secret", secret)
            from tdgui.core.records import record_to_json

            store.write(f"{name}/status", record_to_json(record))
            store.write(f"{name}/tokens", tokens)
            keyring = keyring_or_none(service, choice)
            save_secrets(service.directory, name, choice.secrets, DbSecrets(key, choice.password), keyring)
            service.config.update_account(name, **_db_fields(shared_account))
        except BaseException:
            # Leave no half-shared account behind: the desktop's copy is still the only one.
            store.delete_account(name)
            if service.account(name).store != "postgres":
                delete_secrets(service.directory, name, choice.secrets, keyring_or_none(service, choice))
            raise
        # Only now, with accounts.json naming the database: drop the local copies.
        service.store(account).delete(f"{name}/tokens")
        if secret is not None:
            service.secret_store(account).delete(f"{name}/secret")
        service.records.delete(name)
    log.info("shared %s into %s", name, store.where)
    return key


def keyring_or_none(service: TokenService, choice: DbChoice) -> TokenStore | None:
    return None if choice.secrets == "file" else service.open_store("keyring")


def _holds(store: PostgresStore, name: str) -> bool:
    from tdgui.core.record_crypto import RecordDecryptError

    try:
        return any(store.read(f"{name}/{part}") is not None for part in ("account", "tokens", "status"))
    except RecordDecryptError:
        return True  # another key's rows (a share from before) or damaged ones


def _db_fields(account: Account) -> dict[str, Any]:
    return {
        "store": account.store,
        "db_url": account.db_url,
        "db_schema": account.db_schema,
        "db_key_id": account.db_key_id,
        "db_secrets": account.db_secrets,
        "db_allow_insecure": account.db_allow_insecure,
    }


def _describe(account: Account, config_dir: Path, ca_file: str | None) -> str:
    body: dict[str, Any] = {"version": SHARED_ACCOUNT_VERSION}
    body["account"] = {k: v for k, v in account.to_dict().items() if k in _TRAVELS}
    body["sandbox_ca"] = None
    if account.provider == "sandbox" and ca_file:
        # The other machine must trust the sandbox's TLS certificate: its CA travels along
        # (a public certificate, never the CA's key).
        body["sandbox_ca"] = read_private_text(Path(ca_file), _CA_LIMIT)
    return json.dumps(body)


def join(service: TokenService, name: str, choice: DbChoice, key: RecordKey) -> Account:
    """Create `name` here from its records in the database. Nothing is written locally unless
    the account, its tokens and status open with `key`."""
    if service.config.find(name) is not None:
        raise UsageError(f"an account named {name!r} already exists on this machine")
    store = _open(choice, key)
    text = store.read(f"{name}/account")  # WrongKey / RecordDecryptError: typed, exit 5
    if text is None:
        raise UsageError(
            f"{store.where} holds no shared account {name!r}: run `tdgui share {name}` first",
            reason=Reason.NOT_SHARED,
        )
    if store.read(f"{name}/tokens") is None:
        raise LoginRequired(
            f"{store.where} holds no tokens for {name!r}: log in on the desktop",
            reason=Reason.NO_SHARED_TOKENS,
        )
    store.read(f"{name}/status")
    account, ca_pem = _parse_description(name, text, store.where)
    account = _postgres_account(account, choice, key)
    if ca_pem is not None:
        _install_sandbox_ca(service.directory, ca_pem)
    keyring = keyring_or_none(service, choice)
    save_secrets(service.directory, name, choice.secrets, DbSecrets(key, choice.password), keyring)
    try:
        service.config.add_account(account)
    except BaseException:
        delete_secrets(service.directory, name, choice.secrets, keyring)
        raise
    log.info("joined %s from %s", name, store.where)
    return account


def _parse_description(name: str, text: str, where: str) -> tuple[Account, str | None]:
    try:
        body = json.loads(text)
        if body.get("version") != SHARED_ACCOUNT_VERSION:
            raise StoredDataError(
                f"the shared account {name!r} in {where} was written by a newer tdgui: update tdgui"
            )
        fields = {k: v for k, v in body["account"].items() if k in _TRAVELS}
        account = Account.from_dict({**fields, "name": name})
        ca = body.get("sandbox_ca")
        if ca is not None and not isinstance(ca, str):
            raise TypeError
    except StoredDataError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, UsageError):
        raise StoredDataError(f"the shared account {name!r} in {where} is damaged: share it again") from None
    return account, ca


def _install_sandbox_ca(config_dir: Path, pem: str) -> None:
    """Trust the sandbox the account points at: its CA where sandbox accounts look for it."""
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise StoredDataError("the sandbox CA in the shared account is not a certificate") from None
    path = localtls.ca_file(localtls.local_tls_dir(config_dir))
    try:
        present = read_private_text(path, _CA_LIMIT)
    except FileNotFoundError:
        present = None
    if present is not None and present != pem:
        raise UsageError(
            f"this machine already has another sandbox CA ({path}): join with another config "
            "directory (TD_CONFIG_DIR) or remove that sandbox state first"
        )
    if present is None:
        atomic_write(path, pem)


def forget_shared(service: TokenService, account: Account) -> None:
    """For `accounts remove`: delete the shared account's description from the database
    (its tokens, secret and status went already) and this machine's key and password."""
    service.store(account).delete(f"{account.name}/account")
    keyring = None if account.db_secrets == "file" else service.open_store("keyring")
    delete_secrets(service.directory, account.name, account.db_secrets, keyring)

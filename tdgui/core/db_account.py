"""A postgres account's local secrets (record key, database password) and its store, built per account."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tdgui.core.errors import Reason, StoredDataError, UsageError
from tdgui.core.fsutil import STATUS_LIMIT, atomic_write, read_private_text
from tdgui.core.logs import SECRETS
from tdgui.core.record_crypto import RecordKey

if TYPE_CHECKING:
    from tdgui.core.config import Account
    from tdgui.core.stores.base import TokenStore
    from tdgui.core.stores.postgres import PostgresStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DbSecrets:
    """What a machine needs to use a shared account besides its URL: never in accounts.json."""

    key: RecordKey
    password: str | None = None


def secrets_file(config_dir: Path, name: str) -> Path:
    """`db/NAME.json` (0600, in a 0700 dir) for an account whose db_secrets is "file"."""
    return config_dir / "db" / f"{name}.json"


def save_secrets(
    config_dir: Path, name: str, where: str, secrets: DbSecrets, keyring: TokenStore | None
) -> None:
    """Keep the key (and password) in the keyring or in the 0600 file, as the account says."""
    if where == "file":
        body = {"key": secrets.key.encode(), "password": secrets.password}
        atomic_write(secrets_file(config_dir, name), json.dumps(body) + "\n")
        return
    if keyring is None:
        raise UsageError(
            "the keyring is needed to keep the database key (or use --db-secrets file)",
            reason=Reason.KEYRING_NEEDED,
        )
    keyring.write(f"{name}/dbkey", secrets.key.encode())
    if secrets.password is not None:
        keyring.write(f"{name}/dbpassword", secrets.password)
    else:
        keyring.delete(f"{name}/dbpassword")


def load_secrets(config_dir: Path, account: Account, keyring: TokenStore | None) -> DbSecrets:
    """The account's key and password; StoredDataError if the key is missing or does not match."""
    name = account.name
    if (account.db_secrets or "keyring") == "file":
        path = secrets_file(config_dir, name)
        try:
            body = json.loads(read_private_text(path, STATUS_LIMIT))
            key_text, password = body["key"], body.get("password")
            if not isinstance(key_text, str) or not (password is None or isinstance(password, str)):
                raise TypeError
        except FileNotFoundError:
            raise StoredDataError(
                f"the database key of {name!r} is missing ({path}): join again with "
                f"`tdgui join {name} --db URL --key-stdin`"
            ) from None
        except (OSError, ValueError, TypeError, KeyError):
            raise StoredDataError(f"{path} is damaged: join {name!r} again") from None
    else:
        if keyring is None:
            raise UsageError("the keyring is needed to read the database key", reason=Reason.KEYRING_NEEDED)
        key_text = keyring.read(f"{name}/dbkey")
        if key_text is None:
            raise StoredDataError(
                f"the database key of {name!r} is not in the keyring: join again with "
                f"`tdgui join {name} --db URL --key-stdin`"
            )
        password = keyring.read(f"{name}/dbpassword")
    try:
        key = RecordKey.parse(key_text)
    except UsageError as exc:
        raise StoredDataError(f"the stored database key of {name!r} is damaged ({exc})") from None
    if key.key_id.hex() != account.db_key_id:
        raise StoredDataError(
            f"the stored database key of {name!r} is not the one the account was shared with: "
            "join again with the key `tdgui share` printed"
        )
    SECRETS.add(password)
    return DbSecrets(key, password)


def delete_secrets(config_dir: Path, name: str, where: str | None, keyring: TokenStore | None) -> None:
    if (where or "keyring") == "file":
        secrets_file(config_dir, name).unlink(missing_ok=True)
    elif keyring is not None:
        keyring.delete(f"{name}/dbkey")
        keyring.delete(f"{name}/dbpassword")


def open_postgres(account: Account, config_dir: Path, keyring: TokenStore | None) -> PostgresStore:
    """The store of a postgres account (its URL, schema, key and password)."""
    from tdgui.core.stores.postgres import DEFAULT_SCHEMA, PostgresStore

    if account.store != "postgres" or not account.db_url:
        raise UsageError(f"{account.name!r} is not a postgres account")
    secrets = load_secrets(config_dir, account, keyring)
    return PostgresStore(
        account.db_url,
        key=secrets.key,
        password=secrets.password,
        schema=account.db_schema or DEFAULT_SCHEMA,
        allow_insecure=account.db_allow_insecure,
    )

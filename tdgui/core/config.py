"""Accounts and settings (no secrets) in the platform config dir, as versioned JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tdgui.core import paths, providers
from tdgui.core.errors import ConfigError, UsageError
from tdgui.core.fsutil import CONFIG_LIMIT, atomic_write, check_not_shared, kernel_lock, read_private_text
from tdgui.core.providers import Provider
from tdgui.core.stores import STORE_KINDS

ACCOUNTS_VERSION = 1
ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EXPORT_FORMATS = ("schwab-py", "tda-api", "json")
#: Where a postgres account's record key and database password live (keyring by default).
DB_SECRETS = ("keyring", "file")
DB_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
DB_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DB_FIELDS = ("db_url", "db_schema", "db_key_id", "db_secrets", "db_allow_insecure")


@dataclass(frozen=True)
class ExportTarget:
    format: str
    path: str


@dataclass(frozen=True)
class Account:
    """One login profile. Never holds a secret: the client secret lives in the token store."""

    name: str
    provider: str
    client_id: str
    callback_url: str
    store: str = "keyring"
    #: sandbox only: which broker it emulates, and where it runs (None: TD_SANDBOX_URL / default).
    flavor: str | None = None
    sandbox_url: str | None = None
    #: custom only.
    authorize_url: str | None = None
    token_url: str | None = None
    auth_method: str | None = None
    scopes: tuple[str, ...] = ()
    pkce: bool = True
    #: token files rewritten after every refresh (`tdgui export --keep-synced`).
    exports: tuple[ExportTarget, ...] = ()
    #: postgres only (`tdgui share` / `tdgui join` set them): the connection URL (never with a
    #: password), the schema, the record key's id (hex; the key itself is never here), where
    #: the key and the optional database password live ("keyring" or "file": a 0600 file
    #: under the config dir), and whether a weak-TLS URL to another machine was allowed.
    db_url: str | None = None
    db_schema: str | None = None
    db_key_id: str | None = None
    db_secrets: str | None = None
    db_allow_insecure: bool = False
    #: keep the login view's cookies between logins (docs/providers.md: no security code
    #: every week); off by default. Where: tdgui.core.accounts.device_dir.
    remember_device: bool = False

    def validate(self) -> Account:
        if not ACCOUNT_NAME.fullmatch(self.name):
            raise UsageError(
                f"invalid account name {self.name!r}: use only the letters A-Z and a-z (no accented "
                "letters), digits, '.', '_' or '-', starting with a letter or digit"
            )
        if self.provider not in providers.PROVIDER_NAMES:
            raise UsageError(
                f"unknown provider {self.provider!r}: choose one of " + ", ".join(providers.PROVIDER_NAMES)
            )
        if self.store not in STORE_KINDS:
            raise UsageError(f"unknown store {self.store!r}: choose one of {', '.join(STORE_KINDS)}")
        if not self.client_id or any(c.isspace() for c in self.client_id):
            raise UsageError("the client id (app key) must be non-empty and contain no spaces")
        providers.check_callback_url(self.callback_url, self.provider)
        if self.provider == "sandbox" and (self.flavor or "schwab") not in providers.SANDBOX_FLAVORS:
            raise UsageError("sandbox flavor must be schwab or tdameritrade")
        if self.provider == "custom":
            if not (self.authorize_url and self.token_url):
                raise UsageError("a custom provider needs --authorize-url and --token-url")
            self.resolve_provider(None)
        for target in self.exports:
            if target.format not in EXPORT_FORMATS:
                raise UsageError(f"unknown export format {target.format!r}")
        self._validate_db()
        return self

    def _validate_db(self) -> None:
        if self.store != "postgres":
            if self.db_url or self.db_schema or self.db_key_id or self.db_secrets or self.db_allow_insecure:
                raise UsageError("database settings (db_*) belong to postgres accounts only")
            return
        if not (self.db_url and self.db_key_id):
            raise UsageError(
                "a postgres account is made by `tdgui share NAME --db URL` (desktop) or "
                "`tdgui join NAME --db URL --key-stdin` (other machines)"
            )
        from tdgui.core.stores._pg_conninfo import parse_url

        parse_url(self.db_url, allow_insecure=self.db_allow_insecure)
        if not DB_KEY_ID.fullmatch(self.db_key_id):
            raise UsageError("db_key_id must be 16 lower-case hex digits")
        if self.db_schema is not None and not DB_SCHEMA.fullmatch(self.db_schema):
            raise UsageError(f"invalid schema name {self.db_schema!r}: use lower-case letters, digits and _")
        if (self.db_secrets or "keyring") not in DB_SECRETS:
            raise UsageError(f"db_secrets must be one of {', '.join(DB_SECRETS)}")

    def resolve_provider(
        self, config_dir: Path | None, *, default_sandbox_url: str | None = None
    ) -> Provider:
        """The provider profile this account talks to (`default_sandbox_url`: TD_SANDBOX_URL)."""
        if self.provider == "schwab":
            return providers.schwab()
        if self.provider == "tdameritrade":
            return providers.tdameritrade()
        if self.provider == "sandbox":
            base = providers.sandbox_base_url(self.sandbox_url, default_sandbox_url)
            return providers.sandbox_profile(self.flavor or "schwab", base, config_dir or paths.config_dir())
        return providers.custom(
            authorize_url=self.authorize_url or "",
            token_url=self.token_url or "",
            auth_method=self.auth_method or "client_secret_basic",
            scopes=self.scopes,
            pkce=self.pkce,
        )

    def fingerprint(self) -> str:
        """Everything that decides where this account's tokens come from (not its exports)."""
        import hashlib

        body = self.to_dict()
        body.pop("exports")
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["scopes"] = list(self.scopes)
        body["exports"] = [asdict(e) for e in self.exports]
        if self.store != "postgres":
            # Only postgres accounts carry db_* fields: other accounts' JSON (accounts.json,
            # `accounts list --json`) stays exactly as before, readable by older versions.
            for name in DB_FIELDS:
                body.pop(name)
        if not self.remember_device:
            # Written only when on: an older tdgui reading this file refuses unknown fields.
            del body["remember_device"]
        return body

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Account:
        if not isinstance(body, dict):
            raise ConfigError("invalid account entry: not a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(body) - known
        if unknown:
            raise ConfigError(f"unknown account fields: {', '.join(sorted(unknown))}")
        _check_account_types(body)
        try:
            values = dict(body)
            values["scopes"] = tuple(body.get("scopes") or ())
            values["exports"] = tuple(ExportTarget(**e) for e in body.get("exports") or ())
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"invalid account entry: {exc}") from None


def _check_account_types(body: dict[str, Any]) -> None:
    """ConfigError unless every field has its JSON type (validate() and the stores assume it)."""

    def bad(key: str, what: str) -> ConfigError:
        return ConfigError(f"invalid account entry: {key} must be {what}")

    for key in ("name", "provider", "client_id", "callback_url", "store"):
        if key in body and not isinstance(body[key], str):
            raise bad(key, "text")
    for key in (
        "flavor",
        "sandbox_url",
        "authorize_url",
        "token_url",
        "auth_method",
        "db_url",
        "db_schema",
        "db_key_id",
        "db_secrets",
    ):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise bad(key, "text or null")
    for key in ("pkce", "db_allow_insecure", "remember_device"):
        if key in body and not isinstance(body[key], bool):
            raise bad(key, "true or false")
    scopes = body.get("scopes")
    if scopes is not None and not (isinstance(scopes, list) and all(isinstance(x, str) for x in scopes)):
        raise bad("scopes", "a list of text")
    exports = body.get("exports")
    if exports is not None and not (
        isinstance(exports, list)
        and all(
            isinstance(e, dict)
            and set(e) == {"format", "path"}
            and all(isinstance(v, str) for v in e.values())
            for e in exports
        )
    ):
        raise bad("exports", 'a list of {"format": ..., "path": ...}')


def sandbox_account(name: str, flavor: str = "schwab", sandbox_url: str | None = None) -> Account:
    """An account on the built-in sandbox with its demo app, ready to log in."""
    client_id = providers.SANDBOX_SCHWAB_CLIENT_ID if flavor == "schwab" else providers.SANDBOX_TDA_CLIENT_ID
    return Account(
        name=name,
        provider="sandbox",
        client_id=client_id,
        callback_url=providers.SANDBOX_CALLBACK_URL,
        flavor=flavor,
        sandbox_url=sandbox_url,
    ).validate()


@dataclass(frozen=True)
class Settings:
    """Desktop-app preferences."""

    start_minimized: bool = False
    launch_at_login: bool = False
    refresh_lead_seconds: int = 300
    notifications: bool = True
    #: "log in again soon" this long before the refresh token dies, and again (0: off) (issue 14)
    login_warning_seconds: int = 24 * 3600
    login_second_warning_seconds: int = 3600

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Settings:
        """Known fields of the right type; a wrong-typed preference falls back to its default."""
        if not isinstance(body, dict):
            raise ConfigError("invalid settings: not a JSON object")
        defaults = cls()
        return cls(
            **{
                f.name: body[f.name]
                for f in fields(cls)
                if f.name in body and type(body[f.name]) is type(getattr(defaults, f.name))
            }
        )


@dataclass
class ConfigFile:
    accounts: dict[str, Account] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)


class Config:
    """Reads and writes `accounts.json`; every change re-reads first, so processes don't clobber."""

    def __init__(self, directory: Path | None = None, *, sandbox_url: str | None = None) -> None:
        self.directory = directory or paths.config_dir()
        #: where sandbox accounts without a URL of their own find the emulator (TD_SANDBOX_URL)
        self.sandbox_url = sandbox_url

    @property
    def path(self) -> Path:
        return self.directory / "accounts.json"

    def _lock(self) -> Any:
        # 0600 whatever the umask; a read-only dir or a planted non-file: LockUnavailable (exit 5).
        return kernel_lock(self.directory / ".accounts.lock", 10)

    def load(self) -> ConfigFile:
        check_not_shared(self.directory)  # a planted accounts.json could name any token URL
        try:
            text = read_private_text(self.path, CONFIG_LIMIT)  # FIFO/device/huge: refused, no hang
        except FileNotFoundError:
            return ConfigFile()
        except UnicodeDecodeError:
            raise ConfigError(f"{self.path} is damaged (not UTF-8 text); fix or remove it") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            body = json.loads(text)
            version = body.get("version") if isinstance(body, dict) else None
            if type(version) is not int or version != ACCOUNTS_VERSION:
                raise ValueError("unknown version")
            entries = body.get("accounts", [])
            if not isinstance(entries, list):
                raise ValueError("accounts is not a list")
            accounts = {}
            for entry in entries:
                account = Account.from_dict(entry)
                try:
                    account.validate()
                except ConfigError:
                    raise
                except UsageError as exc:
                    raise ConfigError(
                        f"{self.path}: account {account.name!r} is invalid ({exc}); fix or remove it"
                    ) from None
                accounts[account.name] = account
            settings = Settings.from_dict(body.get("settings", {}))
        except RecursionError:
            raise ConfigError(f"{self.path} is damaged (nested too deeply); fix or remove it") from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{self.path} is damaged ({exc}); fix or remove it") from None
        return ConfigFile(accounts=accounts, settings=settings)

    def save(self, data: ConfigFile) -> None:
        body = {
            "version": ACCOUNTS_VERSION,
            "accounts": [a.to_dict() for a in data.accounts.values()],
            "settings": asdict(data.settings),
        }
        try:
            atomic_write(self.path, json.dumps(body, indent=2) + "\n")
        except OSError as exc:  # read-only or foreign config dir: a clear error, not a traceback
            raise ConfigError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def accounts(self) -> list[Account]:
        return list(self.load().accounts.values())

    def find(self, name: str) -> Account | None:
        return self.load().accounts.get(name)

    def account(self, name: str) -> Account:
        found = self.find(name)
        if found is None:
            raise UsageError(f"no account named {name!r} (see `tdgui accounts list`)")
        return found

    @contextmanager
    def editing(self) -> Iterator[ConfigFile]:
        """Read-modify-write under the config lock; the changes are saved when the block ends."""
        check_not_shared(self.directory)  # refused as such (exit 2), before its lock is tried
        with self._lock():
            data = self.load()
            yield data
            self.save(data)

    def add_account(self, account: Account, *, replace_existing: bool = False) -> None:
        account.validate()
        with self.editing() as data:
            if account.name in data.accounts and not replace_existing:
                raise UsageError(f"an account named {account.name!r} already exists")
            data.accounts[account.name] = account

    def remove_account(self, name: str) -> Account:
        with self.editing() as data:
            if name not in data.accounts:
                raise UsageError(f"no account named {name!r} (see `tdgui accounts list`)")
            return data.accounts.pop(name)

    def update_account(self, name: str, **changes: Any) -> Account:
        with self.editing() as data:
            if name not in data.accounts:
                raise UsageError(f"no account named {name!r}")
            updated = replace(data.accounts[name], **changes).validate()
            data.accounts[name] = updated
            return updated

    def settings(self) -> Settings:
        return self.load().settings

    def save_settings(self, settings: Settings) -> None:
        with self.editing() as data:
            data.settings = settings

"""Database settings for people at a form: the URL and key checked, the connection tested, in plain words.

The desktop's account dialog uses these (the CLI's `--db` takes the same rules from
`tdgui.core.stores._pg_conninfo.parse_url`); nothing here names a CLI flag or shows a password.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tdgui.core.errors import Reason, TdguiError, UsageError
from tdgui.core.logs import SECRETS

if TYPE_CHECKING:
    from tdgui.core.config import Account
    from tdgui.core.service import TokenService
    from tdgui.core.stores._pg_conninfo import PgTarget

log = logging.getLogger(__name__)

#: The example a form shows as placeholder (no password: that has its own field).
EXAMPLE_URL = "postgresql://tdgui@db.example:5432/trading"

#: One line per store choice, said under the dialog's combo (issue 14, defect 8).
STORE_NOTES = {
    "keyring": "The system keyring (Secret Service, Keychain, Credential Manager): encrypted, "
    "unlocked with your login.",
    "file": "A plain-text file only you can read (0600) in tdgui's folder: for machines without a keyring.",
    "memory": "Only in this app's memory: gone when it quits (for trying things out).",
    "sql": "A SQLite file only you can read (0600) in tdgui's folder, not encrypted.",
    "postgres": "A PostgreSQL database shared by your machines, encrypted with a key the "
    "database never sees: bots on a server use the same tokens.",
}


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of a connection test: `kind` is ok / unreachable / password / tls / url / other."""

    ok: bool
    kind: str
    text: str
    seconds: float = 0.0


def _target(url: str, allow_insecure: bool) -> PgTarget:
    from tdgui.core.stores._pg_conninfo import parse_url

    return parse_url(url, allow_insecure=allow_insecure)


def _hosts(target: PgTarget) -> str:
    hosts = [h for h in str(target.params.get("host") or "").split(",") if h]
    return ", ".join(hosts) or "this machine (local socket)"


def url_problem(url: str, *, allow_insecure: bool = False) -> str | None:
    """What is wrong with a database URL, for the form (None: it may be used).

    The rules are parse_url's, the ones `--db` is held to; only the sentences differ.
    """
    if not url.strip():
        return f"Enter the database URL, e.g. {EXAMPLE_URL}."
    if not url.strip().lower().startswith(("postgresql://", "postgres://")) and "=" not in url:
        return f"The database URL starts with postgresql://, e.g. {EXAMPLE_URL}."
    try:
        _target(url.strip(), allow_insecure)
    except UsageError as exc:
        text = str(exc)
        if "carries a password" in text:
            return (
                "Remove the password from the URL and type it in the Password field "
                "(it is kept in the system keyring, never in tdgui's settings)."
            )
        if "unencrypted" in text:
            return (
                "This URL would send the database traffic to another machine unencrypted: use "
                "sslmode=verify-full (or require), or allow weak TLS below for a network you trust."
            )
        if text.startswith("unknown sslmode"):
            return "Unknown sslmode: use verify-full, verify-ca, require (or disable, allow, prefer)."
        detail = SECRETS.mask(text.split(": ", 1)[-1])
        return f"This is not a PostgreSQL URL libpq understands: {detail}."
    return None


def key_problem(text: str) -> str | None:
    """What is wrong with a pasted key (None: it parses), in plain words."""
    from tdgui.core.record_crypto import KEY_PREFIX, RecordKey

    if not text.strip():
        return "Paste the key shown when the account was shared (it starts with " + KEY_PREFIX + ")."
    try:
        RecordKey.parse(text.strip())
    except UsageError as exc:
        message = str(exc)
        if "starts with" in message:
            return f"This is not a tdgui key: a key starts with {KEY_PREFIX}."
        if "newer tdgui" in message:
            return "This key was made by a newer tdgui: update tdgui on this machine."
        return "This key is damaged or incomplete (a typo, or cut off): copy it again."
    return None


def _classify(exc: BaseException, where: str) -> tuple[str, str]:
    """A libpq / psycopg failure as one of the kinds and a sentence (never the password)."""
    text = " ".join(str(exc).split()).lower()
    if "no password supplied" in text:
        return "password", (
            f"{where} asks for a password: type it in the Password field (or put it in ~/.pgpass)."
        )
    if "password" in text or "authentication" in text:
        return "password", f"Wrong password (or user) for {where}: the server refused the login."
    if "ssl" in text or "certificate" in text or "tls" in text:
        return "tls", (
            f"TLS problem with {where}: the server's certificate is not trusted or does not name "
            "the host (check sslrootcert in the URL, or use sslrootcert=system for a public certificate)."
        )
    if "does not exist" in text:
        return "other", f"Reached {where}, but the database or user does not exist there."
    if "permission denied for database" in text:  # libpq gives only the server's text here
        return "other", f"Reached {where}, but this user may not connect to the database: grant it CONNECT."
    return "unreachable", (
        f"Cannot reach {where}: is the server running, and are host, port and firewall right?"
    )


def check_connection(url: str, password: str | None, *, allow_insecure: bool = False) -> ConnectionCheck:
    """Connect once (tdgui's timeouts: a dead server fails within ~2 s) and run SELECT 1.

    Changes nothing in the database. The password only goes to libpq, and is masked in
    anything logged.
    """
    import psycopg

    from tdgui.core.stores._pg_conninfo import connect_params

    started = time.monotonic()
    problem = url_problem(url, allow_insecure=allow_insecure)
    if problem is not None:
        return ConnectionCheck(False, "url", problem)
    target = _target(url.strip(), allow_insecure)
    SECRETS.add(password)
    where = _hosts(target)
    try:
        with psycopg.connect(autocommit=True, **connect_params(target, password=password)) as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        kind, text = _classify(exc, where)
        log.info("connection test to %s failed (%s): %s", target.where, kind, SECRETS.mask(str(exc)))
        return ConnectionCheck(False, kind, SECRETS.mask(text), time.monotonic() - started)
    tls = "encrypted" if target.sslmode in ("require", "verify-ca", "verify-full") else "not encrypted"
    return ConnectionCheck(True, "ok", f"Connected to {target.where} ({tls}).", time.monotonic() - started)


def check_account_connection(service: TokenService, name: str) -> ConnectionCheck:
    """The connection test for a shared account, with the password this machine keeps for it."""
    from tdgui.core.db_account import load_secrets

    account = service.account(name)
    if account.store != "postgres" or not account.db_url:
        raise UsageError(f"{name!r} keeps its tokens on this machine, not in a database")
    keyring = None if account.db_secrets == "file" else service.open_store("keyring")
    try:
        secrets = load_secrets(service.directory, account, keyring)
    except TdguiError:
        # Core's message names the CLI's join; at the window the way out is said in its words.
        return ConnectionCheck(
            False,
            "other",
            f"This machine's key for {name} is missing or damaged: remove the account here and "
            "add it again with Join from database and the key shown when it was shared.",
        )
    return check_connection(account.db_url, secrets.password, allow_insecure=account.db_allow_insecure)


#: A share's or join's failure in words a person at the dialog can act on ({name}: the account).
_PLAIN_WORDS = {
    Reason.SCHEMA_NOT_CREATABLE: "The database role may not create tdgui's tables: connect once as the "
    "database's owner (or create them as the owner); after that this role needs only SELECT, "
    'INSERT, UPDATE and DELETE (see "Tokens on a server" in the README).',
    Reason.NO_TABLE_RIGHTS: "The database role lacks rights on tdgui's tables: grant SELECT, INSERT, "
    'UPDATE and DELETE as "Tokens on a server" in the README shows.',
    Reason.NO_CONNECT_RIGHT: "The database role may not connect to this database: grant it CONNECT on "
    'the database (see "Tokens on a server" in the README).',
    Reason.KEYRING_NEEDED: 'This machine has no usable system keyring: tick "Keep the key and password '
    'in a private file" and try again.',
    Reason.ALREADY_SHARED: "The database already holds an account named {name} (shared before). Join "
    "it with its key on this machine, or remove it there first.",
    Reason.NOT_SHARED: "The database holds no shared account named {name}: share it from the desktop first.",
    Reason.NO_SHARED_TOKENS: "The database holds no tokens for {name}: log in on the desktop first.",
}


def plain_error(error: BaseException, name: str) -> str | None:
    """A share's or join's failure for the form, without CLI flags; None: no better words here.

    Known cases are said as a person at the dialog can act on them; the rest is core's own
    message (the caller removes command names from it).
    """
    from tdgui.core.record_crypto import RecordDecryptError, WrongKey

    if isinstance(error, WrongKey):
        return f"This key does not open the shared account {name}: paste the key shown when it was shared."
    if isinstance(error, RecordDecryptError):
        return f"The shared account {name} in the database is damaged or was changed: share it again."
    reason = error.reason if isinstance(error, TdguiError) else None
    if reason in _PLAIN_WORDS:
        return _PLAIN_WORDS[reason].format(name=name)
    if reason is Reason.DATABASE_UNAVAILABLE:  # not another store (a locked keyring): its own words
        text = SECRETS.mask(str(error))
        where = text.split(" cannot be used", 1)[0].removeprefix("PostgreSQL on ")
        return _classify(error, where.split("/", 1)[0].rsplit(":", 1)[0] or "the database")[1]
    return None


_PLACES = {
    "keyring": "system keyring",
    "file": "file (plain text, 0600)",
    "sql": "SQLite file (plain text, 0600)",
    "memory": "memory of this process (lost at exit)",
}


def kind_place(kind: str) -> str:
    """Where a local store kind keeps tokens ("file (plain text, 0600)")."""
    return _PLACES.get(kind, kind)


def store_place(account: Account, kind: str | None = None) -> str:
    """Where an account's tokens live, for the status view: "PostgreSQL on db.example, encrypted".

    `kind` is the store actually used (a service-wide override wins over the account's).
    """
    kind = kind or account.store
    if kind != "postgres":
        return kind_place(kind)
    try:
        target = _target(account.db_url or "", account.db_allow_insecure)
    except UsageError:
        return "PostgreSQL (its URL is not valid: edit the account), encrypted"
    weak = "" if target.loopback or target.sslmode in ("require", "verify-ca", "verify-full") else ", no TLS"
    return f"PostgreSQL on {_hosts(target)}, encrypted{weak}"

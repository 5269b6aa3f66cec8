"""PostgresStore: records encrypted client-side in a PostgreSQL database that several machines share."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from tdgui.core.errors import Reason, StoredDataError, StoreUnavailable, UsageError
from tdgui.core.logs import SECRETS
from tdgui.core.record_crypto import RecordKey, WrongKey, open_sealed, seal
from tdgui.core.stores._common import encode_value
from tdgui.core.stores._pg_conninfo import PgTarget, connect_params, parse_url
from tdgui.core.stores._pg_sql import MIGRATIONS, NS_SCHEMA, SCHEMA_VERSION, Queries, schema_lock
from tdgui.core.stores.base import TokenStore, check_key

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_SCHEMA = "tdgui"
#: How long `refresh_lock` waits for another machine's refresh (the service's file lock
#: waits as long): the holder is doing one token request with its own HTTP timeouts.
REFRESH_LOCK_WAIT = 120.0
#: Advisory lock namespaces (the first of the two int4 keys): "tdgu" for refreshes, "tdsc"
#: for schema migrations, so tdgui's locks never meet another application's in the database.
_NS_REFRESH = 0x74646775
#: How long a write made while holding the refresh lock retries a lost connection (see _run).
WRITE_PATIENCE = 10.0
#: How long a status record fetched with the tokens may serve the read that follows (see _fetch).
PREFETCH_TTL = 1.0
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def lock_key(schema: str, name: str) -> tuple[int, int]:
    """The advisory lock of account `name`: computed here (not by hashtext, whose values are
    internal to the server version) so every client and server agrees on it."""
    digest = hashlib.sha256(f"{schema}/{name}".encode()).digest()
    return _NS_REFRESH, int.from_bytes(digest[:4], "big", signed=True)


class PostgresStore(TokenStore):
    """Records in `<schema>.records`, each sealed with AES-256-GCM under a key the server never sees.

    One connection per store serves read/write/delete (each one statement in autocommit, so
    atomic); `refresh_lock` opens its own connection, whose death releases the lock.
    """

    kind = "postgres"

    def __init__(
        self,
        url: str,
        *,
        key: RecordKey,
        password: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        allow_insecure: bool = False,
        lock_wait: float = REFRESH_LOCK_WAIT,
    ) -> None:
        if not isinstance(key, RecordKey):
            raise UsageError("a postgres store needs its record key (tdgui-key-v1:...)")
        if not _SCHEMA_NAME.match(schema):
            raise UsageError(f"invalid schema name {schema!r}: use lower-case letters, digits and _")
        self.target: PgTarget = parse_url(url, allow_insecure=allow_insecure)
        #: The URL as given (it never carries a password: parse_url refuses one).
        self.url = url
        self.key = key
        self.schema = schema
        self.lock_wait = lock_wait
        self._password = password
        SECRETS.add(password)
        self._conn: psycopg.Connection[Any] | None = None
        self._mutex = threading.Lock()
        self._schema_ready = False
        # Accounts whose refresh lock this thread holds: taking it again nests (a second
        # session would wait on the first one's lock until lock_wait).
        self._held = threading.local()
        self._sql = Queries(schema)
        #: Prefetched rows, (thread, account, name) -> (generation, monotonic time, row): see _fetch.
        self._prefetched: dict[tuple[int, str, str], tuple[int, float, Any]] = {}
        self._generation = 0

    # -- the contract ---------------------------------------------------------------------
    def read(self, key: str) -> str | None:
        account, name = _split(key)
        row = self._fetch(account, name)
        if row is None:
            return None
        key_id, blob = bytes(row[0]), bytes(row[1])
        if key_id != self.key.key_id:
            raise WrongKey(
                f"the record {key!r} in {self.where} was written with another key (key id "
                f"{key_id.hex()[:8]}, this machine has {self.key.key_id.hex()[:8]}): join again "
                "with the key `tdgui share` printed. Nothing was changed"
            )
        plain = open_sealed(self.key, account, name, blob, where=self.where)
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise StoredDataError(f"the record {key!r} in {self.where} is not text") from None

    def _fetch(self, account: str, name: str) -> tuple[Any, Any] | None:
        """(key_id, ciphertext) of one row, in one round trip on the hot path (bench row 9): the
        schema version comes with every read (no statement of its own), and reading an
        account's tokens brings its status record too, which the service reads next; that copy
        serves one read by the same thread within PREFETCH_TTL and only while nothing was
        written or locked meanwhile (the generation), so it is never older than a fresh read
        that raced the same writes would have been."""
        slot = (threading.get_ident(), account, name)
        hit = self._prefetched.pop(slot, None)
        if hit is not None and hit[0] == self._generation and time.monotonic() - hit[1] < PREFETCH_TTL:
            cached: tuple[Any, Any] | None = hit[2]
            return cached
        generation = self._generation
        names = [name, "status"] if name == "tokens" else [name]
        rows = self._run(lambda c: self._select(c, account, names), checks_schema=True)
        if len(names) == 2:
            self._prefetched[(slot[0], account, "status")] = (
                generation,
                time.monotonic(),
                rows.get("status"),
            )
        return rows.get(name)

    def _select(self, conn: psycopg.Connection[Any], account: str, names: list[str]) -> dict[str, Any]:
        from psycopg import errors

        try:
            rows = conn.execute(self._sql.read_many, (account, names)).fetchall()
        except (errors.UndefinedTable, errors.InvalidSchemaName):
            rows = []
        if not rows or rows[0][0] != SCHEMA_VERSION:
            self._migrate(conn)  # creates, upgrades, or refuses a newer schema
            rows = conn.execute(self._sql.read_many, (account, names)).fetchall()
        self._schema_ready = True
        return {r[1]: (r[2], r[3]) for r in rows if r[1] is not None}

    def _changed(self) -> None:
        """Any write, delete or lock: no prefetched copy may serve a later read."""
        self._generation += 1

    def write(self, key: str, value: str) -> None:
        account, name = _split(key)
        blob = seal(self.key, account, name, encode_value(value))
        lease = self._held.__dict__.get("leases", {}).get(account)
        if lease is not None:
            lease.take(self, name)  # stores/_pg_lock.py: before the first write under the lock
        params = {"a": account, "n": name, "k": self.key.key_id, "c": blob}
        self._changed()
        try:
            written = self._run(lambda c: c.execute(self._sql.write, params).rowcount)
        finally:
            self._changed()
        if written != 1:
            # The guarded upsert wrote nothing: the account's rows carry another key id.
            raise WrongKey(
                f"the records of {account!r} in {self.where} were written with another key than "
                "this machine's: nothing was written. Join again with the key `tdgui share` printed"
            )

    def delete(self, key: str) -> None:
        account, name = _split(key)
        self._changed()
        try:
            self._run(lambda c: c.execute(self._sql.delete, (account, name)))
        finally:
            self._changed()

    def delete_account(self, account: str) -> int:
        """Delete every record of `account`, whatever key wrote it (for `share` over an old
        copy, or removing an account); returns how many rows went."""
        check_key(account)
        if "/" in account:
            raise UsageError(f"delete_account takes an account name, not a key ({account!r})")
        self._changed()
        try:
            return int(self._run(lambda c: c.execute(self._sql.delete_account, (account,)).rowcount))
        finally:
            self._changed()

    def describe(self) -> str:
        tls = f"TLS {self.target.sslmode}" if self.target.sslmode else "TLS as libpq chooses"
        return (
            f"{self.where} (schema {self.schema}, {tls}), encrypted with "
            f"AES-256-GCM (key id {self.key.key_id.hex()[:8]})"
        )

    def check_available(self) -> None:
        """Connects (creating or upgrading the schema if needed) within the connect timeout."""
        self._run(lambda c: c.execute("SELECT 1").fetchone())

    # -- single flight across machines ----------------------------------------------------
    def refresh_lock(self, name: str) -> AbstractContextManager[None]:
        """Hold account `name`'s refresh lock, shared by every machine using this database.

        A session-level advisory lock on a connection of its own, idle (not in a
        transaction) while held: the refresh's HTTP request may take longer than the idle
        transaction timeout, and each token write commits on the store's connection at once,
        so a rotated refresh token is durable before the lock is released. The server frees
        the lock when that connection ends: closed, SIGKILL (the kernel closes the socket),
        or a silent peer cut off by the TCP keepalives. Waiting longer than `lock_wait`
        raises ProviderError (transient), like the service's file lock.
        """
        check_key(name)
        if "/" in name:
            raise UsageError(f"refresh_lock takes an account name, not a key ({name!r})")
        return self._refresh_lock(name)

    @contextmanager
    def _refresh_lock(self, name: str) -> Iterator[None]:
        held: set[str] = self._held.__dict__.setdefault("names", set())
        if name in held:
            yield
            return
        held.add(name)
        self._held.gave_up = False
        try:
            from tdgui.core.stores._pg_lock import session_lock

            with session_lock(self, name):
                self._changed()  # what was read before the lock is read again under it
                yield
        finally:
            held.discard(name)

    def close(self) -> None:
        """Close the store's connection (a later call opens a new one)."""
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- connections ----------------------------------------------------------------------
    @property
    def where(self) -> str:
        """ "PostgreSQL on db.example:5432/trading as tdgui": for messages, never a secret."""
        return f"PostgreSQL on {self.target.where}"

    def _run(
        self,
        action: Callable[[psycopg.Connection[Any]], T],
        *,
        patience: bool | None = None,
        checks_schema: bool = False,
    ) -> T:
        """`action` on the store's connection; one retry on a fresh connection if a reused
        one turned out broken (server restarted, idle connection cut by a firewall).

        With `patience` (by default: while this thread holds a refresh lock) a lost
        connection is opened again for up to WRITE_PATIENCE seconds: the holder may have
        just received rotated tokens from the provider, and losing that write loses the grant.
        """
        import psycopg

        if patience is None:
            patience = bool(self._held.__dict__.get("names"))
        # Once per lock hold: after one write gave up, the rest (the lease) fail at once.
        patience = patience and not self._held.__dict__.get("gave_up", False)
        give_up = time.monotonic() + (WRITE_PATIENCE if patience else 0.0)
        with self._mutex:
            attempt = 0
            while True:
                fresh = self._conn is None or self._conn.closed or self._conn.broken
                try:
                    if fresh:
                        self._discard()
                        self._conn = self._open()
                    assert self._conn is not None
                    if not self._schema_ready and not checks_schema:
                        self._migrate(self._conn)
                        self._schema_ready = True
                    return action(self._conn)
                except (StoreUnavailable, StoredDataError):
                    raise
                except psycopg.Error as exc:
                    broken = self._conn is None or self._conn.closed or self._conn.broken
                    if broken:
                        self._discard()
                    attempt += 1
                    if not broken:
                        raise self._unavailable(exc) from None
                    if time.monotonic() < give_up:
                        log.warning("%s: connection lost (%s); trying again", self.where, type(exc).__name__)
                        time.sleep(0.25)
                        continue
                    if fresh or attempt > 1:
                        if patience:
                            self._held.gave_up = True
                        raise self._unavailable(exc) from None

    def _discard(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _open(self, **timeouts: int) -> psycopg.Connection[Any]:
        import psycopg

        params = connect_params(self.target, password=self._password, **timeouts)
        # autocommit: every statement is its own transaction, so no session sits idle in
        # a transaction; the migration opens an explicit one.
        return psycopg.connect(autocommit=True, **params)

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Bring the schema to SCHEMA_VERSION. The common case (current) is one SELECT, which a
        role with only SELECT/INSERT/UPDATE/DELETE may run; DDL happens only when needed."""
        from psycopg import errors

        try:
            row = conn.execute(self._sql.version).fetchone()
            version = 0 if row is None else int(row[0])
        except (errors.UndefinedTable, errors.InvalidSchemaName):
            version = 0
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoredDataError(
                f"the tdgui schema {self.schema!r} in {self.where} is at version {version}, newer "
                f"than this tdgui knows ({SCHEMA_VERSION}): update tdgui on this machine"
            )
        try:
            with conn.transaction():
                # Transaction-scoped: two machines starting at once queue here, and the
                # second finds the schema done when it re-reads the version below.
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (NS_SCHEMA, schema_lock(self.schema)))
                exists = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL", (f"{self.schema}.schema_version",)
                ).fetchone()
                version = 0
                if exists and exists[0]:
                    row = conn.execute(self._sql.version).fetchone()
                    version = 0 if row is None else int(row[0])
                if version < SCHEMA_VERSION:
                    for statement in self._sql.create:
                        conn.execute(statement)
                    for step in MIGRATIONS[version:]:
                        for statement in step:
                            conn.execute(self._sql.format(statement))
                    conn.execute(self._sql.set_version, (SCHEMA_VERSION,))
                    log.info(
                        "tdgui schema %s in %s: version %d -> %d",
                        self.schema,
                        self.where,
                        version,
                        SCHEMA_VERSION,
                    )
        except errors.InsufficientPrivilege:
            raise StoreUnavailable(
                f"the role of {self.where} may not create tdgui's schema {self.schema!r}: connect once "
                "as a role that owns it (see docs/postgres.md), then this role needs only "
                "SELECT, INSERT, UPDATE and DELETE",
                reason=Reason.SCHEMA_NOT_CREATABLE,
            ) from None

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        """StoreUnavailable naming the database and the way out; never a password."""
        from psycopg import errors

        text = SECRETS.mask(" ".join(str(exc).split()))[:300].rstrip(". ") or type(exc).__name__
        lower = text.lower()
        reason = Reason.DATABASE_UNAVAILABLE
        if isinstance(exc, errors.InsufficientPrivilege):  # SQLSTATE 42501
            reason = Reason.NO_TABLE_RIGHTS
        elif "permission denied for database" in lower:
            # Refused at connect time: libpq gives psycopg only the server's text, no SQLSTATE.
            reason = Reason.NO_CONNECT_RIGHT
        if reason is Reason.NO_CONNECT_RIGHT:
            hint = "the role may not connect to this database: grant it CONNECT on the database"
        elif "password" in lower or "authentication" in lower:
            hint = "check the database user and password (the keyring entry, ~/.pgpass or PGPASSWORD)"
        elif "certificate" in lower or "ssl" in lower or "tls" in lower:
            hint = (
                "check the server's TLS certificate and the root CA given by sslrootcert or "
                "PGSSLROOTCERT (sslrootcert=system trusts the system's CAs); the host name "
                "in the URL must be one the certificate names"
            )
        elif reason is Reason.NO_TABLE_RIGHTS:
            hint = "the role lacks rights on tdgui's tables: grant them as docs/postgres.md shows"
        elif "connection" in lower or "timeout" in lower or "host" in lower:
            hint = "check that the server is running and reachable (host, port, firewall)"
        else:
            hint = "the server refused tdgui's statement: see its log and docs/postgres.md"
        return StoreUnavailable(
            f"{self.where} cannot be used: {text}{'' if text.endswith('?') else '.'} "
            f"{hint[0].upper()}{hint[1:]}, or choose another store with --store",
            reason=reason,
        )


def _split(key: str) -> tuple[str, str]:
    account, _, name = check_key(key).partition("/")
    return account, name

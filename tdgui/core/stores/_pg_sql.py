"""The SQL of the postgres store: schema migrations and every statement, composed once per schema."""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["MIGRATIONS", "NS_SCHEMA", "SCHEMA_VERSION", "Queries", "schema_lock"]

#: Advisory lock namespace of schema migrations ("tdsc"; refreshes use "tdgu", postgres.py).
NS_SCHEMA = 0x74647363

#: Schema migrations, in order; entry i takes the schema from version i to i + 1. Each one
#: runs in one transaction under the schema advisory lock, so two machines starting at
#: once never both run it. "{s}" is the (quoted) schema name.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS {s}.records (
            account text NOT NULL,
            name text NOT NULL,
            key_id bytea NOT NULL,
            ciphertext bytea NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (account, name))""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class Queries:
    """The statements, composed once with the quoted schema name."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        # The version rides along (schema_version is one row), so a read needs no check of its own.
        self.read_many = self.format(
            "SELECT v.version, r.name, r.key_id, r.ciphertext FROM {s}.schema_version v "
            "LEFT JOIN {s}.records r ON r.account = %s AND r.name = ANY(%s)"
        )
        # Guarded upsert: a machine with another key (a wrong `join`) neither replaces a row
        # nor adds one beside rows of that account it could not read. The lease row is not a
        # record (no ciphertext): it does not count (a stale one must not lock an account out).
        self.write = self.format(
            "INSERT INTO {s}.records AS r (account, name, key_id, ciphertext, updated_at) "
            "SELECT %(a)s, %(n)s, %(k)s, %(c)s, now() WHERE NOT EXISTS "
            "(SELECT 1 FROM {s}.records o WHERE o.account = %(a)s AND o.key_id <> %(k)s "
            "AND o.name <> '.lease') "
            "ON CONFLICT (account, name) DO UPDATE SET key_id = excluded.key_id, "
            "ciphertext = excluded.ciphertext, updated_at = excluded.updated_at "
            "WHERE r.key_id = excluded.key_id"
        )
        self.delete = self.format("DELETE FROM {s}.records WHERE account = %s AND name = %s")
        # The refresh lease (stores/_pg_lock.py): its age by the server's clock, taken, dropped.
        self.read_lease = self.format(
            "SELECT extract(epoch FROM clock_timestamp() - updated_at) FROM {s}.records "
            "WHERE account = %s AND name = %s"
        )
        # The write's guard: a machine with another key takes no lease (it would write nothing
        # under the lock anyway), so it leaves no row of its key behind if it dies holding it.
        self.take_lease = self.format(
            "INSERT INTO {s}.records (account, name, key_id, ciphertext, updated_at) "
            "SELECT %(a)s, %(n)s, %(k)s, %(c)s, clock_timestamp() WHERE NOT EXISTS "
            "(SELECT 1 FROM {s}.records o WHERE o.account = %(a)s AND o.key_id <> %(k)s "
            "AND o.name <> '.lease') ON CONFLICT (account, name) DO UPDATE SET "
            "key_id = excluded.key_id, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at"
        )
        self.drop_lease = self.format(
            "DELETE FROM {s}.records WHERE account = %s AND name = %s AND ciphertext = %s"
        )
        self.delete_account = self.format("DELETE FROM {s}.records WHERE account = %s")
        self.version = self.format("SELECT version FROM {s}.schema_version")
        self.set_version = self.format(
            "INSERT INTO {s}.schema_version (singleton, version) VALUES (true, %s) "
            "ON CONFLICT (singleton) DO UPDATE SET version = excluded.version, updated_at = now()"
        )
        self.create = (
            self.format("CREATE SCHEMA IF NOT EXISTS {s}"),
            self.format(
                "CREATE TABLE IF NOT EXISTS {s}.schema_version (singleton boolean PRIMARY KEY "
                "DEFAULT true CHECK (singleton), version integer NOT NULL, "
                "updated_at timestamptz NOT NULL DEFAULT now())"
            ),
        )

    def format(self, template: str) -> Any:
        from psycopg import sql

        return sql.SQL(template).format(s=sql.Identifier(self.schema))  # type: ignore[arg-type]


def schema_lock(schema: str) -> int:
    return int.from_bytes(hashlib.sha256(schema.encode()).digest()[:4], "big", signed=True)

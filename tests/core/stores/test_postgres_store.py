"""PostgresStore against a real server: encryption at rest, TLS and URL rules, errors within 3 s."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from helpers.postgres import PgServer, free_port
from tdgui.core.db_setup import check_connection, plain_error
from tdgui.core.errors import ErrorKind, Reason, StoredDataError, StoreUnavailable, UsageError
from tdgui.core.record_crypto import RecordDecryptError, RecordKey, WrongKey
from tdgui.core.stores.postgres import SCHEMA_VERSION, PostgresStore

TOKENS = '{"access_token": "acc-very-secret-1", "refresh_token": "ref-very-secret-2"}'


@pytest.fixture
def schema(postgres_server: PgServer) -> Iterator[str]:
    name = postgres_server.fresh_schema()
    yield name
    postgres_server.drop_schema(name)


@pytest.fixture
def opened() -> Iterator[list[PostgresStore]]:
    stores: list[PostgresStore] = []
    yield stores
    for store in stores:
        store.close()


def make(
    server: PgServer,
    schema: str,
    opened: list[PostgresStore],
    *,
    url: str | None = None,
    key: RecordKey | None = None,
    password: str | None = None,
) -> PostgresStore:
    store = PostgresStore(
        url or server.url(),
        key=key or RecordKey.generate(),
        password=server.password if password is None else password,
        schema=schema,
    )
    opened.append(store)
    return store


def row(server: PgServer, schema: str, account: str, name: str) -> tuple[bytes, bytes] | None:
    with server.admin() as conn:
        got = conn.execute(
            f'SELECT key_id, ciphertext FROM "{schema}".records WHERE account = %s AND name = %s',
            (account, name),
        ).fetchone()
    return None if got is None else (bytes(got[0]), bytes(got[1]))


def set_row(server: PgServer, schema: str, account: str, name: str, key_id: bytes, blob: bytes) -> None:
    with server.admin() as conn:
        conn.execute(
            f'INSERT INTO "{schema}".records (account, name, key_id, ciphertext) VALUES (%s, %s, %s, %s) '
            "ON CONFLICT (account, name) DO UPDATE "
            "SET key_id = excluded.key_id, ciphertext = excluded.ciphertext",
            (account, name, key_id, blob),
        )


def unavailable_fast(store: PostgresStore, *secrets: str) -> StoreUnavailable:
    """check_available fails with StoreUnavailable (exit 5) within 3 s, showing no secret."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.check_available()
    took = time.monotonic() - started
    assert took < 3, f"took {took:.2f} s"
    error = caught.value
    assert error.exit_code == 5
    for secret in secrets:
        assert secret not in str(error)
    assert "127.0.0.1" in str(error) or "db.test" in str(error) or "other.test" in str(error)
    return error


# ----------------------------------------------------------------------------- encryption


def test_records_are_encrypted_at_rest(postgres_server: PgServer, schema: str, opened: list[Any]) -> None:
    store = make(postgres_server, schema, opened)
    store.write("alice/tokens", TOKENS)
    stored = row(postgres_server, schema, "alice", "tokens")
    assert stored is not None
    key_id, blob = stored
    assert key_id == store.key.key_id
    assert b"very-secret" not in blob and b"access_token" not in blob
    assert store.read("alice/tokens") == TOKENS
    description = store.describe()
    assert "encrypted" in description and "127.0.0.1" in description
    assert postgres_server.password not in description and store.key.encode() not in description


def test_wrong_key_neither_reads_nor_overwrites(
    postgres_server: PgServer, schema: str, opened: list[Any]
) -> None:
    right = make(postgres_server, schema, opened)
    right.write("alice/tokens", TOKENS)
    before = row(postgres_server, schema, "alice", "tokens")
    wrong = make(postgres_server, schema, opened)
    with pytest.raises(WrongKey) as caught:
        wrong.read("alice/tokens")
    assert caught.value.kind is ErrorKind.STORE and "another key" in str(caught.value)
    with pytest.raises(WrongKey):
        wrong.write("alice/tokens", "overwrite attempt")
    with pytest.raises(WrongKey):  # nor a new record beside the account's others
        wrong.write("alice/secret", "planted secret")
    assert row(postgres_server, schema, "alice", "tokens") == before
    assert row(postgres_server, schema, "alice", "secret") is None
    assert right.read("alice/tokens") == TOKENS
    wrong.write("carol/tokens", "its own account is fine")
    assert wrong.read("carol/tokens") == "its own account is fine"
    # Sharing the account again with a new key: its old rows go first, whatever key wrote them.
    assert wrong.delete_account("alice") == 1
    wrong.write("alice/tokens", "shared again")
    assert wrong.read("alice/tokens") == "shared again"
    assert wrong.read("carol/tokens") == "its own account is fine"
    with pytest.raises(UsageError):
        wrong.delete_account("alice/tokens")


@pytest.mark.parametrize("damage", ["tampered", "truncated", "swapped", "relabelled key id"])
def test_damaged_rows_fail_typed_and_stay_as_they_are(
    postgres_server: PgServer, schema: str, opened: list[Any], damage: str
) -> None:
    store = make(postgres_server, schema, opened)
    store.write("alice/tokens", TOKENS)
    store.write("bob/tokens", '{"access_token": "bob-token-value"}')
    stored = row(postgres_server, schema, "alice", "tokens")
    assert stored is not None
    key_id, blob = stored
    if damage == "tampered":
        changed = bytearray(blob)
        changed[len(blob) // 2] ^= 0x20
        set_row(postgres_server, schema, "alice", "tokens", key_id, bytes(changed))
    elif damage == "truncated":
        set_row(postgres_server, schema, "alice", "tokens", key_id, blob[: len(blob) - 5])
    elif damage == "swapped":  # alice's row where bob's was
        set_row(
            postgres_server,
            schema,
            "alice",
            "tokens",
            key_id,
            row(postgres_server, schema, "bob", "tokens")[1],
        )  # type: ignore[index]
    else:
        set_row(postgres_server, schema, "alice", "tokens", b"\x00" * 8, blob)
    damaged = row(postgres_server, schema, "alice", "tokens")
    fresh = make(postgres_server, schema, opened, key=store.key)  # another process, same key
    for reader in (store, fresh):
        with pytest.raises(StoredDataError) as caught:
            reader.read("alice/tokens")
        error = caught.value
        assert isinstance(error, RecordDecryptError) and error.exit_code == 5
        assert "very-secret" not in str(error) and "bob-token" not in str(error)
        assert "alice" in str(error) and "127.0.0.1" in str(error)
    assert row(postgres_server, schema, "alice", "tokens") == damaged  # reading changed nothing
    assert fresh.read("bob/tokens") == '{"access_token": "bob-token-value"}'


def test_newer_schema_is_refused_and_left_alone(
    postgres_server: PgServer, schema: str, opened: list[Any]
) -> None:
    make(postgres_server, schema, opened).write("alice/tokens", "x")
    with postgres_server.admin() as conn:
        conn.execute(f'UPDATE "{schema}".schema_version SET version = %s', (SCHEMA_VERSION + 1,))
    with pytest.raises(StoredDataError) as caught:
        make(postgres_server, schema, opened).read("alice/tokens")
    assert "update tdgui" in str(caught.value) and caught.value.exit_code == 5
    with postgres_server.admin() as conn:
        assert conn.execute(f'SELECT version FROM "{schema}".schema_version').fetchall() == [
            (SCHEMA_VERSION + 1,)
        ]


# ----------------------------------------------------------------------------- URL and TLS rules


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://tdgui:hunter2-db-pass@db.example/trading",
        "postgresql://tdgui@db.example/trading?password=hunter2-db-pass",
        "host=db.example user=tdgui password=hunter2-db-pass dbname=trading",
        "postgresql://tdgui:hunter2-db-pass@127.0.0.1/trading",
        "postgresql://tdgui:hunter2-db-pass@[::1/trading",  # unparsable: libpq quotes the URI
        "host=db.example password='hunter2-db-pass x' bogus",
    ],
)
def test_url_with_a_password_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        PostgresStore(url, key=RecordKey.generate())
    message = str(caught.value)
    assert "hunter2" not in message
    assert ("carries a password" in message and "~/.pgpass" in message) or "invalid PostgreSQL URL" in message


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_weak_tls_to_another_machine_is_refused_unless_allowed(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = RecordKey.generate()
    with pytest.raises(UsageError) as caught:
        PostgresStore(f"postgresql://tdgui@db.example/trading?sslmode={mode}", key=key)
    assert f"sslmode={mode}" in str(caught.value) and "db.example" in str(caught.value)
    # hostaddr says where to connect; the name is still what TLS would have to check.
    with pytest.raises(UsageError):
        PostgresStore(f"postgresql://tdgui@db.example/trading?hostaddr=127.0.0.1&sslmode={mode}", key=key)
    monkeypatch.setenv("PGSSLMODE", mode)  # libpq's own variable is held to the same rule
    with pytest.raises(UsageError):
        PostgresStore("postgresql://tdgui@db.example/trading", key=key)
    allowed = PostgresStore("postgresql://tdgui@db.example/trading", key=key, allow_insecure=True)
    assert allowed.target.sslmode == mode


def test_tls_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    key = RecordKey.generate()
    assert PostgresStore("postgresql://tdgui@db.example/trading", key=key).target.sslmode == "verify-full"
    assert (
        PostgresStore("postgresql://tdgui@db.example/t?sslmode=require", key=key).target.sslmode == "require"
    )
    # On this machine libpq's own default stands (a Unix socket or loopback never leaves it).
    for local in ("postgresql://tdgui@localhost/t", "postgresql://tdgui@127.0.0.1/t", "host=/run/postgresql"):
        assert PostgresStore(local, key=key).target.loopback
    assert (
        PostgresStore("postgresql://tdgui@127.0.0.1/t?sslmode=disable", key=key).target.sslmode == "disable"
    )
    with pytest.raises(UsageError):
        PostgresStore("postgresql://tdgui@db.example/t?sslmode=bogus", key=key)
    with pytest.raises(UsageError):
        PostgresStore("postgresql://tdgui@db.example/t", key=key, schema="Bad-Name")


def _named_host_url(server: PgServer, host: str, **query: str) -> str:
    q = "&".join(
        ["hostaddr=127.0.0.1", f"sslrootcert={server.ca_file}", *(f"{k}={v}" for k, v in query.items())]
    )
    return f"postgresql://{server.user}@{host}:{server.port}/{server.dbname}?{q}"


def test_verify_full_by_default_to_a_named_host(
    postgres_server: PgServer, schema: str, opened: list[Any]
) -> None:
    store = make(postgres_server, schema, opened, url=_named_host_url(postgres_server, "db.test"))
    assert store.target.sslmode == "verify-full"
    store.write("alice/tokens", TOKENS)
    assert store.read("alice/tokens") == TOKENS
    assert store._conn is not None and store._conn.pgconn.ssl_in_use


def test_loopback_without_tls_works_when_asked(
    postgres_server: PgServer, schema: str, opened: list[Any]
) -> None:
    url = postgres_server.url(sslmode="disable")
    store = make(postgres_server, schema, opened, url=url)
    store.write("alice/tokens", "x")
    assert store._conn is not None and not store._conn.pgconn.ssl_in_use


# ----------------------------------------------------------------------------- errors within 3 s


def test_wrong_root_ca(postgres_server: PgServer, schema: str, opened: list[Any]) -> None:
    url = postgres_server.url(sslrootcert=str(postgres_server.other_ca_file))
    error = unavailable_fast(make(postgres_server, schema, opened, url=url), postgres_server.password)
    assert "certificate" in str(error) and "sslrootcert" in str(error)


def test_host_name_the_certificate_does_not_name(
    postgres_server: PgServer, schema: str, opened: list[Any]
) -> None:
    url = _named_host_url(postgres_server, "other.test")
    error = unavailable_fast(make(postgres_server, schema, opened, url=url), postgres_server.password)
    assert "certificate" in str(error)


def test_wrong_password(postgres_server: PgServer, schema: str, opened: list[Any]) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    store = make(postgres_server, schema, opened, password=wrong)
    error = unavailable_fast(store, wrong, postgres_server.password)
    assert "password" in str(error) and "~/.pgpass" in str(error)
    with pytest.raises(StoreUnavailable):  # every call, not only the first
        store.read("alice/tokens")


def test_server_down(postgres_server: PgServer, schema: str, opened: list[Any]) -> None:
    port = free_port()
    url = postgres_server.url().replace(f":{postgres_server.port}/", f":{port}/")
    error = unavailable_fast(make(postgres_server, schema, opened, url=url), postgres_server.password)
    assert f"127.0.0.1:{port}" in str(error) and "running" in str(error)
    # The share/join dialog's words: the database, by its host; another store's failure (a
    # locked keyring) keeps its own words instead.
    assert (plain_error(error, "alice") or "").startswith("Cannot reach 127.0.0.1")
    assert plain_error(StoreUnavailable("the keyring is locked: unlock it"), "alice") is None


def test_server_that_never_answers(postgres_server: PgServer, schema: str, opened: list[Any]) -> None:
    with socket.socket() as silent:  # accepts TCP (the kernel does), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = postgres_server.url().replace(f":{postgres_server.port}/", f":{port}/")
        unavailable_fast(make(postgres_server, schema, opened, url=url), postgres_server.password)


# ----------------------------------------------------------------------------- connections


def test_reconnects_after_the_server_ended_the_session(
    postgres_server: PgServer, schema: str, opened: list[Any]
) -> None:
    store = make(postgres_server, schema, opened)
    store.write("alice/tokens", "before")
    with postgres_server.admin() as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tdgui' "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    assert ended and all(ok for (ok,) in ended)
    assert store.read("alice/tokens") == "before"
    store.write("alice/tokens", "after")
    assert store.read("alice/tokens") == "after"


def test_sessions_carry_the_timeouts_that_cut_off_dead_peers(
    postgres_server: PgServer, schema: str, opened: list[Any]
) -> None:
    store = make(postgres_server, schema, opened)
    store.check_available()
    assert store._conn is not None
    settings = {
        name: store._conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
        for name in (
            "statement_timeout",
            "lock_timeout",
            "idle_in_transaction_session_timeout",
            "tcp_keepalives_idle",
            "tcp_keepalives_count",
            "tcp_user_timeout",
        )
    }
    assert settings == {
        "statement_timeout": "5s",
        "lock_timeout": "3s",
        "idle_in_transaction_session_timeout": "5s",
        "tcp_keepalives_idle": "3",
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": "6000",
    }


def test_least_privilege_role(postgres_server: PgServer, schema: str, opened: list[Any]) -> None:
    """docs/postgres.md: once the schema exists, SELECT/INSERT/UPDATE/DELETE are all a role needs."""
    owner = make(postgres_server, schema, opened)
    owner.check_available()  # the owner creates the schema
    role, password = f"app_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    closed = f"closed_{uuid.uuid4().hex[:8]}"
    with postgres_server.admin() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
    try:
        app = make(
            postgres_server,
            schema,
            opened,
            url=postgres_server.url(user=role),
            key=owner.key,
            password=password,
        )
        app.write("alice/tokens", TOKENS)
        assert owner.read("alice/tokens") == TOKENS
        with app.refresh_lock("alice"):
            app.write("alice/tokens", "refreshed")
        app.delete("alice/tokens")
        assert app.read("alice/tokens") is None
        other = postgres_server.fresh_schema()  # a schema nobody created: the role may not
        stranger = make(postgres_server, other, opened, url=postgres_server.url(user=role), password=password)
        with pytest.raises(StoreUnavailable) as caught:
            stranger.check_available()
        assert "docs/postgres.md" in str(caught.value) and password not in str(caught.value)
        assert caught.value.reason is Reason.SCHEMA_NOT_CREATABLE  # for the dialog's own words
        assert (plain_error(caught.value, "alice") or "").startswith("The database role may not create")
        with postgres_server.admin() as conn:
            conn.execute(f'REVOKE SELECT ON ALL TABLES IN SCHEMA "{schema}" FROM {role}')
        with pytest.raises(StoreUnavailable) as caught:
            app.read("alice/tokens")
        assert caught.value.reason is Reason.NO_TABLE_RIGHTS, caught.value
        assert (plain_error(caught.value, "alice") or "").startswith("The database role lacks rights")
        # A database the role may not connect to: said so, not "cannot reach" (the server's
        # refusal comes at connect time, as text only).
        with postgres_server.admin() as conn:
            conn.execute(f"CREATE DATABASE {closed}")
            conn.execute(f"REVOKE CONNECT ON DATABASE {closed} FROM PUBLIC")
        url = postgres_server.url(user=role).replace(f"/{postgres_server.dbname}?", f"/{closed}?")
        shut_out = make(postgres_server, schema, opened, url=url, key=owner.key, password=password)
        with pytest.raises(StoreUnavailable) as caught:
            shut_out.check_available()
        assert caught.value.reason is Reason.NO_CONNECT_RIGHT, caught.value
        assert (plain_error(caught.value, "alice") or "").startswith("The database role may not connect")
        check = check_connection(url, password)
        assert not check.ok and "may not connect" in check.text and password not in check.text
    finally:
        for store in opened:
            store.close()
        with postgres_server.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {closed}")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")

"""The postgres store's token path: one statement per `tdgui token`; the prefetched status never stale."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from helpers.postgres import PgServer
from tdgui.core.record_crypto import RecordKey
from tdgui.core.stores.postgres import PostgresStore


@pytest.fixture
def store(postgres_server: PgServer) -> Iterator[PostgresStore]:
    schema = postgres_server.fresh_schema()
    s = PostgresStore(
        postgres_server.url(), key=RecordKey.generate(), password=postgres_server.password, schema=schema
    )
    try:
        yield s
    finally:
        s.close()
        postgres_server.drop_schema(schema)


def _counting(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the store's own connections send (psycopg's Connection.execute)."""
    import psycopg

    sent: list[str] = []
    real = psycopg.Connection.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", execute)
    return sent


def test_tokens_then_status_is_one_statement_on_a_new_connection(
    postgres_server: PgServer, store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write("acct/tokens", "T1")
    store.write("acct/status", "S1")
    other = PostgresStore(
        postgres_server.url(), key=store.key, password=postgres_server.password, schema=store.schema
    )
    try:
        sent = _counting(other, monkeypatch)
        # What `tdgui token` does in a new process: tokens, then the status record.
        assert other.read("acct/tokens") == "T1"
        assert other.read("acct/status") == "S1"
        assert len(sent) == 1, sent  # no schema check of its own, no second read
        assert other.read("acct/status") == "S1"  # the prefetched copy serves one read only
        assert len(sent) == 2
    finally:
        other.close()


def test_a_write_or_the_lock_makes_the_prefetched_status_unusable(store: PostgresStore) -> None:
    store.write("acct/tokens", "T1")
    store.write("acct/status", "S1")
    assert store.read("acct/tokens") == "T1"
    store.write("acct/status", "S2")
    assert store.read("acct/status") == "S2"
    assert store.read("acct/tokens") == "T1"
    writer = PostgresStore(store.url, key=store.key, password=store._password, schema=store.schema)
    try:
        writer.write("acct/status", "S3")  # another machine, after our read of the tokens
    finally:
        writer.close()
    with store.refresh_lock("acct"):  # under the lock everything is read afresh
        assert store.read("acct/status") == "S3"

"""The PostgreSQL refresh lock: a session advisory lock, kept through a lost connection by a lease row.

The advisory lock dies with its holder's connection, which is what frees it when the holder
is SIGKILLed. But a connection also dies while its holder lives: the server restarted, a
NAT box or proxy dropped it. The holder may then be inside the token request, and under
refresh-token rotation with reuse detection (RFC 9700 §4.14.2) a second machine refreshing
with the same refresh token meanwhile revokes the grant. So the holder also writes a lease
row (`<account>/.lease`, committed at once) and deletes it only after its tokens are
written; whoever takes the advisory lock next and finds another holder's lease waits for
it to go (the holder finished: its tokens are in the database) or to age past LEASE_GRACE
(the holder is gone for good: SIGKILL, power cut), by the server's clock.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tdgui.core.errors import ProviderError
from tdgui.core.record_crypto import WrongKey

if TYPE_CHECKING:
    import psycopg

    from tdgui.core.stores.postgres import PostgresStore

log = logging.getLogger(__name__)

#: The row name of a refresh lease; not a valid key name, so no record can collide with it.
LEASE = ".lease"  # _pg_sql.py names it too: the key-id guards skip it
#: How long a lease of a holder whose lock connection ended is honoured. A SIGKILLed holder
#: delays the next machine by at most this (the promise is 10 s); a holder whose connection
#: was cut has this long, from taking the lock, to finish its request and store the tokens.
LEASE_GRACE = 6.0  # 8 s let B wait 11 s on 2 loaded cores (row 41 b): margin for the 10 s promise
#: How long a waiter whose lock connection ended (server restart) keeps reconnecting.
RECONNECT_WINDOW = 15.0
_POLL = 0.1


@contextmanager
def session_lock(store: PostgresStore, name: str) -> Iterator[None]:
    """Hold `name`'s advisory lock and lease (see the module docstring)."""
    from tdgui.core.stores.postgres import lock_key

    key = lock_key(store.schema, name)
    # The lease lives in tdgui's table: a first use of the database creates it here.
    store._run(lambda c: None)
    deadline = time.monotonic() + store.lock_wait
    conn = _acquire(store, name, key, deadline)
    holder = secrets.token_bytes(16)
    conn = _wait_for_lease_holding(store, conn, name, key, deadline)
    # The lease is written by the first write under the lock (take_lease below): a holder that
    # only re-reads (the many waiters of one refresh) costs no lease write and no delete.
    lease = Lease(conn, name, holder)
    leases: dict[str, Lease] = store._held.__dict__.setdefault("leases", {})
    leases[name] = lease
    try:
        yield
    finally:
        leases.pop(name, None)
        if lease.written:
            try:
                # After the tokens (written and committed by the caller): the next holder, or a
                # waiter that took the lock while ours was lost, now reads them.
                store._run(lambda c: c.execute(store._sql.drop_lease, (name, LEASE, holder)), patience=True)
            except Exception as exc:
                log.warning(
                    "could not remove the refresh lease of %s (%s): the next refresh waits for it", name, exc
                )
        try:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        except Exception:
            # The server freed it with the lost session; the lease kept others off meanwhile.
            log.warning(
                "the refresh lock of %s was lost while held (its connection to %s ended)", name, store.where
            )
        finally:
            conn.close()


class Lease:
    """The lease of one lock hold: written on the lock's own connection before the first write."""

    def __init__(self, conn: psycopg.Connection[Any], name: str, holder: bytes) -> None:
        self.conn, self.name, self.holder = conn, name, holder
        self.written = False

    def take(self, store: PostgresStore, record: str) -> None:
        """Before the holder's first write, `record`: the status mark the service writes before
        it sends the refresh, or a login's tokens. On the lock's connection. If that one is
        gone (server restarted, connection cut), the lock went with it and a waiter may hold
        it now, with the same refresh token:
        - before a refresh (the first write is the status mark: nothing was sent yet), stop
          with a transient error, so no second refresh races the waiter's (RFC 9700 §4.14.2);
        - a login's tokens (the code is already exchanged) are written on the store's own
          connection, retried like the write that follows: they must not be lost, and the
          lease still keeps newcomers off the grant until the holder is done."""
        if self.written:
            return
        import psycopg

        params = {"a": self.name, "n": LEASE, "k": store.key.key_id, "c": self.holder}
        try:
            taken = self.conn.execute(store._sql.take_lease, params).rowcount
        except psycopg.Error:
            if record == "status":
                log.warning(
                    "%s: the refresh lock's connection to %s ended before the refresh: not sent",
                    self.name,
                    store.where,
                )
                raise ProviderError(
                    f"the refresh lock of {self.name!r} was lost (its connection to {store.where} "
                    "ended) before the refresh was sent: nothing was sent; try again",
                    transient=True,
                ) from None
            log.warning("%s: the refresh lock's connection to %s is gone; writing on", self.name, store.where)
            taken = store._run(lambda c: c.execute(store._sql.take_lease, params).rowcount)
        if taken != 1:
            # The guarded upsert wrote nothing: the account's records carry another key id.
            raise WrongKey(
                f"the records of {self.name!r} in {store.where} were written with another key than "
                "this machine's: nothing was written. Join again with the key `tdgui share` printed"
            )
        self.written = True


def _acquire(
    store: PostgresStore,
    name: str,
    key: tuple[int, int],
    deadline: float,
    lost_at: float | None = None,
) -> psycopg.Connection[Any]:
    """The advisory lock on a connection of its own; a connection lost while waiting (the
    server restarted) is opened again and the wait goes on, within lock_wait. `lost_at`: when
    the caller's lock connection was lost (reconnecting, so a refused connect is retried)."""
    import psycopg
    from psycopg import errors

    while True:
        remaining = deadline - time.monotonic()
        wait_ms = max(1, int(remaining * 1000))
        try:
            conn = store._open(lock_timeout_ms=wait_ms, statement_timeout_ms=wait_ms + 2000)
        except psycopg.Error as exc:
            if lost_at is None or time.monotonic() - lost_at > RECONNECT_WINDOW or remaining <= 0:
                raise store._unavailable(exc) from None
            time.sleep(0.25)
            continue
        try:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", key)
            if lost_at is not None:
                log.info("refresh lock of %s taken after reconnecting to %s", name, store.where)
            return conn
        except (errors.LockNotAvailable, errors.QueryCanceled):
            conn.close()
            raise _timed_out(store, name) from None
        except psycopg.Error as exc:
            broken = conn.broken or conn.closed
            conn.close()
            if not broken or time.monotonic() >= deadline:
                raise store._unavailable(exc) from None
            lost_at = lost_at or time.monotonic()
            log.warning(
                "the connection to %s ended while waiting for the refresh lock of %s: reconnecting",
                store.where,
                name,
            )
        except BaseException:
            conn.close()
            raise


def _wait_for_lease_holding(
    store: PostgresStore, conn: psycopg.Connection[Any], name: str, key: tuple[int, int], deadline: float
) -> psycopg.Connection[Any]:
    """_wait_for_lease on the lock's connection; if that one is lost meanwhile (the server
    restarted while we waited for a cut-off holder's lease: rows 40, 41), the lock went with it,
    so reconnect, take the lock again and wait on, within lock_wait. Returns the connection
    that holds the lock."""
    import psycopg

    lost_at: float | None = None
    while True:
        try:
            _wait_for_lease(store, conn, name, deadline)
            return conn
        except psycopg.Error as exc:
            broken = conn.broken or conn.closed
            conn.close()
            if not broken or time.monotonic() >= deadline:
                raise store._unavailable(exc) from None
            lost_at = lost_at or time.monotonic()
            log.warning(
                "the connection to %s ended while waiting for the refresh lease of %s: reconnecting",
                store.where,
                name,
            )
        except BaseException:
            conn.close()
            raise
        conn = _acquire(store, name, key, deadline, lost_at)


def _wait_for_lease(store: PostgresStore, conn: psycopg.Connection[Any], name: str, deadline: float) -> None:
    """Until no other holder's lease is younger than LEASE_GRACE (server clock)."""
    noted = False
    while True:
        row = conn.execute(store._sql.read_lease, (name, LEASE)).fetchone()
        if row is None:
            return
        age = float(row[0])
        if age >= LEASE_GRACE:
            log.warning(
                "%s: the refresh started %.1f s ago by another process never finished (it was killed "
                "or lost %s); going on",
                name,
                age,
                store.where,
            )
            return
        if not noted:
            log.info("%s: another process lost its connection during a refresh; waiting for its result", name)
            noted = True
        if time.monotonic() + _POLL > deadline:
            raise _timed_out(store, name)
        time.sleep(_POLL)


def _timed_out(store: PostgresStore, name: str) -> ProviderError:
    return ProviderError(
        f"another machine has been refreshing {name!r} for {store.lock_wait:g} s "
        f"(its lock is in {store.where}); try again later",
        transient=True,
    )

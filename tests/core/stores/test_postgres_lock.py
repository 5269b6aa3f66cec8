"""Single flight across machines: the PostgreSQL refresh lock, and the schema migration race."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.postgres import PgServer
from tdgui.core.errors import ProviderError, UsageError
from tdgui.core.record_crypto import RecordKey
from tdgui.core.stores.memory import MemoryStore
from tdgui.core.stores.postgres import SCHEMA_VERSION, PostgresStore

REPO = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).with_name("pg_worker.py")


class Machines:
    """Processes on "machines": each machine its own HOME and TD_CONFIG_DIR, sharing only the database."""

    def __init__(self, server: PgServer, tmp_path: Path, schema: str, key: RecordKey) -> None:
        self.server, self.tmp_path, self.schema, self.key = server, tmp_path, schema, key
        self.procs: list[subprocess.Popen[str]] = []

    def env(self, machine: int, **extra: str) -> dict[str, str]:
        home = self.tmp_path / f"machine{machine}"
        (home / "home").mkdir(parents=True, exist_ok=True)
        return dict(
            os.environ,
            HOME=str(home / "home"),
            TD_CONFIG_DIR=str(home / "config"),
            PYTHONPATH=str(REPO),
            TDGUI_TEST_PG_URL=self.server.url(),
            TDGUI_TEST_PG_KEY=self.key.encode(),
            TDGUI_TEST_PG_PASSWORD=self.server.password,
            TDGUI_TEST_PG_SCHEMA=self.schema,
            **extra,
        )

    def start(self, machine: int, *args: str, **extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(machine, **extra),
            cwd=REPO,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def go(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        assert line(proc) == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def wait_until_queued(server: PgServer, waiters: int = 1) -> None:
    """Until `waiters` sessions wait for an advisory lock (seen in pg_locks, not guessed by a sleep)."""
    deadline = time.monotonic() + 20
    with server.admin() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if row is not None and row[0] >= waiters:
                return
            time.sleep(0.05)
    raise AssertionError("no process queued on the lock within 20 s")


@pytest.fixture
def machines(postgres_server: PgServer, tmp_path: Path) -> Iterator[Machines]:
    schema = postgres_server.fresh_schema()
    m = Machines(postgres_server, tmp_path, schema, RecordKey.generate())
    try:
        yield m
    finally:
        m.close()
        postgres_server.drop_schema(schema)


def _store(m: Machines, **options: float) -> PostgresStore:
    return PostgresStore(m.server.url(), key=m.key, password=m.server.password, schema=m.schema, **options)


def test_eight_processes_on_two_machines_hold_the_lock_one_at_a_time(machines: Machines) -> None:
    rounds = 5
    shared = machines.tmp_path / "observer"
    shared.mkdir()
    procs = [machines.start(i % 2, "contend", str(rounds), str(shared)) for i in range(8)]
    go(procs)
    outputs = []
    for proc in procs:
        assert proc.stdout is not None
        out, err = proc.communicate(timeout=120)
        outputs.append(out)
        assert proc.returncode == 0, err
    text = "".join(outputs)
    assert "OVERLAP" not in text
    assert text.count("round") == 8 * rounds
    # Every read-increment-write happened under the lock: none of the 40 updates was lost.
    store = _store(machines)
    try:
        assert store.read("acct/tokens") == str(8 * rounds)
    finally:
        store.close()


def test_sigkilled_holder_frees_the_lock_for_another_machine(machines: Machines) -> None:
    holder = machines.start(0, "hold")
    assert line(holder) == "held"
    waiter = machines.start(1, "wait")
    assert line(waiter) == "ready"
    wait_until_queued(machines.server)
    assert waiter.poll() is None
    killed_at = time.monotonic()
    holder.send_signal(signal.SIGKILL)
    got = line(waiter)
    waited = time.monotonic() - killed_at
    assert got.startswith("got "), got
    assert waited < 10, f"the lock came free {waited:.1f} s after the holder was killed"


def test_lock_wait_times_out_as_a_transient_provider_error(machines: Machines) -> None:
    holder = machines.start(0, "hold")
    assert line(holder) == "held"
    store = _store(machines, lock_wait=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught, store.refresh_lock("acct"):
            pass
        assert 0.9 < time.monotonic() - started < 4
        assert caught.value.transient
        assert "acct" in str(caught.value) and "127.0.0.1" in str(caught.value)
        # Another account's lock is not blocked by this one.
        with store.refresh_lock("other"):
            pass
    finally:
        store.close()


def test_lock_is_released_on_exit_and_on_error(machines: Machines) -> None:
    a, b = _store(machines, lock_wait=1.0), _store(machines, lock_wait=1.0)
    try:
        with a.refresh_lock("acct"):
            a.write("acct/tokens", "new")
        with b.refresh_lock("acct"):  # free again at once
            assert b.read("acct/tokens") == "new"
        with pytest.raises(RuntimeError), a.refresh_lock("acct"):
            raise RuntimeError("refresh failed")
        with b.refresh_lock("acct"):
            pass
    finally:
        a.close()
        b.close()


def test_refresh_lock_nests_in_one_thread_and_excludes_other_threads(machines: Machines) -> None:
    import threading

    store = _store(machines, lock_wait=1.0)
    got: list[str] = []
    try:
        with store.refresh_lock("acct"), store.refresh_lock("acct"):  # no self-deadlock
            thread = threading.Thread(target=lambda: _try_lock(store, got))
            thread.start()
            thread.join(10)
        assert got == ["timed out"]  # another thread of the same process had to wait
        _try_lock(store, got)
        assert got[-1] == "got it"  # and after the outer exit the lock is free
    finally:
        store.close()


def _try_lock(store: PostgresStore, got: list[str]) -> None:
    try:
        with store.refresh_lock("acct"):
            got.append("got it")
    except ProviderError:
        got.append("timed out")


def test_refresh_lock_takes_an_account_name(machines: Machines) -> None:
    store = _store(machines)
    with pytest.raises(UsageError):
        store.refresh_lock("acct/tokens")
    with pytest.raises(UsageError):
        store.refresh_lock("../x")
    # Local stores offer no lock of their own: the service keeps its file lock for them.
    assert MemoryStore().refresh_lock("acct") is None


def test_concurrent_first_start_migrates_once(machines: Machines) -> None:
    procs = [machines.start(i % 2, "migrate") for i in range(8)]
    go(procs)
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    with machines.server.admin() as conn:
        rows = conn.execute(f'SELECT version FROM "{machines.schema}".schema_version').fetchall()
        count = conn.execute(f'SELECT count(*) FROM "{machines.schema}".records').fetchone()
    assert rows == [(SCHEMA_VERSION,)]
    assert count == (8,)


def test_server_restart_while_the_lock_is_held(machines: Machines, caplog: pytest.LogCaptureFixture) -> None:
    """No deadlock and nothing lost: the waiter reconnects and gets the lock once the holder's
    write landed (the holder's lease kept it off meanwhile), rows decrypt."""
    holder = _store(machines, lock_wait=5.0)
    holder.write("acct/tokens", "before the restart")
    with caplog.at_level(logging.WARNING), holder.refresh_lock("acct"):
        waiter = machines.start(1, "wait", TDGUI_TEST_PG_LOCK_WAIT="30")
        assert line(waiter) == "ready"
        wait_until_queued(machines.server)
        machines.server.stop()
        machines.server.start()
        holder.write("acct/tokens", "written after the restart")  # a new connection
    assert "lost while held" in caplog.text
    out, err = waiter.communicate(timeout=20)  # reconnected, then got the lock, well before 30 s
    assert waiter.returncode == 0 and out.startswith("got "), err
    assert machines.server.password not in err
    other = _store(machines, lock_wait=1.0)
    try:
        assert other.read("acct/tokens") == "written after the restart"
        with other.refresh_lock("acct"):  # free: it died with the holder's session
            pass
    finally:
        other.close()
        holder.close()


def _granted_lock_pids(server: PgServer) -> list[int]:
    with server.admin() as conn:
        rows = conn.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchall()
    return [int(r[0]) for r in rows]


def _terminate(server: PgServer, pid: int) -> None:
    with server.admin() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_connection_lost_while_waiting_for_a_lease_reconnects_and_waits_on(machines: Machines) -> None:
    """A waiter that took the lock and waits for a cut-off holder's lease loses its own lock
    connection (the restart case): it reconnects, takes the lock again and waits on for the
    lease, instead of failing with a raw driver error (review of _wait_for_lease)."""
    import threading

    holder, waiter = _store(machines, lock_wait=5.0), _store(machines, lock_wait=20.0)
    got: list[str] = []
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            with waiter.refresh_lock("acct"):
                got.append(waiter.read("acct/tokens") or "")
        except BaseException as exc:
            failed.append(exc)

    holder.write("acct/tokens", "old")
    try:
        with holder.refresh_lock("acct"):
            holder.write("acct/status", "refresh in flight")  # the lease is written
            (holder_pid,) = _granted_lock_pids(machines.server)
            _terminate(machines.server, holder_pid)  # the holder's lock connection is cut
            thread = threading.Thread(target=wait)
            thread.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the waiter took the freed lock: it polls the lease
                pids = [p for p in _granted_lock_pids(machines.server) if p != holder_pid]
                if pids:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the waiter never took the lock")
            time.sleep(0.3)
            _terminate(machines.server, pids[0])  # its lock connection is lost while it waits
            time.sleep(0.5)
            assert not failed, failed
            assert got == []  # still kept off by the lease
            holder.write("acct/tokens", "new")
        thread.join(20)
        assert not failed, failed
        assert got == ["new"]
    finally:
        holder.close()
        waiter.close()


def _lease_rows(m: Machines) -> list[tuple[bytes]]:
    with m.server.admin() as conn:
        rows = conn.execute(f"SELECT key_id FROM \"{m.schema}\".records WHERE name = '.lease'").fetchall()
    return [(bytes(r[0]),) for r in rows]


def test_a_wrong_key_machine_takes_no_lease_and_the_right_key_refreshes_after(machines: Machines) -> None:
    """A machine joined with another key that tries a refresh gets WrongKey at its first write
    and leaves no lease under its key id (one left behind, by a SIGKILL before the lease is
    dropped, made every right-key write fail WrongKey: review of take_lease)."""
    from tdgui.core.record_crypto import WrongKey

    right = _store(machines, lock_wait=5.0)
    wrong = PostgresStore(
        machines.server.url(),
        key=RecordKey.generate(),
        password=machines.server.password,
        schema=machines.schema,
        lock_wait=5.0,
    )
    try:
        right.write("acct/tokens", "tokens")
        with wrong.refresh_lock("acct"):
            with pytest.raises(WrongKey):
                wrong.write("acct/status", "refresh in flight")
            assert _lease_rows(machines) == []  # nothing to outlive this holder
        with pytest.raises(WrongKey):
            wrong.write("acct/tokens", "other")  # outside the lock too, as before
        started = time.monotonic()
        with right.refresh_lock("acct"):
            right.write("acct/status", "refresh in flight")
            assert _lease_rows(machines) == [(machines.key.key_id,)]
            right.write("acct/tokens", "rotated")
        assert time.monotonic() - started < 3  # no stale lease to wait for
        assert _lease_rows(machines) == []
        assert right.read("acct/tokens") == "rotated"
    finally:
        right.close()
        wrong.close()


def test_a_stale_lease_of_another_key_does_not_lock_the_right_key_out(machines: Machines) -> None:
    """A `.lease` row under another key id (left by an older tdgui's wrong-key machine that was
    killed holding the lock) is not a record: the right key's writes still go through."""
    right = _store(machines, lock_wait=20.0)
    try:
        right.write("acct/tokens", "tokens")
        with machines.server.admin() as conn:
            conn.execute(
                f'INSERT INTO "{machines.schema}".records (account, name, key_id, ciphertext, updated_at) '
                "VALUES ('acct', '.lease', %s, %s, clock_timestamp() - interval '1 hour')",
                (RecordKey.generate().key_id, b"stale holder"),
            )
        right.write("acct/status", "idle")  # outside the lock: the guard skips the lease row
        with right.refresh_lock("acct"):  # aged out: not waited for
            right.write("acct/status", "refresh in flight")
            right.write("acct/tokens", "rotated")
        assert right.read("acct/tokens") == "rotated"
        assert _lease_rows(machines) == []
    finally:
        right.close()


def test_lock_connection_lost_before_the_first_write_sends_no_refresh(machines: Machines) -> None:
    """The holder's lock connection is cut (a proxy dropping it) before it wrote anything: the
    lock is gone and another machine takes it. The status mark the service writes before it
    sends the refresh fails with a transient error and writes nothing, so no second refresh
    with the same refresh token goes out (review of Lease.take)."""
    from helpers.tcp_proxy import TcpProxy

    server = machines.server
    proxy = TcpProxy("127.0.0.1", server.port).start()
    url = server.url().replace(f":{server.port}/", f":{proxy.port}/")
    a = PostgresStore(url, key=machines.key, password=server.password, schema=machines.schema, lock_wait=5.0)
    b = _store(machines, lock_wait=2.0)
    try:
        a.write("acct/status", "idle")
        with a.refresh_lock("acct"):
            assert a.read("acct/status") == "idle"
            proxy.stop()  # every connection of A's ends, its lock with its lock connection
            proxy.start()
            with b.refresh_lock("acct"):  # the lock is free: another machine takes it
                pass
            with pytest.raises(ProviderError) as caught:
                a.write("acct/status", "refresh in flight")
            assert caught.value.transient
            assert "nothing was sent" in str(caught.value)
        assert b.read("acct/status") == "idle"  # nothing written
        assert _lease_rows(machines) == []
        with a.refresh_lock("acct"):  # the next hold works as before
            a.write("acct/status", "refresh in flight")
            a.write("acct/tokens", "rotated")
        assert b.read("acct/tokens") == "rotated"
    finally:
        a.close()
        b.close()
        proxy.stop()

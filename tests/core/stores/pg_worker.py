"""A child process for the PostgreSQL lock and migration tests (one "machine" is its HOME)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tdgui.core.record_crypto import RecordKey
from tdgui.core.stores.postgres import PostgresStore


def store() -> PostgresStore:
    return PostgresStore(
        os.environ["TDGUI_TEST_PG_URL"],
        key=RecordKey.parse(os.environ["TDGUI_TEST_PG_KEY"]),
        password=os.environ["TDGUI_TEST_PG_PASSWORD"],
        schema=os.environ["TDGUI_TEST_PG_SCHEMA"],
        lock_wait=float(os.environ.get("TDGUI_TEST_PG_LOCK_WAIT", "60")),
    )


def contend(rounds: int, shared: Path) -> None:
    """Take the lock `rounds` times; inside it, claim a marker file no one else may hold."""
    s = store()
    s.check_available()
    print("ready", flush=True)
    sys.stdin.readline()
    marker = shared / "inside"
    for _ in range(rounds):
        with s.refresh_lock("acct"):
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                print("OVERLAP", flush=True)
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            time.sleep(0.01)
            # The read-check-write a refresh does, under the lock: a counter no update may lose.
            count = int(s.read("acct/tokens") or "0")
            s.write("acct/tokens", str(count + 1))
            marker.unlink()
        print("round", flush=True)
    print("done", flush=True)


def hold() -> None:
    s = store()
    with s.refresh_lock("acct"):
        print("held", flush=True)
        time.sleep(3600)


def wait() -> None:
    s = store()
    s.check_available()
    print("ready", flush=True)
    started = time.monotonic()
    with s.refresh_lock("acct"):
        print(f"got {time.monotonic() - started:.3f}", flush=True)


def migrate() -> None:
    """Open a store on a schema nobody created yet, all at the same moment."""
    s = store()
    # Connected before the start signal (a TLS handshake takes longer than the migration),
    # so every process reaches the empty schema at the same moment.
    s._conn = s._open()
    print("ready", flush=True)
    sys.stdin.readline()
    s.write(f"m{os.getpid()}/tokens", "x")
    print("ok", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "contend":
        contend(int(sys.argv[2]), Path(sys.argv[3]))
    elif mode == "hold":
        hold()
    elif mode == "wait":
        wait()
    else:
        migrate()

"""Row 7: SIGKILL at random points during writes of each store (file, sql, chunked keyring).

A fork server (rel_workers.py fork_writer) starts a writer child that rewrites one record in a
loop, logging `b N` before and `d N` after each write; we SIGKILL the child at a random moment
while it writes, then read the record. Must hold: every read gives the old or the new record
(the last one done, or the one being written), byte-identical; 0 corrupt.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rel_support import scale, wait_for, worker_cmd
from rel_workers import open_store, record_value
from tdgui.core.stores.base import TokenStore

#: Writes begun per store (each killed child begins 1-3 of them; the last one is cut).
WRITES = {"file": scale(60, 500), "sql": scale(60, 500), "keyring": scale(20, 500)}
#: 3,000 characters: for the keyring 3 chunks + header, so kills land between chunks too.
LENGTH = 3000


def parse_progress(path: Path) -> tuple[int | None, int | None]:
    """(last done, begun but not done) from the writer's log."""
    done = begun = None
    for line in path.read_text().splitlines():
        what, _, number = line.partition(" ")
        if not number.isdigit():
            continue  # a line cut by the kill
        if what == "b":
            begun = int(number)
        elif what == "d":
            done = int(number)
    pending = begun if begun is not None and begun != done else None
    return done, pending


def keyring_items(service: str) -> int:
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        return len(list(collection.search_items({"service": service})))
    finally:
        connection.close()


@pytest.mark.parametrize("kind", ["file", "sql", "keyring"])
def test_sigkill_during_writes_leaves_old_or_new(
    kind: str, tmp_path: Path, figure, request: pytest.FixtureRequest
) -> None:
    if kind == "keyring":
        request.getfixturevalue("private_keyring")  # killing clients may take the daemon down
    location = {
        "file": str(tmp_path / "tokens"),
        "sql": str(tmp_path / "db" / "tokens.sqlite3"),
        "keyring": f"tdgui-r7-{os.getpid()}-{tmp_path.name}",
    }[kind]
    length = LENGTH
    target = WRITES[kind]
    store: TokenStore = open_store(kind, location)  # type: ignore[assignment]
    # Calibrate: kill within ~1.5 write durations after a write began.
    started = time.monotonic()
    for i in range(5):
        store.write("acct/tokens", record_value(i, length))
    window = 1.5 * (time.monotonic() - started) / 5
    next_index = 5
    last_read = 4
    server = subprocess.Popen(
        worker_cmd("fork_writer", kind, location, str(length)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    rng = random.Random(7)
    mid_write = old_seen = new_seen = writes_done = writes_begun = kills = 0
    try:
        while writes_begun < target:
            kill = kills
            kills += 1
            progress = tmp_path / f"progress-{kill}.log"
            server.stdin.write(f"start {next_index} {progress}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            # Let it begin at least one write (sometimes several), then kill at a random moment.
            wanted = rng.choice([1, 1, 1, 2, 3])
            started_ok = wait_for(
                lambda p=progress, w=wanted: p.exists() and p.read_text().count("b ") >= w, 30, 0.0005
            )
            assert started_ok, f"writer made no progress: {server.stderr and ''}"
            time.sleep(rng.uniform(0, window))
            os.kill(pid, signal.SIGKILL)
            reaped = server.stdout.readline()
            assert reaped.startswith("reaped"), reaped
            done, pending = parse_progress(progress)
            old = done if done is not None else last_read
            value = store.read("acct/tokens")
            assert value is not None, f"kill {kill}: record reads as absent (old {old}, new {pending})"
            got = int(value[:8])
            assert got in (old, pending), f"kill {kill}: read record {got}, expected {old} or {pending}"
            assert value == record_value(got, length), f"kill {kill}: record {got} is corrupt"
            mid_write += pending is not None
            new_seen += got == pending
            old_seen += got == old
            writes_done += (done - next_index + 1) if done is not None else 0
            last_begun = pending if pending is not None else done
            assert last_begun is not None
            writes_begun += last_begun - next_index + 1
            last_read = got
            next_index = max(got, pending if pending is not None else got) + 1
            progress.unlink()
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    assert mid_write >= kills // 2, f"only {mid_write} of {kills} kills landed inside a write"
    leftover = ""
    if kind == "keyring":
        store.delete("acct/tokens")
        left = keyring_items(location)
        leftover = f"; after delete {left} keyring items left"
    figure(
        f"row 7 ({kind}): {writes_begun} writes, {kills} SIGKILLs ({mid_write} inside a write), "
        f"read back old {old_seen} / new {new_seen}, 0 corrupt, 0 absent{leftover}"
    )


#: Writers killed mid-write by the debris test: more than one journal piece holds (30 entries)
#: and than the old capped journal kept (~36 entries, 2 per killed writer: D2).
DEBRIS_KILLS = scale(32, 200)
#: 6,000 characters: 5 chunks (a kill lands between chunks), header, journal.
DEBRIS_LENGTH = 6000


def test_keyring_killed_writers_leave_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figure, private_keyring: dict[str, str]
) -> None:
    """D2: after dozens of writers killed mid-write within seconds, the next write (once their
    entries are stale) leaves only the live record, and delete() leaves no entry at all."""
    from tdgui.core.stores.keyring import chunks

    service = f"tdgui-r7-debris-{os.getpid()}-{tmp_path.name}"
    length = DEBRIS_LENGTH
    store: TokenStore = open_store("keyring", service)  # type: ignore[assignment]
    store.write("acct/tokens", record_value(0, length))
    # Calibrate: a chunked write is journal first (call 3 of 9), chunks, header last; kill
    # between the journal and the header, where a killed writer leaves debris.
    started = time.monotonic()
    for i in range(3):
        store.write("acct/tokens", record_value(i, length))
    write_time = (time.monotonic() - started) / 3
    server = subprocess.Popen(
        worker_cmd("fork_writer", "keyring", service, str(length)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    rng = random.Random(11)
    started = time.monotonic()
    try:
        for kill in range(DEBRIS_KILLS):
            progress = tmp_path / f"debris-{kill}.log"
            server.stdin.write(f"start {kill + 1} {progress}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            assert wait_for(lambda p=progress: p.exists() and "b " in p.read_text(), 30, 0.0005)
            time.sleep(rng.uniform(0.3, 0.9) * write_time)
            os.kill(pid, signal.SIGKILL)
            assert server.stdout.readline().startswith("reaped")
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    elapsed = time.monotonic() - started
    debris = keyring_items(service)
    value = store.read("acct/tokens")
    assert value is not None and value == record_value(int(value[:8]), length)
    # The killed writers' journal entries are young (they might be live writers): a write
    # keeps them. Once stale, the next write collects every one of them.
    monkeypatch.setattr(chunks, "STALE_SECONDS", -1.0)
    store.write("acct/tokens", record_value(10**6, length))
    after_write = keyring_items(service)
    assert after_write == 1 + 5 + 1, "after a write: only the header, its 5 chunks and the journal"
    store.delete("acct/tokens")
    left = keyring_items(service)
    figure(
        f"row 7 (keyring debris, D2): {DEBRIS_KILLS} writers killed mid-write in {elapsed:.1f} s left "
        f"{debris} keyring entries (write {write_time * 1000:.0f} ms); the next write (entries stale) "
        f"left {after_write} (the live record: header, 5 chunks, journal); delete(): {left} left"
    )
    assert left == 0


# ----------------------------------------------------------------------------- the window

#: Writes measured per record shape (issue 11: "measure the remaining window per store").
WINDOW_WRITES = scale(15, 50)


def schwab_record(id_token_chars: int) -> str:
    """A token record as tdgui stores a Schwab refresh answer (tokens shaped like Schwab's)."""
    import base64
    import secrets

    from tdgui.core import providers
    from tdgui.core.tokens import TokenSet

    def jwt_part(size: int) -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(size * 3 // 4)).rstrip(b"=").decode()[:size]

    response: dict[str, object] = {
        "expires_in": 1800,
        "token_type": "Bearer",
        "scope": "api",
        "refresh_token": secrets.token_urlsafe(64) + "@",
        "access_token": "I0." + secrets.token_urlsafe(64) + "@",
    }
    if id_token_chars:
        body = id_token_chars - 36 - 43 - 2
        response["id_token"] = f"{jwt_part(36)}.{jwt_part(body)}.{jwt_part(43)}"
    return TokenSet.from_response(response, providers.schwab(), time.time()).to_json()


def test_keyring_window_from_answer_to_stored(monkeypatch: pytest.MonkeyPatch, figure) -> None:
    """From "the refresh answer is in hand" (its record text built) to "durably stored" (the
    keyring call that commits it returned), as the service writes it: the record was read
    just before (the refresh needed its refresh token). Must hold: a record that fits one
    entry is one keyring call; a chunked one is journal read + journal write + its chunks +
    the header; a small record over a chunked one is one call too (the old chunks go after)."""
    import statistics

    from tdgui.core.stores.keyring import KeyringStore
    from tdgui.core.stores.keyring.chunks import split_chunks
    from tdgui.core.stores.keyring.timed import TimedKeyring

    log: list[tuple[str, str, float]] = []

    def observed(name: str) -> Any:
        """TimedKeyring.<name> as it is (the real Secret Service), noting when each returned."""
        original = getattr(TimedKeyring, name)

        def call(self: TimedKeyring, username: str, *args: Any, **kwargs: Any) -> Any:
            result = original(self, username, *args, **kwargs)
            log.append((name, username, time.perf_counter()))
            return result

        return call

    for name in ("get", "set", "delete"):
        monkeypatch.setattr(TimedKeyring, name, observed(name))
    service = f"tdgui-r7-window-{os.getpid()}"
    shapes = {
        "small (fits one entry)": (0, 0),
        "Schwab 1.6 KB": (1000, 1000),
        "Schwab 3 KB": (2400, 2400),
        "small over chunked": (1000, 0),
    }
    results = []
    for label, (before_size, size) in shapes.items():
        store = KeyringStore(service=service)
        assert "(SecretService)" in store.describe(), "needs the real Secret Service"
        windows, totals, calls = [], [], set()
        length = 0
        for index in range(WINDOW_WRITES):
            if index == 0 or before_size != size:
                store.write("acct/tokens", schwab_record(before_size))
            store.read("acct/tokens")  # what the refresh does before it asks the provider
            record = schwab_record(size)
            length = len(record)
            log.clear()
            started = time.perf_counter()
            store.write("acct/tokens", record)  # the answer is in hand
            done = time.perf_counter()
            commit = next(i for i, (op, who, _) in enumerate(log) if (op, who) == ("set", "acct/tokens"))
            windows.append(log[commit][2] - started)
            totals.append(done - started)
            calls.add(commit + 1)
        pieces = len(split_chunks(record)) if length > 1200 else 0
        expected = 1 if pieces == 0 else pieces + 3
        assert calls == {expected}, f"{label}: {calls} calls before the commit, expected {expected}"
        entries = f"{pieces} entries" if pieces > 1 else "1 entry"
        median, worst = statistics.median(windows) * 1000, max(windows) * 1000
        results.append(
            f"{label} ({length:,} chars, {entries}): {expected} keyring call(s), median "
            f"{median:.1f} ms, max {worst:.1f} ms (whole write: median "
            f"{statistics.median(totals) * 1000:.1f} ms)"
        )
        store.delete("acct/tokens")
    figure(f"row 7 (keyring window, {WINDOW_WRITES} writes each): " + "; ".join(results))

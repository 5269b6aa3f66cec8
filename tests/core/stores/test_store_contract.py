"""The TokenStore contract, run against every store (keyring against a real gnome-keyring)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tdgui.core.errors import UsageError
from tdgui.core.stores import TokenStore
from tdgui.core.stores.file import FileStore
from tdgui.core.stores.memory import MemoryStore
from tdgui.core.stores.sql import SQLStore

REPO = Path(__file__).resolve().parents[3]
KINDS = ["memory", "file", "sql", "keyring", "postgres"]

WITH_KEYRING = "scripts/with-keyring.sh .venv/bin/pytest tests/core/stores/test_store_contract.py"


def secret_service_items(service: str) -> list[str]:
    """Usernames of every Secret Service item of `service` (read past the keyring API)."""
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        return sorted(
            item.get_attributes()["username"] for item in collection.search_items({"service": service})
        )
    finally:
        connection.close()


def purge_secret_service(service: str) -> None:
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        for item in collection.search_items({"service": service}):
            item.delete()
    finally:
        connection.close()


def real_keyring_store(service: str | None = None) -> Iterator[TokenStore]:
    """A KeyringStore on the real Secret Service under a fresh service name; fails (never
    skips) when there is no Secret Service, so a run without one cannot look green."""
    import keyring

    from tdgui.core.stores.keyring import KeyringStore

    service = service or f"tdgui-test-{uuid.uuid4().hex[:12]}"
    store = KeyringStore(service=service)
    description = store.describe()
    if not sys.platform.startswith("linux"):
        # .github/workflows/build.yml runs this suite on windows-latest / macos-latest against
        # the platform's own keyring (Credential Manager, Keychain: keyring's Windows and macOS
        # backends); there is no Secret Service there to purge, so each written key is deleted.
        yield from native_keyring_store(store, description)
        return
    if "(SecretService)" not in description:
        pytest.fail(
            "keyring tests need a real, unlocked Secret Service, but keyring offers "
            f"{keyring.get_keyring()!r} ({description}). Run them in a private D-Bus session "
            f"with gnome-keyring: `{WITH_KEYRING}` (make test does this).",
            pytrace=False,
        )
    try:
        yield store
    finally:
        purge_secret_service(service)


#: The keyring backend module a non-Linux runner must use (keyring's own backends).
NATIVE_BACKEND = {"win32": "(Windows)", "darwin": "(macOS)"}


def native_keyring_store(store: TokenStore, description: str) -> Iterator[TokenStore]:
    """The store on Windows Credential Manager / macOS Keychain; fails if keyring chose another."""
    expected = NATIVE_BACKEND.get(sys.platform, "(?)")
    if expected not in description:
        pytest.fail(f"keyring tests need the platform keyring {expected}, got {description}", pytrace=False)
    written: set[str] = set()
    write = store.write

    def recording_write(key: str, value: str) -> None:
        written.add(key)
        write(key, value)

    store.write = recording_write  # type: ignore[method-assign]
    try:
        yield store
    finally:
        for key in sorted(written):
            store.delete(key)


def postgres_store(request: pytest.FixtureRequest) -> Iterator[TokenStore]:
    """A PostgresStore in a fresh schema of the session's private server (dropped afterwards)."""
    from tdgui.core.record_crypto import RecordKey
    from tdgui.core.stores.postgres import PostgresStore

    server = request.getfixturevalue("postgres_server")
    schema = server.fresh_schema()
    store = PostgresStore(server.url(), key=RecordKey.generate(), password=server.password, schema=schema)
    try:
        yield store
    finally:
        store.close()
        server.drop_schema(schema)


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TokenStore]:
    if kind == "postgres":
        yield from postgres_store(request)
    elif kind == "memory":
        yield MemoryStore()
    elif kind == "file":
        yield FileStore(tmp_path / "tokens")
    elif kind == "sql":
        yield SQLStore(tmp_path / "db" / "tokens.sqlite3")
    else:
        yield from real_keyring_store()


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TokenStore]:
    yield from make_store(request.param, tmp_path, request)


def text_of(length: int, seed: str = "v") -> str:
    """Deterministic text of `length` characters with a recognisable, position-dependent body."""
    pattern = f"{seed}:" + "".join(chr(ord("a") + i % 26) for i in range(97))
    return (pattern * (length // len(pattern) + 1))[:length]


# ----------------------------------------------------------------------------- basics


def test_read_missing_is_none(store: TokenStore) -> None:
    assert store.read("nobody/tokens") is None
    assert store.read("nobody/secret") is None


def test_round_trip(store: TokenStore) -> None:
    value = '{"access_token": "abc", "refresh_token": "def", "expires_at": 1700000000.5}'
    store.write("alice/tokens", value)
    assert store.read("alice/tokens") == value


def test_overwrite(store: TokenStore) -> None:
    store.write("alice/tokens", "first")
    store.write("alice/tokens", "second")
    assert store.read("alice/tokens") == "second"
    store.write("alice/tokens", text_of(3000, "big"))
    store.write("alice/tokens", "small again")
    assert store.read("alice/tokens") == "small again"


def test_delete_and_delete_missing(store: TokenStore) -> None:
    store.write("alice/tokens", "x")
    store.delete("alice/tokens")
    assert store.read("alice/tokens") is None
    store.delete("alice/tokens")  # missing: not an error
    store.delete("never-written/secret")
    store.write("alice/tokens", "back")  # usable after a delete
    assert store.read("alice/tokens") == "back"


def test_independent_keys(store: TokenStore) -> None:
    store.write("alice/tokens", "alice tokens")
    store.write("alice/secret", "alice secret")
    store.write("bob/tokens", text_of(2500, "bob"))
    store.write("alice", "bare key")
    store.delete("alice/secret")
    assert store.read("alice/tokens") == "alice tokens"
    assert store.read("alice/secret") is None
    assert store.read("bob/tokens") == text_of(2500, "bob")
    assert store.read("alice") == "bare key"


@pytest.mark.parametrize("length", [0, 1, 1199, 1200, 1201, 5000, 10000])
def test_sizes(store: TokenStore, length: int) -> None:
    value = text_of(length)
    store.write("acct.1/tokens", value)
    assert store.read("acct.1/tokens") == value


NON_ASCII = [
    "café crème brûlée — \u201cquotes\u201d \u2018single\u2019 ñ ß ø",
    "emoji 😀🚀👩‍💻🇫🇷 astral 𝄞",
    "CJK 東京証券取引所 한국어 עברית العربية",
    "line\r\nbreaks\rand\ttabs\n\u2028\u00a0\ufeff",
    ("é" * 1199) + "😀",  # 1,200 characters, 1,201 UTF-16 units
    "😀" * 1199,
    "😀" * 1200,
    "😀" * 1201,
    ("aé😀東" * 2500)[:10000],
]


@pytest.mark.parametrize("value", NON_ASCII, ids=range(len(NON_ASCII)))
def test_non_ascii_round_trips_identically(store: TokenStore, value: str) -> None:
    store.write("u/tokens", value)
    got = store.read("u/tokens")
    assert got is not None
    assert got.encode("utf-8") == value.encode("utf-8")


@pytest.mark.parametrize(
    "value",
    [
        "tdgui-chunks:v1:0123456789abcdef:1:" + "0" * 64,
        "tdgui-chunks:v1:",
        "tdgui-chunks:v9:whatever",
        "tdgui-chunks:" + text_of(3000),
    ],
)
def test_value_that_looks_like_a_chunk_header(store: TokenStore, value: str) -> None:
    store.write("h/tokens", value)
    assert store.read("h/tokens") == value


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/tokens",
        "a/b",
        "a/tokens/x",
        "../etc/passwd",
        ".hidden/tokens",
        "a b/tokens",
        "a#1/tokens",
        "x" * 65 + "/tokens",
        "a/Tokens",
        "ü/tokens",
    ],
)
def test_invalid_key_is_usage_error(store: TokenStore, key: str) -> None:
    with pytest.raises(UsageError):
        store.read(key)
    with pytest.raises(UsageError):
        store.write(key, "v")
    with pytest.raises(UsageError):
        store.delete(key)


def test_invalid_value_is_usage_error_without_echo(store: TokenStore) -> None:
    value = "secret-\udc80-value"
    with pytest.raises(UsageError) as caught:
        store.write("a/tokens", value)
    assert "secret" not in str(caught.value)
    assert store.read("a/tokens") is None


def test_describe_and_check_available(store: TokenStore) -> None:
    store.write("a/secret", "do-not-print-me")
    assert store.kind in KINDS
    description = store.describe()
    assert description and "do-not-print-me" not in description
    store.check_available()


# ----------------------------------------------------------------------------- concurrency


def test_concurrent_writers_leave_one_written_value(store: TokenStore) -> None:
    # Keyring calls take ~20-30 ms each over D-Bus: fewer rounds keep this test short there.
    rounds = 2 if store.kind == "keyring" else 10
    threads_n = 4
    values = {
        (t, r): text_of(1500 if (t + r) % 2 else 300, f"t{t}r{r}")
        for t in range(threads_n)
        for r in range(rounds)
    }
    initial = text_of(1500, "initial")
    store.write("race/tokens", initial)
    seen_bad: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n + 1)

    def writer(t: int) -> None:
        try:
            start.wait()
            for r in range(rounds):
                store.write("race/tokens", values[(t, r)])
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            start.wait()
            for _ in range(rounds * 2):
                got = store.read("race/tokens")
                if got != initial and got not in values.values():
                    seen_bad.append(repr(got)[:80])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n - 1)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    start.wait()
    for r in range(rounds):  # the main thread is the last writer
        store.write("race/tokens", values[(threads_n - 1, r)])
    for thread in threads:
        thread.join(60)
    assert not errors
    assert not seen_bad
    final = store.read("race/tokens")
    assert final in {values[(t, rounds - 1)] for t in range(threads_n)}


# ----------------------------------------------------------------------------- SIGKILL

_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    kind, where = sys.argv[1], sys.argv[2]
    if kind == "file":
        from tdgui.core.stores.file import FileStore
        store = FileStore(Path(where))
    elif kind == "sql":
        from tdgui.core.stores.sql import SQLStore
        store = SQLStore(Path(where))
    elif kind == "postgres":
        from tdgui.core.record_crypto import RecordKey
        from tdgui.core.stores.postgres import PostgresStore
        url, schema = where.split(" ", 1)
        key = RecordKey.parse(os.environ["TDGUI_TEST_PG_KEY"])
        store = PostgresStore(url, key=key, password=os.environ["TDGUI_TEST_PG_PASSWORD"], schema=schema)
    else:
        from tdgui.core.stores.keyring import KeyringStore
        store = KeyringStore(service=where)
    values = [os.environ["TDGUI_TEST_A"], os.environ["TDGUI_TEST_B"]]
    store.check_available()  # keyring picks its backend on first use: not inside the timing
    print("ready", flush=True)
    sys.stdin.readline()
    i = 1
    while True:
        started = time.perf_counter()
        store.write("victim/tokens", values[i % 2])
        print(f"wrote {time.perf_counter() - started:.6f}", flush=True)
        i += 1
    """
)


class _Child:
    """A writer process started ahead of time (imports take longer than a keyring write)."""

    def __init__(self, kind: str, where: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, kind, where],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO,
            text=True,
        )

    def go(self) -> float:
        """Start writing; return once the first write is done, with how long it took."""
        assert self.proc.stdout is not None and self.proc.stdin is not None
        assert self.proc.stdout.readline().strip() == "ready"
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        word, seconds = self.proc.stdout.readline().split()
        assert word == "wrote"
        return float(seconds)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("kind", ["file", "sql", "keyring", "postgres"])
def test_sigkill_mid_write_never_corrupts(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "keyring":
        request.getfixturevalue("private_keyring")  # killing clients may take the daemon down
    stores = make_store(kind, tmp_path, request)
    store = next(stores)
    try:
        _sigkill_loop(kind, store, tmp_path)
    finally:
        stores.close()


def _sigkill_loop(kind: str, store: TokenStore, tmp_path: Path) -> None:
    # Records big enough to be chunked by the keyring store (2 chunks each), and distinct.
    record_a = text_of(2000, "AAAA") + "é😀"
    record_b = text_of(2100, "BBBB") + "ü🚀"
    if isinstance(store, FileStore):
        where = str(store.directory)
    elif isinstance(store, SQLStore):
        where = str(store.path)
    elif kind == "postgres":
        where = f"{store.url} {store.schema}"  # type: ignore[attr-defined]
    else:
        where = store.service  # type: ignore[attr-defined]
    env = dict(os.environ, TDGUI_TEST_A=record_a, TDGUI_TEST_B=record_b, PYTHONPATH=str(REPO))
    if kind == "postgres":
        env["TDGUI_TEST_PG_KEY"] = store.key.encode()  # type: ignore[attr-defined]
        env["TDGUI_TEST_PG_PASSWORD"] = store._password  # type: ignore[attr-defined]

    store.write("victim/tokens", record_a)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    kills = 20
    outcomes: list[str] = []
    # Writers start ahead of time: Python start-up and imports take longer than a write.
    children = [_Child(kind, where, env) for _ in range(2)]
    try:
        for index in range(kills):
            child = children[index]
            # The child has written B once (so its loop is running and timed on this machine,
            # under this load); kill it at a random point of the writes that follow.
            write_time = child.go()
            if len(children) < kills:
                children.append(_Child(kind, where, env))
            time.sleep(rng.uniform(0, write_time))
            child.kill()
            got = store.read("victim/tokens")
            outcomes.append("A" if got == record_a else "B" if got == record_b else f"CORRUPT {got!r:.60}")
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.kill()

    corrupt = [o for o in outcomes if o not in ("A", "B")]
    summary = f"seed {seed}, outcomes {''.join(o[0] for o in outcomes)}"
    assert not corrupt, f"{len(corrupt)} corrupt reads ({summary}): {corrupt[:3]}"

    store.write("victim/tokens", "after the storm")
    assert store.read("victim/tokens") == "after the storm"
    store.delete("victim/tokens")
    assert store.read("victim/tokens") is None
    # Nothing of the killed writers may outlive a delete (a secret left behind is a leak).
    if isinstance(store, FileStore):
        assert sorted(p.name for p in store.directory.iterdir()) == []
    elif kind == "keyring" and sys.platform.startswith("linux"):
        # (Keychain / Credential Manager cannot be listed through keyring's API.)
        assert secret_service_items(where) == []

"""FileStore and SQLStore specifics: layout, 0600/0700 modes whatever the umask, errors; open_store."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tdgui.core.errors import StoredDataError, StoreUnavailable, UsageError
from tdgui.core.stores import STORE_KINDS, open_store
from tdgui.core.stores.file import FileStore
from tdgui.core.stores.memory import MemoryStore
from tdgui.core.stores.sql import SQLStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_000() -> Iterator[None]:
    """The worst umask: anything the code forgets to restrict ends up world-writable."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------- FileStore


def test_file_layout(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "tokens")
    store.write("ACCOUNT/tokens", "t")
    store.write("ACCOUNT/secret", "s")
    store.write("ACCOUNT", "bare")
    names = sorted(p.name for p in (tmp_path / "tokens").iterdir())
    assert names == ["ACCOUNT.record", "ACCOUNT.secret", "ACCOUNT.tokens.json"]
    assert (tmp_path / "tokens" / "ACCOUNT.tokens.json").read_bytes() == b"t"


def test_file_modes_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    store = FileStore(tmp_path / "new" / "tokens")
    store.write("a/tokens", "x")
    assert mode(tmp_path / "new" / "tokens") == 0o700
    assert mode(store.path_for("a/tokens")) == 0o600


def test_file_write_fixes_loose_modes(tmp_path: Path, umask_000: None) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    loose = directory / "a.tokens.json"
    loose.write_text("old")
    os.chmod(loose, 0o644)
    FileStore(directory).write("a/tokens", "new")
    assert mode(directory) == 0o700
    assert mode(loose) == 0o600
    assert loose.read_text() == "new"


def test_file_default_is_under_the_config_dir(isolated_config: Path) -> None:
    assert FileStore.default().directory == isolated_config / "tokens"
    assert open_store("file", isolated_config).describe().startswith(f"files in {isolated_config / 'tokens'}")
    assert "not encrypted" in open_store("file", isolated_config).describe()


def test_file_os_errors_become_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = FileStore(blocker)
    with pytest.raises(StoreUnavailable, match="cannot write token file") as caught:
        store.write("a/tokens", "secret-value")
    assert "secret-value" not in str(caught.value)
    with pytest.raises(StoreUnavailable, match="cannot read"):
        store.read("a/tokens")
    with pytest.raises(StoreUnavailable):
        store.check_available()


def test_file_keeps_crlf_and_reports_undecodable_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "tokens")
    store.write("a/tokens", "one\r\ntwo\r")
    assert store.read("a/tokens") == "one\r\ntwo\r"
    store.path_for("a/tokens").write_bytes(b"\xff\xfe bad")
    with pytest.raises(StoredDataError, match="not valid UTF-8"):
        store.read("a/tokens")


def test_file_delete_removes_killed_writers_temp_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "tokens")
    store.write("a/tokens", "v")
    debris = tmp_path / "tokens" / ".a.tokens.json.abc123.tmp"
    debris.write_text("half a secret")
    other = tmp_path / "tokens" / ".b.tokens.json.abc123.tmp"
    other.write_text("another key's write in progress")
    store.write("a/tokens", "w")  # young debris may be a live writer's: kept on write
    assert debris.exists()
    old = time.time() - 3600
    os.utime(debris, (old, old))
    store.write("a/tokens", "x")  # stale debris: removed
    assert not debris.exists()
    debris.write_text("half a secret")
    store.delete("a/tokens")  # delete leaves no copy of the secret behind
    assert not debris.exists()
    assert other.exists()


def test_refuses_a_shared_sticky_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    with pytest.raises(StoreUnavailable, match="shared directory"):
        FileStore(shared).write("a/tokens", "v")
    with pytest.raises(StoreUnavailable, match="shared directory"):
        SQLStore(shared / "t.sqlite3").write("a/tokens", "v")
    assert mode(shared) == 0o1777  # untouched


# ----------------------------------------------------------------------------- SQLStore


def _sql_files(path: Path) -> list[Path]:
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def test_sql_schema_and_layout(tmp_path: Path) -> None:
    store = SQLStore(tmp_path / "tokens.sqlite3")
    before = time.time()
    store.write("a/tokens", "v1")
    store.write("a/tokens", "v2")
    with sqlite3.connect(store.path) as conn:
        columns = [(row[1], row[2], row[5]) for row in conn.execute("PRAGMA table_info(records)")]
        rows = conn.execute("SELECT key, value, updated_at FROM records").fetchall()
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert columns == [("key", "TEXT", 1), ("value", "TEXT", 0), ("updated_at", "REAL", 0)]
    assert rows[0][:2] == ("a/tokens", "v2") and len(rows) == 1
    assert before <= rows[0][2] <= time.time()
    assert journal == "wal"


def test_sql_modes_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    store = SQLStore(tmp_path / "new" / "tokens.sqlite3")
    store.write("a/tokens", "x")
    assert mode(tmp_path / "new") == 0o700
    files = _sql_files(store.path)
    assert store.path in files
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_sql_write_fixes_loose_modes(tmp_path: Path, umask_000: None) -> None:
    directory = tmp_path / "cfg"
    directory.mkdir()
    os.chmod(directory, 0o755)
    store = SQLStore(directory / "tokens.sqlite3")
    store.write("a/tokens", "x")
    for path in _sql_files(store.path):
        os.chmod(path, 0o644)
    os.chmod(directory, 0o755)
    store.write("a/tokens", "y")
    assert mode(directory) == 0o700
    assert all(mode(p) == 0o600 for p in _sql_files(store.path))
    assert store.read("a/tokens") == "y"


def test_sql_default_is_under_the_config_dir(isolated_config: Path) -> None:
    assert SQLStore.default().path == isolated_config / "tokens.sqlite3"
    assert "not encrypted" in open_store("sql", isolated_config).describe()


def test_sql_errors_become_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "tokens.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = SQLStore(path)
    with pytest.raises(StoreUnavailable, match="cannot be used") as caught:
        store.write("a/tokens", "secret-value")
    assert "secret-value" not in str(caught.value)
    with pytest.raises(StoreUnavailable):
        store.read("a/tokens")
    with pytest.raises(StoreUnavailable):
        SQLStore(tmp_path / "tokens.sqlite3" / "below-a-file.sqlite3").check_available()


def test_sql_waits_for_another_writer(tmp_path: Path) -> None:
    store = SQLStore(tmp_path / "tokens.sqlite3")
    store.write("a/tokens", "first")
    locked = threading.Event()
    committed_at: list[float] = []

    def hold_write_lock() -> None:
        conn = sqlite3.connect(store.path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE records SET value = 'holder' WHERE key = 'a/tokens'")
        locked.set()
        time.sleep(0.5)
        committed_at.append(time.monotonic())
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_write_lock)
    holder.start()
    assert locked.wait(5)
    store.write("a/tokens", "second")  # waits for the lock (busy timeout 5 s), no "locked" error
    finished = time.monotonic()
    holder.join()
    assert committed_at and finished >= committed_at[0]
    assert store.read("a/tokens") == "second"


def test_sql_shared_by_processes(tmp_path: Path) -> None:
    path = tmp_path / "tokens.sqlite3"
    code = (
        "import sys; from pathlib import Path; from tdgui.core.stores.sql import SQLStore\n"
        "s = SQLStore(Path(sys.argv[1]))\n"
        "for i in range(30): s.write(f'p{sys.argv[2]}/tokens', str(i))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(n)]) for n in range(3)]
    assert [p.wait(30) for p in procs] == [0, 0, 0]
    store = SQLStore(path)
    assert [store.read(f"p{n}/tokens") for n in range(3)] == ["29", "29", "29"]


# ----------------------------------------------------------------------------- open_store


def test_open_store_kinds(isolated_config: Path) -> None:
    assert STORE_KINDS == ("keyring", "file", "memory", "sql", "postgres")
    assert isinstance(open_store("file", isolated_config), FileStore)
    assert isinstance(open_store("sql", isolated_config), SQLStore)
    assert open_store("keyring", isolated_config).kind == "keyring"  # built without touching the keyring
    memory = open_store("memory", isolated_config)
    assert isinstance(memory, MemoryStore)
    assert open_store("memory", isolated_config) is memory  # one per process: service and API share it
    for kind in STORE_KINDS[:-1]:
        assert open_store(kind, isolated_config).kind == kind
    with pytest.raises(UsageError, match="tdgui share"):  # per account: TokenService.store() builds it
        open_store("postgres", isolated_config)
    with pytest.raises(UsageError, match="unknown token store 'vault'"):
        open_store("vault", isolated_config)


def test_stores_live_under_the_services_config_dir(isolated_config: Path, tmp_path: Path) -> None:
    """A service for another config dir keeps its file/sql tokens there, not under TD_CONFIG_DIR."""
    from tdgui.core.config import Account, Config
    from tdgui.core.service import TokenService

    other = tmp_path / "elsewhere"
    service = TokenService(Config(other))
    for kind in ("file", "sql"):
        account = Account(
            name=f"a-{kind}",
            provider="tdameritrade",
            client_id="K",
            callback_url="https://127.0.0.1:8182/",
            store=kind,
        )
        service.store(account).write(f"{account.name}/tokens", "t")
    assert (other / "tokens" / "a-file.tokens.json").exists()
    assert (other / "tokens.sqlite3").exists()
    assert not (isolated_config / "tokens").exists() and not (isolated_config / "tokens.sqlite3").exists()


def test_importing_the_stores_does_not_import_keyring_or_qt() -> None:
    code = (
        "import sys, tdgui.core.stores, tdgui.core.stores.file, tdgui.core.stores.sql\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keyring', 'PySide6')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

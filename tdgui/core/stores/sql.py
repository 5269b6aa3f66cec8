"""SQLStore: records in one SQLite file (pyTD's planned SQLCache), safe across threads and processes."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from tdgui.core import fsutil, paths
from tdgui.core.errors import StoreUnavailable
from tdgui.core.stores._common import encode_value, refuse_shared_dir
from tdgui.core.stores.base import TokenStore, check_key

#: How long a connection waits for another process's write lock before giving up.
BUSY_TIMEOUT_SECONDS = 5.0

_SCHEMA = "CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL)"


class SQLStore(TokenStore):
    """One SQLite database; each call opens its own connection, each write is one transaction."""

    kind = "sql"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def default(cls) -> SQLStore:
        """The store `--store sql` uses: `<config dir>/tokens.sqlite3`."""
        return cls(paths.config_dir() / "tokens.sqlite3")

    def read(self, key: str) -> str | None:
        check_key(key)
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM records WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def write(self, key: str, value: str) -> None:
        check_key(key)
        encode_value(value)
        with self._connect() as conn:
            # BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy timeout),
            # so two processes never both read-then-upgrade and hit SQLITE_BUSY mid-transaction.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO records (key, value, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    (key, value, time.time()),
                )
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def delete(self, key: str) -> None:
        check_key(key)
        with self._connect() as conn:
            # A single statement in autocommit mode is its own transaction.
            conn.execute("DELETE FROM records WHERE key = ?", (key,))

    def describe(self) -> str:
        return f"SQLite database {self.path} (not encrypted: protected only by file permissions 0600)"

    def check_available(self) -> None:
        with self._connect() as conn:
            conn.execute("SELECT 1 FROM records LIMIT 1").fetchall()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection per call: sqlite3 connections must not be shared across threads
        (check_same_thread), and a short-lived one never holds locks other processes wait on."""
        conn: sqlite3.Connection | None = None
        try:
            self._prepare_files()
            # isolation_level=None: no implicit BEGIN from the sqlite3 module; we issue our own,
            # so the transaction boundaries are exactly the ones written here.
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            # WAL: readers never block on the writer and a killed writer's partial
            # transaction is simply not in the log (https://sqlite.org/wal.html).
            # synchronous=FULL: a commit survives a power cut too, which matters when the
            # provider rotated the refresh token and the old one is gone (RFC 6749 §6).
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
            yield conn
            self._fix_modes()
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"token database {self.path} cannot be used ({exc}). It may be corrupt or "
                "locked by a hung process: close other tdgui processes, move the file away "
                "and log in again, or choose another store with --store"
            ) from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot open token database {self.path}: {exc.strerror or type(exc).__name__}. "
                "Check that its directory is yours and writable, or choose another store "
                "with --store"
            ) from exc
        finally:
            if conn is not None:
                conn.close()

    def _prepare_files(self) -> None:
        """0700 directory; create the database 0600 ourselves before SQLite does.

        SQLite creates new files with 0644 & ~umask (SQLITE_DEFAULT_FILE_PERMISSIONS), and
        gives -wal/-shm the mode of the database file, so the main file must be 0600 first.
        """
        refuse_shared_dir(self.path.parent)
        fsutil.private_dir(self.path.parent)
        # O_NONBLOCK + fstat: a FIFO or a device planted as the database must be refused,
        # not handed to SQLite, whose reads would block or never end (issue 11 #14).
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, fsutil.FILE_MODE)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise fsutil.NotRegularFile(errno.EINVAL, "not a regular file", str(self.path))
            if os.name == "posix":
                os.fchmod(fd, fsutil.FILE_MODE)  # fixes a pre-existing 0644 file, any umask
        finally:
            os.close(fd)

    def _fix_modes(self) -> None:
        """-wal/-shm copy the database's mode, but may predate a chmod: force them 0600 too."""
        if os.name != "posix":
            return
        for suffix in ("-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{suffix}", fsutil.FILE_MODE)

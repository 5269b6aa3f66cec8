"""pyTD-style token caches (`MemCache`, `DiskCache`, `SQLCache`) over tdgui's token stores."""

from __future__ import annotations

from pathlib import Path

from tdgui.core.stores.base import TokenStore


class TokenCache:
    """A cache is a token store chosen by the script rather than by the account's settings."""

    store: TokenStore

    def clear(self, account: str) -> None:
        """Forget the tokens of one account (pyTD's cache `clear`)."""
        self.store.delete(f"{account}/tokens")


class MemCache(TokenCache):
    """Tokens in memory only: freed when the program exits (pyTD `MemCache`)."""

    def __init__(self) -> None:
        from tdgui.core.stores.memory import MemoryStore

        self.store = MemoryStore()


class DiskCache(TokenCache):
    """Tokens on disk in plain JSON files (0600) in `location`, a directory (pyTD `DiskCache`).

    Storing tokens on disk may pose a security risk: anyone who can read the file can trade
    on the account. The default keyring store is safer (README: "Is it safe ...?").
    """

    def __init__(self, location: str | Path | None = None) -> None:
        from tdgui.core.stores.file import FileStore

        self.store = FileStore(Path(location).expanduser()) if location else FileStore.default()


class SQLCache(TokenCache):
    """Tokens in a SQLite database, one row per record (the SQLCache pyTD planned)."""

    def __init__(self, path: str | Path | None = None) -> None:
        from tdgui.core.stores.sql import SQLStore

        self.store = SQLStore(Path(path).expanduser()) if path else SQLStore.default()

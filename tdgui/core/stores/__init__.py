"""Token stores behind one contract: keyring (default), file, memory, sql and postgres."""

from __future__ import annotations

import threading
from pathlib import Path

from tdgui.core.errors import UsageError
from tdgui.core.stores.base import TokenStore, check_key
from tdgui.core.stores.memory import MemoryStore

__all__ = ["STORE_KINDS", "MemoryStore", "TokenStore", "check_key", "open_store"]

#: The `--store` choices, default first.
STORE_KINDS = ("keyring", "file", "memory", "sql", "postgres")

_shared_memory: MemoryStore | None = None
_shared_memory_lock = threading.Lock()


def open_store(kind: str, config_dir: Path) -> TokenStore:
    """The store of `kind` for the config directory `config_dir`; UsageError for an unknown kind.

    "memory" is one MemoryStore per process, so the service and the API of one process see
    the same records. The keyring module is imported only when asked for: importing keyring
    (entry points, backends) costs CLI start-up time that the file/sql/memory paths need not pay.
    """
    if kind == "keyring":
        from tdgui.core.stores.keyring import KeyringStore

        return KeyringStore()
    if kind == "file":
        from tdgui.core.stores.file import FileStore

        return FileStore(config_dir / "tokens")
    if kind == "sql":
        from tdgui.core.stores.sql import SQLStore

        return SQLStore(config_dir / "tokens.sqlite3")
    if kind == "memory":
        global _shared_memory
        with _shared_memory_lock:
            if _shared_memory is None:
                _shared_memory = MemoryStore()
            return _shared_memory
    if kind == "postgres":
        # One database per account, with its own URL and key: TokenService.store() builds it
        # from the account (tdgui.core.db_account); there is no config-wide postgres store.
        raise UsageError(
            "a postgres store belongs to one account: make it with `tdgui share NAME --db URL` "
            "(desktop) or `tdgui join NAME --db URL --key-stdin` (other machines)"
        )
    raise UsageError(f"unknown token store {kind!r}: choose one of {', '.join(STORE_KINDS)}")

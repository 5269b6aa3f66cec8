"""MemoryStore: records in a dict of this process, for tests, sandboxes and one-shot runs."""

from __future__ import annotations

import threading

from tdgui.core.stores._common import encode_value
from tdgui.core.stores.base import TokenStore, check_key


class MemoryStore(TokenStore):
    """Records live in this instance only; nothing reaches the disk and all is lost at exit."""

    kind = "memory"

    def __init__(self) -> None:
        self._records: dict[str, str] = {}
        # The service thread and the UI/API threads share one instance (open_store("memory")).
        self._lock = threading.Lock()

    def read(self, key: str) -> str | None:
        check_key(key)
        with self._lock:
            return self._records.get(key)

    def write(self, key: str, value: str) -> None:
        check_key(key)
        encode_value(value)  # same rules as the persistent stores, so tests catch it here too
        with self._lock:
            self._records[key] = value

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._records.pop(key, None)

    def describe(self) -> str:
        return "memory of this process (nothing is saved; lost when it exits)"

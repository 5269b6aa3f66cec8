"""The contract every token store keeps: text records under keys, read-your-writes, atomic."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager

from tdgui.core.errors import UsageError

#: `account` (the shared account description) and `status` (the status record) are kept by
#: a shared store (postgres); `dbkey`/`dbpassword` by the keyring for a postgres account.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/(tokens|secret|status|account|dbkey|dbpassword))?$")


def check_key(key: str) -> str:
    """Keys are `ACCOUNT/tokens`, `ACCOUNT/secret` and the few others `_KEY` names."""
    if not _KEY.fullmatch(key):
        raise UsageError(f"invalid store key {key!r}")
    return key


class TokenStore(ABC):
    """A place for secret text records (token JSON, client secrets).

    Contract (tests/core/stores/test_store_contract.py runs it against every store):
    - `read` of a key never written, deleted, or whose record is incomplete returns None;
    - `write` replaces the whole record atomically: a concurrent or later reader sees the
      old or the new record, never a mix, even if the writer is killed midway;
    - `delete` of a missing key is not an error;
    - failures of the backing system raise StoreUnavailable with a message naming the way out.
    """

    #: "keyring", "file", "memory", "sql" or "postgres".
    kind: str = ""
    #: Seconds a write of a provider's new tokens that raised StoreUnavailable is tried again
    #: (the answer in hand is the only copy of a rotated grant). 0: the store's failures do not
    #: heal within seconds, or it retries by itself (postgres).
    answer_write_patience: float = 0.0

    @abstractmethod
    def read(self, key: str) -> str | None: ...

    @abstractmethod
    def write(self, key: str, value: str) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def describe(self) -> str:
        """Where the records live, for status output and the About dialog (no secrets)."""

    def check_available(self) -> None:  # noqa: B027 - optional hook: a no-op suits memory
        """Raise StoreUnavailable quickly if this store cannot be used right now."""

    def refresh_lock(self, name: str) -> AbstractContextManager[None] | None:
        """A refresh lock for account `name` shared by every machine using this store, or None.

        None (the default) means the store is local: the service uses its own file lock.
        """
        return None

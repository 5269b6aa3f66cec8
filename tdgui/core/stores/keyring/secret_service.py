"""keyring's Secret Service backend with one D-Bus connection and session per store operation."""

from __future__ import annotations

import logging
from typing import Any

import keyring.backend
from keyring.compat import properties

log = logging.getLogger(__name__)

try:
    from keyring.backends import SecretService
except ImportError:  # pragma: no cover - keyring always ships it; secretstorage may be absent
    SecretService = None  # type: ignore[assignment]


class _KeepOpen:
    """A jeepney connection whose close() waits for the end of the store operation."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)

    def close(self) -> None:
        pass  # keyring closes after every call; SharedSession.close() does it once


if SecretService is not None:

    class SharedSession(SecretService.Keyring):  # type: ignore[misc, name-defined]
        """keyring's own get/set/delete, sharing one connection and one session.

        keyring opens a D-Bus connection and a Secret Service session (a Diffie-Hellman key
        exchange) for every call and closes it after: ~11 round trips and two 1024-bit modular
        exponentiations, 30-40 ms a call on the CI box. A chunked write makes 5+ calls, and
        every call before the header lies inside the window a SIGKILL can cut (issue 11).
        Sharing them per store operation keeps keyring's item logic (attributes, labels,
        unlock) unchanged, so records stay readable by plain keyring.
        """

        @properties.classproperty
        def priority(cls) -> float:
            # Never a candidate of keyring's own backend selection (keyring registers every
            # subclass): an exception here makes keyring deem the class not viable.
            raise RuntimeError("used by tdgui's KeyringStore only")

        def __init__(self, base: keyring.backend.KeyringBackend) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.scheme = getattr(base, "scheme", self.scheme)
            if hasattr(base, "preferred_collection"):
                self.preferred_collection = base.preferred_collection
            self._collection: Any = None

        def get_preferred_collection(self) -> Any:
            if self._collection is None:
                collection = super().get_preferred_collection()  # type: ignore[no-untyped-call]
                collection.connection = _KeepOpen(collection.connection)
                self._collection = collection
            return self._collection

        def close(self) -> None:
            collection, self._collection = self._collection, None
            if collection is not None:
                collection.connection.connection.close()


def shared_session(base: keyring.backend.KeyringBackend) -> Any | None:
    """A SharedSession for `base` if it is keyring's Secret Service backend, else None."""
    if SecretService is None or type(base) is not SecretService.Keyring:
        return None
    return SharedSession(base)

"""The keyring token store: chunk protocol (chunks), timed calls (timed), backends, the store."""

from __future__ import annotations

from tdgui.core.stores.keyring.store import KeyringStore

__all__ = ["KeyringStore"]

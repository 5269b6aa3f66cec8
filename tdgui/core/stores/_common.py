"""Checks shared by the stores: storable text, and private (not shared) directories."""

from __future__ import annotations

from pathlib import Path

from tdgui.core import fsutil
from tdgui.core.errors import StoreUnavailable, UsageError


def encode_value(value: str) -> bytes:
    """UTF-8 bytes of `value`; UsageError (never echoing the value) if it is not storable text."""
    if not isinstance(value, str):
        raise UsageError(f"a store record must be text, not {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Lone surrogates (e.g. from a bad decode with surrogateescape) cannot be stored by
        # any backend: file/sql would fail midway and Secret Service would reject the D-Bus
        # string. Say where, not what (the value is a secret).
        raise UsageError(
            f"a store record must be valid Unicode text (bad character at position {exc.start})"
        ) from None


def refuse_shared_dir(directory: Path) -> None:
    """StoreUnavailable if `directory` is shared: sticky (like /tmp), world-writable or another user's.

    Every write keeps the store's directory 0700 (fsutil.private_dir); tdgui must never chmod
    a directory it did not create (issue 11 #13: as root that broke /tmp), and tokens do not
    belong in a shared one.
    """
    try:
        st = directory.stat()
    except OSError:
        return  # missing: private_dir creates it 0700; other errors surface on use
    reason = fsutil.shared_reason(st)
    if reason:
        raise StoreUnavailable(f"{directory} is {reason}: keep tokens in a private directory of your own")

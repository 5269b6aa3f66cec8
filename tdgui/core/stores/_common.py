"""Checks shared by the stores: storable text, and private (not shared) directories."""

from __future__ import annotations

import os
import stat
from pathlib import Path

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
    """StoreUnavailable if `directory` is a shared sticky directory such as /tmp.

    Every write forces the store's directory to 0700 (fsutil.private_dir); doing that to
    /tmp (possible as root) would break the whole system, and tokens do not belong there.
    """
    if os.name != "posix":
        return
    try:
        mode = directory.stat().st_mode
    except OSError:
        return  # missing: private_dir creates it 0700; other errors surface on use
    if mode & stat.S_ISVTX:
        raise StoreUnavailable(
            f"{directory} is a shared directory (sticky bit, like /tmp): "
            "keep tokens in a private directory of your own"
        )

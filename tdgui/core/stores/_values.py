"""Checks shared by the stores: a record is text that survives a UTF-8 round trip."""

from __future__ import annotations

from tdgui.core.errors import UsageError


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

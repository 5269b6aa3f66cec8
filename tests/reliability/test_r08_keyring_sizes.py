"""Row 8: keyring values of 1,199 / 1,200 / 1,201 / 10,000 characters and non-ASCII.

Against the real Secret Service of the test session. Must hold: byte-identical round trip,
no keyring entry above 1,200 UTF-16 units (Windows' limit with a margin), and an incomplete
or altered chunk set reads as absent (None), never as a wrong value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import keyring
import pytest

from tdgui.core.stores.keyring import KeyringStore
from tdgui.core.stores.keyring.chunks import CHUNK_UNITS, HEADER_PREFIX, Header, utf16_units

VALUES = {
    "1199 ascii": "a" * 1199,
    "1200 ascii": "b" * 1200,
    "1201 ascii": "c" * 1201,
    "10000 ascii": "".join(chr(33 + i % 94) for i in range(10_000)),
    "1201 latin-1 (é)": "é" * 1201,
    "1200 astral (2400 units)": "😀" * 1200,
    "600 astral + 1 (1201 units)": "😀" * 600 + "x",
    "10000 mixed scripts": ("日本語テキスト€😀ä\r\n\t" * 1000)[:10_000],
    "header look-alike": HEADER_PREFIX + "v1:0123456789abcdef:1:" + "0" * 64,
    "empty": "",
    "json token record": '{"access_token": "' + "x" * 1500 + '", "v": "ü"}',
}


def items(service: str) -> dict[str, str]:
    """username -> secret of every entry of `service` (secretstorage can list, keyring cannot)."""
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        return {
            i.get_attributes()["username"]: i.get_secret().decode("utf-8")
            for i in collection.search_items({"service": service})
        }
    finally:
        connection.close()


@pytest.fixture
def store(tmp_path) -> Iterator[KeyringStore]:
    service = f"tdgui-r8-{os.getpid()}-{tmp_path.name}"
    store = KeyringStore(service=service)
    try:
        yield store
    finally:
        store.delete("acct/tokens")
        for username in items(service):
            keyring.delete_password(service, username)


def test_round_trip_and_chunk_limit(store: KeyringStore, figure) -> None:
    largest = 0
    for label, value in VALUES.items():
        store.write("acct/tokens", value)
        back = store.read("acct/tokens")
        assert back is not None, label
        assert back.encode("utf-8") == value.encode("utf-8"), label
        entries = items(store.service)
        largest = max(largest, *(utf16_units(v) for v in entries.values()))
        assert all(utf16_units(v) <= CHUNK_UNITS for v in entries.values()), label
        chunked = entries["acct/tokens"].startswith(HEADER_PREFIX)
        assert chunked == (utf16_units(value) > CHUNK_UNITS or value.startswith(HEADER_PREFIX)), label
    figure(
        f"row 8: {len(VALUES)} values (1,199/1,200/1,201/10,000 chars, é, astral, mixed, header look-alike) "
        f"round-trip byte-identical; largest keyring entry {largest} UTF-16 units (limit {CHUNK_UNITS})"
    )


@pytest.mark.parametrize("damage", ["missing chunk", "altered chunk", "extra chunk", "truncated chunk"])
def test_incomplete_chunk_set_reads_as_absent(store: KeyringStore, damage: str, figure) -> None:
    value = VALUES["10000 mixed scripts"]
    store.write("acct/tokens", value)
    head = keyring.get_password(store.service, "acct/tokens")
    assert head is not None
    header = Header.parse(head)
    assert header is not None and header.count >= 3
    middle = f"acct/tokens#{header.gen}.{header.count // 2}"
    chunk = keyring.get_password(store.service, middle)
    assert chunk is not None
    if damage == "missing chunk":
        keyring.delete_password(store.service, middle)
    elif damage == "altered chunk":
        keyring.set_password(store.service, middle, chunk[::-1])  # same length, other content
    elif damage == "truncated chunk":
        keyring.set_password(store.service, middle, chunk[:-1])
    else:  # the header claims one chunk more than there is
        bigger = Header(header.gen, header.count + 1, header.sha256)
        keyring.set_password(store.service, "acct/tokens", bigger.text())
    assert store.read("acct/tokens") is None
    figure(f"row 8 ({damage}): a {header.count}-chunk record reads as absent (None)")

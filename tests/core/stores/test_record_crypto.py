"""Record encryption: the key's human form, and ciphertexts bound to their account and key name."""

from __future__ import annotations

import logging

import pytest

from tdgui.core.errors import ErrorKind, StoredDataError, UsageError
from tdgui.core.logs import SECRETS
from tdgui.core.record_crypto import (
    KEY_PREFIX,
    RecordDecryptError,
    RecordKey,
    open_sealed,
    seal,
)


def test_key_round_trips_through_its_text_form() -> None:
    key = RecordKey.generate()
    text = key.encode()
    assert text.startswith(KEY_PREFIX) and len(text) == len(KEY_PREFIX) + 48
    assert RecordKey.parse(text) == key
    assert RecordKey.parse(f"  {text}\n") == key  # as pasted or read from stdin
    assert RecordKey.generate() != key


def test_key_never_shows_in_repr_or_logs() -> None:
    key = RecordKey.generate()
    text = key.encode()
    assert text[len(KEY_PREFIX) :] not in repr(key)
    assert text not in SECRETS.mask(f"the key is {text}")


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda t: t[len(KEY_PREFIX) :], "starts with"),
        (lambda t: "tdgui-key-v2:" + t[len(KEY_PREFIX) :], "newer tdgui"),
        (lambda t: t[:-1], "cut off"),
        (lambda t: t + "A", "cut off"),
        (lambda t: t[:-3] + "!!!", "characters"),
        (lambda t: t[:-9] + ("B" if t[-9] != "B" else "C") + t[-8:], "checksum"),
        (
            lambda t: (
                t[: len(KEY_PREFIX)] + ("x" if t[len(KEY_PREFIX)] != "x" else "y") + t[len(KEY_PREFIX) + 1 :]
            ),
            "checksum",
        ),
        (lambda t: "", "starts with"),
    ],
)
def test_bad_key_text_says_what_is_wrong_without_echoing(mangle: object, says: str) -> None:
    text = RecordKey.generate().encode()
    bad = mangle(text)  # type: ignore[operator]
    with pytest.raises(UsageError) as caught:
        RecordKey.parse(bad)
    message = str(caught.value)
    assert says in message
    body = text[len(KEY_PREFIX) :]
    assert body[:20] not in message and body[-20:] not in message


def test_seal_and_open() -> None:
    key = RecordKey.generate()
    blob = seal(key, "alice", "tokens", "secret text é😀".encode())
    assert b"secret" not in blob
    assert open_sealed(key, "alice", "tokens", blob, where="here").decode() == "secret text é😀"
    # A fresh nonce every time: the same record never gives the same ciphertext.
    assert seal(key, "alice", "tokens", b"x") != seal(key, "alice", "tokens", b"x")
    assert open_sealed(key, "alice", "", seal(key, "alice", "", b""), where="here") == b""


def _fails(key: RecordKey, account: str, name: str, blob: bytes) -> RecordDecryptError:
    with pytest.raises(RecordDecryptError) as caught:
        open_sealed(key, account, name, blob, where="the test database")
    error = caught.value
    assert isinstance(error, StoredDataError) and error.kind is ErrorKind.STORE and error.exit_code == 5
    assert "the test database" in str(error)
    return error


def test_wrong_key_moved_tampered_or_truncated_records_fail_typed() -> None:
    key = RecordKey.generate()
    blob = seal(key, "alice", "tokens", b'{"refresh_token": "very-secret-refresh"}')
    _fails(RecordKey.generate(), "alice", "tokens", blob)  # wrong key
    _fails(key, "bob", "tokens", blob)  # row moved to another account
    _fails(key, "alice", "secret", blob)  # ... or to another key name
    _fails(key, "alic", "etokens", blob)  # the parts are length-prefixed in the binding
    for i in (0, 1, 13, len(blob) // 2, len(blob) - 1):  # version byte, nonce, body, tag
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        message = str(_fails(key, "alice", "tokens", bytes(tampered)))
        assert "very-secret" not in message
    for length in (0, 1, 28, len(blob) - 1, len(blob) - 16):
        _fails(key, "alice", "tokens", blob[:length])
    assert "truncated" in str(_fails(key, "alice", "tokens", blob[:10]))


def test_key_id_names_the_key_without_revealing_it() -> None:
    key = RecordKey.generate()
    assert key.key_id == RecordKey.parse(key.encode()).key_id
    assert len(key.key_id) == 8 and key.key_id not in key.raw
    assert key.key_id != RecordKey.generate().key_id


def test_logging_masks_a_parsed_key() -> None:
    from tdgui.core.logs import MaskSecretsFilter

    text = RecordKey.generate().encode()
    RecordKey.parse(text)
    logger = logging.getLogger("tdgui.test.crypto")
    handler_filter = MaskSecretsFilter()
    record = logger.makeRecord("tdgui.test.crypto", logging.INFO, __file__, 1, "key %s", (text,), None)
    handler_filter.filter(record)
    assert text not in record.getMessage()

"""Client-side encryption of stored records (AES-256-GCM) with a key the database never sees."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tdgui.core.errors import StoredDataError, UsageError
from tdgui.core.logs import SECRETS

log = logging.getLogger(__name__)

#: How a key is written for humans: this prefix, then urlsafe base64 (no padding) of the
#: 32 key bytes followed by a 4-byte checksum that catches a mistyped or cut-off paste.
KEY_PREFIX = "tdgui-key-v1:"
KEY_BYTES = 32
_CHECK_BYTES = 4
_ENCODED_LENGTH = 48  # base64 of 36 bytes, no padding needed
_NONCE_BYTES = 12  # the GCM nonce size NIST SP 800-38D §8.2 recommends
_TAG_BYTES = 16
#: Record format version (the first byte of every sealed record), bound into the tag.
RECORD_VERSION = 1
_AD_LABEL = b"tdgui-record"
_KEY_ID_LABEL = b"tdgui-key-id-v1"


class RecordDecryptError(StoredDataError):
    """A stored record does not open with this key: wrong key, tampered, truncated or moved."""


class WrongKey(RecordDecryptError):
    """The record was written with another key than the one this machine has."""


def _checksum(raw: bytes) -> bytes:
    return hashlib.sha256(b"tdgui-key-check" + raw).digest()[:_CHECK_BYTES]


@dataclass(frozen=True)
class RecordKey:
    """A 256-bit AES-GCM key. `repr` never shows it; `encode()` is the form humans copy."""

    raw: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.raw) != KEY_BYTES:
            raise UsageError(f"a record key has {KEY_BYTES} bytes, not {len(self.raw)}")
        SECRETS.add(self.encode())

    @classmethod
    def generate(cls) -> RecordKey:
        return cls(AESGCM.generate_key(bit_length=256))

    @classmethod
    def parse(cls, text: str) -> RecordKey:
        """The key from its `tdgui-key-v1:...` form; UsageError saying what is wrong (never echoing it)."""
        text = text.strip()
        if not text.startswith(KEY_PREFIX):
            if text.startswith("tdgui-key-v"):
                raise UsageError("this key was made by a newer tdgui (unknown key version): update tdgui")
            raise UsageError(f"not a tdgui key: it starts with {KEY_PREFIX!r} (as `tdgui share` printed it)")
        body = text[len(KEY_PREFIX) :]
        if len(body) != _ENCODED_LENGTH:
            raise UsageError(
                f"the key is {len(body)} characters after {KEY_PREFIX!r}, not {_ENCODED_LENGTH}: "
                "was it cut off or joined with something while copying?"
            )
        try:
            decoded = base64.urlsafe_b64decode(body.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise UsageError("the key contains characters a tdgui key never has: copy it again") from None
        raw, check = decoded[:KEY_BYTES], decoded[KEY_BYTES:]
        if not hmac.compare_digest(check, _checksum(raw)):
            raise UsageError("the key's checksum does not match (a typo?): copy it again")
        return cls(raw)

    def encode(self) -> str:
        body = base64.urlsafe_b64encode(self.raw + _checksum(self.raw)).decode("ascii")
        return KEY_PREFIX + body

    @property
    def key_id(self) -> bytes:
        """8 bytes that name the key without revealing it (an HMAC of a constant under it)."""
        return hmac.new(self.raw, _KEY_ID_LABEL, hashlib.sha256).digest()[:8]


def _associated_data(version: int, account: str, name: str) -> bytes:
    """Binds a ciphertext to its place: a row copied to another account or key name, or
    relabelled with another format version, fails authentication (RFC 5116 §2.1)."""
    parts = [_AD_LABEL, struct.pack(">B", version), account.encode("utf-8"), name.encode("utf-8")]
    # Length-prefixed, so ("ab", "c") and ("a", "bc") give different data.
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def seal(key: RecordKey, account: str, name: str, plaintext: bytes) -> bytes:
    """`version byte || 12-byte random nonce || ciphertext || 16-byte tag`."""
    nonce = os.urandom(_NONCE_BYTES)
    ad = _associated_data(RECORD_VERSION, account, name)
    return bytes([RECORD_VERSION]) + nonce + AESGCM(key.raw).encrypt(nonce, plaintext, ad)


def open_sealed(key: RecordKey, account: str, name: str, blob: bytes, *, where: str) -> bytes:
    """The plaintext of `blob`; RecordDecryptError (naming `where`, never the data) otherwise."""
    label = f"{account}/{name}" if name else account
    if len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES:
        raise RecordDecryptError(
            f"the stored record {label!r} in {where} is truncated ({len(blob)} bytes): "
            "it was damaged; log in again on the desktop and share the account again"
        )
    version = blob[0]
    if version != RECORD_VERSION:
        raise RecordDecryptError(
            f"the stored record {label!r} in {where} has format version {version}, this tdgui "
            f"reads version {RECORD_VERSION}: update tdgui (or the row was damaged)"
        )
    nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        return AESGCM(key.raw).decrypt(nonce, sealed, _associated_data(version, account, name))
    except InvalidTag:
        raise RecordDecryptError(
            f"the stored record {label!r} in {where} does not authenticate: it was tampered "
            "with, truncated, or copied from another account. Nothing was changed; share the "
            "account again from the desktop"
        ) from None

"""KeyringStore: records in the system keyring, chunked, atomic, never plaintext, never hanging."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import keyring
import keyring.backend
import keyring.errors
from keyring.backends import chainer, fail, null

from tdgui.core.errors import StoredDataError, StoreUnavailable, TdguiError, UsageError
from tdgui.core.stores._common import encode_value
from tdgui.core.stores.base import TokenStore, check_key

T = TypeVar("T")

#: Largest piece stored under one keyring entry, in UTF-16 code units. Windows Credential
#: Manager rejects blobs over CRED_MAX_CREDENTIAL_BLOB_SIZE = 5*512 bytes (wincred.h) and
#: keyring stores UTF-16, i.e. ~1,280 characters (jaraco/keyring#355, #540); keep a margin.
CHUNK_UNITS = 1200

#: At most this many chunks (four digits in the header): ~12 million characters per record.
MAX_CHUNKS = 9999

#: A record that starts with this is a chunk header, written last (see KeyringStore.write).
#: Per keyring call. A store operation makes a quick probe first, so one hung call is
#: reported within 3 s in all (docs/design.md §5: "clear error within 3 s").
CALL_TIMEOUT = 2.5
HEADER_PREFIX = "tdgui-chunks:"
# Used with fullmatch: "$" would also accept a trailing newline.
_HEADER_V1 = re.compile(
    r"tdgui-chunks:v1:(?P<gen>[0-9a-f]{16}):(?P<count>[1-9][0-9]{0,3}):(?P<sha>[0-9a-f]{64})"
)

# "n.<gen>.<count>.<unix time>" or "o...." (see _Pending).
_PENDING_ENTRY = re.compile(r"([no])\.([0-9a-f]{16})\.([1-9][0-9]{0,3})\.([0-9]{1,12})")

#: Username of the probe `check_available` reads (never written).
PROBE_USERNAME = "tdgui-probe"

#: A journal entry of a write still "in progress" after this long belongs to a killed writer.
_STALE_SECONDS = 300.0

# Username suffixes. check_key() forbids "#" in keys, so these never collide with a key.
_PENDING = "#pending"

_NO_KEYRING = (
    "No system keyring (Secret Service) is available: start a desktop session / unlock your "
    "keyring, or choose an explicit file store with --store file"
)


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units: what Windows counts (characters above U+FFFF take two)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def split_chunks(value: str, limit: int = CHUNK_UNITS) -> list[str]:
    """Cut `value` into pieces of at most `limit` UTF-16 units, never inside a character."""
    if value.isascii() or max(value) <= "\uffff":
        return [value[i : i + limit] for i in range(0, len(value), limit)] or [""]
    chunks: list[str] = []
    start = units = 0
    for index, ch in enumerate(value):
        width = 2 if ord(ch) > 0xFFFF else 1
        if units + width > limit:
            chunks.append(value[start:index])
            start, units = index, 0
        units += width
    chunks.append(value[start:])
    return chunks


@dataclass(frozen=True)
class _Header:
    gen: str
    count: int
    sha256: str

    def text(self) -> str:
        return f"{HEADER_PREFIX}v1:{self.gen}:{self.count}:{self.sha256}"

    @classmethod
    def parse(cls, text: str) -> _Header | None:
        """The header in `text`; None if malformed; StoredDataError if from a newer format."""
        match = _HEADER_V1.fullmatch(text)
        if match:
            return cls(match["gen"], int(match["count"]), match["sha"])
        if not text.startswith(HEADER_PREFIX + "v1:"):
            raise StoredDataError(
                "a keyring record was written by a newer tdgui (unknown chunk format): "
                "upgrade tdgui, or log out and in again"
            )
        return None


@dataclass(frozen=True)
class _Pending:
    """A journal entry: chunks of generation `gen` that may need deleting some day.

    kind "n": a write in progress (or killed before its header); "o": the generation a writer
    is replacing, garbage as soon as the header no longer names it.
    """

    kind: str
    gen: str
    count: int
    since: int

    def text(self) -> str:
        return f"{self.kind}.{self.gen}.{self.count}.{self.since}"

    @classmethod
    def parse_all(cls, text: str | None) -> list[_Pending]:
        entries = []
        for word in (text or "").split():
            match = _PENDING_ENTRY.fullmatch(word)
            if match:
                kind, gen, count, since = match.groups()
                entries.append(cls(kind, gen, int(count), int(since)))
        return entries


def _plaintext_reason(backend: keyring.backend.KeyringBackend) -> str | None:
    """Why `backend` must not hold tokens (no keyring at all, or plaintext on disk), or None."""
    cls = type(backend)
    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return f"keyring found no usable backend ({cls.__module__}.{cls.__name__})"
    # keyrings.alt's PlaintextKeyring (priority 0.5) is picked silently when D-Bus is missing
    # (docs/platform.md); docs/design.md §5: never fall back to plaintext silently. Its encrypted
    # variants (EncryptedKeyring, the DPAPI RegistryKeyring) do not write secrets in clear.
    if cls.__module__.startswith("keyrings.alt") and not any(
        word in cls.__name__ for word in ("Encrypted", "Registry")
    ):
        return f"keyring chose the plaintext backend {cls.__module__}.{cls.__name__}"
    return None


def _backend_name(backend: keyring.backend.KeyringBackend) -> str:
    """Short backend name from its module: SecretService, Windows, macOS, kwallet..."""
    return type(backend).__module__.rsplit(".", 1)[-1]


def _leaks(text: str, secret: str | None) -> bool:
    """Whether `text` contains `secret` or any 16-character piece of it."""
    if not secret:
        return False
    if len(secret) < 16:
        return secret in text
    return any(text[i : i + 16] in secret for i in range(max(0, len(text) - 15)))


def _is_locked(exc: BaseException) -> bool:
    if isinstance(exc, keyring.errors.KeyringLocked):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    # secretstorage.exceptions.LockedException / PromptDismissedException, matched by name so
    # this module does not import secretstorage (absent on Windows and macOS).
    if names & {"LockedException", "PromptDismissedException"}:
        return True
    # SecretService wraps a dismissed unlock prompt as InitError("... Prompt dismissed"), seen
    # with a locked collection and no prompter (docs/platform.md).
    text = str(exc).lower()
    return isinstance(exc, keyring.errors.InitError) and ("prompt" in text or "lock" in text)


class KeyringStore(TokenStore):
    """Records as keyring passwords of `service`, username = the store key.

    Layout for key K: a value of at most CHUNK_UNITS that does not look like a header is
    stored as is under K. Anything else is stored as chunks under `K#<gen>.<i>` (gen: fresh
    random id per write) plus a header `tdgui-chunks:v1:<gen>:<n>:<sha256>` under K, written
    last: the header is the commit point, so a writer killed at any moment leaves the old
    record readable. `K#pending` journals generations that may need cleaning up.
    """

    kind = "keyring"

    _locks: dict[tuple[str, str], threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, service: str = "tdgui", timeout: float = CALL_TIMEOUT) -> None:
        if not service:
            raise UsageError("the keyring service name must not be empty")
        self.service = service
        self.timeout = float(timeout)
        # A keyring call that timed out and is still running in its worker: while it hangs,
        # later calls fail at once instead of piling up more hung threads.
        self._stuck: threading.Thread | None = None
        self._resolved: keyring.backend.KeyringBackend | None = None

    # ------------------------------------------------------------------ TokenStore API

    def read(self, key: str) -> str | None:
        check_key(key)
        with self._key_lock(key):
            backend = self._backend()
            previous: str | None = None
            # A writer in another process may replace the record (and delete the chunks we
            # are reading) between our reads: retry while the header keeps changing.
            for _ in range(3):
                head = self._get(backend, key)
                if head is None or not head.startswith(HEADER_PREFIX):
                    return head
                if head == previous:
                    return None  # same header, still incomplete: reads as nothing stored
                header = _Header.parse(head)
                if header is None:
                    return None
                value = self._read_chunks(backend, key, header)
                if value is not None:
                    return value
                previous = head
            return None

    def write(self, key: str, value: str) -> None:
        check_key(key)
        raw = encode_value(value)
        with self._key_lock(key):
            backend = self._backend()
            old = self._current_header(backend, key)
            now = int(time.time())
            if utf16_units(value) <= CHUNK_UNITS and not value.startswith(HEADER_PREFIX):
                if old is None:
                    # Small over small (the usual token record): one entry replaced in place.
                    # Debris of an earlier killed chunked writer, if any, is still named by
                    # the journal and goes at the next chunked write or delete().
                    self._set(backend, key, value, secret=value)
                    return
                journal = self._write_journal(
                    backend,
                    key,
                    self._read_journal(backend, key),
                    [_Pending("o", old.gen, old.count, now)],
                )
                self._set(backend, key, value, secret=value)
                self._collect_after_commit(backend, key, journal, live=None, superseded=old)
                return
            pending = self._read_journal(backend, key)
            chunks = split_chunks(value)
            if len(chunks) > MAX_CHUNKS:
                raise UsageError(
                    f"a record of {len(value):,} characters is too large for the keyring "
                    f"(at most {MAX_CHUNKS} chunks of {CHUNK_UNITS} characters)"
                )
            header = _Header(secrets.token_hex(8), len(chunks), hashlib.sha256(raw).hexdigest())
            entries = [_Pending("n", header.gen, header.count, now)]
            if old is not None:
                entries.append(_Pending("o", old.gen, old.count, now))
            # Journal first, so chunks of a writer killed before its header can be found again.
            journal = self._write_journal(backend, key, pending, entries)
            for index, chunk in enumerate(chunks):
                self._set(backend, _chunk_name(key, header.gen, index), chunk, secret=chunk)
            self._set(backend, key, header.text())  # the commit point
            self._collect_after_commit(backend, key, journal, live=header.gen, superseded=old)

    def delete(self, key: str) -> None:
        check_key(key)
        with self._key_lock(key):
            backend = self._backend()
            head = self._get(backend, key)
            journal = self._get(backend, key + _PENDING)
            # Header first: from here on the record reads as missing, whatever happens next.
            if head is not None:
                self._delete(backend, key)
            header = None
            if head is not None and head.startswith(HEADER_PREFIX):
                try:
                    header = _Header.parse(head)
                except StoredDataError:
                    header = None  # a newer format: its chunks are not ours to guess
            if header is not None:
                self._delete_chunks(backend, key, header.gen, header.count)
            for entry in _Pending.parse_all(journal):
                self._delete_chunks(backend, key, entry.gen, entry.count)
            if journal is not None:
                self._delete(backend, key + _PENDING)

    def describe(self) -> str:
        try:
            backend = self._backend()
            if self._stuck is not None and self._stuck.is_alive():
                raise StoreUnavailable(self._timeout_message())
        except StoreUnavailable as exc:
            return f"system keyring, service {self.service!r} (unavailable: {exc})"
        return f"system keyring ({_backend_name(backend)}), service {self.service!r}"

    def check_available(self) -> None:
        backend = self._backend()
        self._get(backend, PROBE_USERNAME)

    # ------------------------------------------------------------------ chunks and journal

    def _current_header(self, backend: keyring.backend.KeyringBackend, key: str) -> _Header | None:
        head = self._get(backend, key)
        if head is None or not head.startswith(HEADER_PREFIX):
            return None
        try:
            return _Header.parse(head)
        except StoredDataError:
            return None  # overwriting a newer format is allowed; its chunks are not ours

    def _read_chunks(self, backend: keyring.backend.KeyringBackend, key: str, header: _Header) -> str | None:
        parts = []
        for index in range(header.count):
            part = self._get(backend, _chunk_name(key, header.gen, index))
            if part is None:
                return None
            parts.append(part)
        value = "".join(parts)
        # surrogatepass: a damaged entry holding a lone surrogate must read as a hash mismatch
        # (None), not crash with UnicodeEncodeError.
        if hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest() != header.sha256:
            return None
        return value

    def _read_journal(self, backend: keyring.backend.KeyringBackend, key: str) -> list[_Pending] | None:
        """The journal entries, or None when there is no journal record at all."""
        text = self._get(backend, key + _PENDING)
        return None if text is None else _Pending.parse_all(text)

    def _write_journal(
        self,
        backend: keyring.backend.KeyringBackend,
        key: str,
        journal: list[_Pending] | None,
        entries: list[_Pending],
    ) -> list[_Pending]:
        merged = (journal or []) + entries
        # Keep the journal itself within one entry; only an endless series of killed writes
        # could fill it, and then the oldest debris is forgotten rather than failing writes.
        while len(merged) > 1 and len(" ".join(e.text() for e in merged)) > CHUNK_UNITS:
            merged.pop(0)
        self._set(backend, key + _PENDING, " ".join(e.text() for e in merged))
        return merged

    def _collect_after_commit(
        self,
        backend: keyring.backend.KeyringBackend,
        key: str,
        journal: list[_Pending] | None,
        *,
        live: str | None,
        superseded: _Header | None,
    ) -> None:
        """Clean up, but never fail a write that is already committed.

        Reporting "could not save" for a record that was saved would make the caller act on
        a wrong belief (e.g. ask for a new login although the rotated token is stored). The
        replaced generation was journaled before the commit, so a later write or delete
        still finds and removes whatever is left.
        """
        try:
            self._collect(backend, key, journal, live=live, superseded=superseded)
        except StoreUnavailable:
            pass

    def _collect(
        self,
        backend: keyring.backend.KeyringBackend,
        key: str,
        journal: list[_Pending] | None,
        *,
        live: str | None,
        superseded: _Header | None,
    ) -> None:
        """After a commit: delete the replaced generation and any debris the journal names.

        `journal` is what this writer last read or wrote (no re-read: one D-Bus round trip
        less per write). Threads of this process are serialised by the key lock; an entry
        another process added meanwhile may be dropped, which can only leak the chunks of a
        write that process then also loses to SIGKILL.
        """
        if superseded is not None and superseded.gen != live:
            self._delete_chunks(backend, key, superseded.gen, superseded.count)
        if journal is None:
            return
        now = time.time()
        keep = []
        for entry in journal:
            if entry.gen == live:
                continue  # now live; the writer that replaces it journals it as "o"
            if superseded is not None and entry.gen == superseded.gen:
                continue  # deleted just above
            if entry.kind == "o" or now - entry.since > _STALE_SECONDS:
                self._delete_chunks(backend, key, entry.gen, entry.count)
                continue
            keep.append(entry)  # a write another process may still be doing
        if not keep:
            self._delete(backend, key + _PENDING)
        elif keep != journal:
            self._set(backend, key + _PENDING, " ".join(e.text() for e in keep))

    def _delete_chunks(self, backend: keyring.backend.KeyringBackend, key: str, gen: str, count: int) -> None:
        for index in range(count):
            self._delete(backend, _chunk_name(key, gen, index))

    # ------------------------------------------------------------------ keyring calls

    def _key_lock(self, key: str) -> threading.Lock:
        # One lock per (service, key) for the whole process: threads never interleave their
        # chunk writes and journal updates. Waiting is bounded: every call of the holder gives
        # up within `timeout`. Other processes are handled by the protocol (header last).
        with KeyringStore._locks_guard:
            return KeyringStore._locks.setdefault((self.service, key), threading.Lock())

    def _backend(self) -> keyring.backend.KeyringBackend:
        """The keyring backend to use, refusing plaintext; first use probes D-Bus (timed).

        Resolved once per store: a call costs a thread and a D-Bus look-up (~8 ms).
        """
        if self._resolved is None:
            self._resolved = self._call(_resolve_backend)
        return self._resolved

    def _get(self, backend: keyring.backend.KeyringBackend, username: str) -> str | None:
        return self._call(lambda: backend.get_password(self.service, username))

    def _set(
        self,
        backend: keyring.backend.KeyringBackend,
        username: str,
        value: str,
        *,
        secret: str | None = None,
    ) -> None:
        self._call(lambda: backend.set_password(self.service, username, value), secret=secret)

    def _delete(self, backend: keyring.backend.KeyringBackend, username: str) -> None:
        def delete() -> None:
            try:
                backend.delete_password(self.service, username)
            except keyring.errors.PasswordDeleteError:
                pass  # missing already (every backend reports "not found" this way)

        self._call(delete)

    def _call(self, fn: Callable[[], T], *, secret: str | None = None) -> T:
        """Run one keyring call in a daemon thread; give up after `timeout` seconds.

        A hung Secret Service (or D-Bus, or an unanswered unlock prompt) blocks forever inside
        jeepney; a daemon thread can be abandoned, the caller cannot.
        """
        stuck = self._stuck
        if stuck is not None and stuck.is_alive():
            raise StoreUnavailable(self._timeout_message() + " (an earlier call still waits)")
        outcome: list[tuple[bool, object]] = []

        def run() -> None:
            try:
                outcome.append((True, fn()))
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append((False, exc))

        worker = threading.Thread(target=run, name="tdgui-keyring-call", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive() or not outcome:
            self._stuck = worker
            raise StoreUnavailable(self._timeout_message())
        ok, result = outcome[0]
        if ok:
            return cast(T, result)
        assert isinstance(result, BaseException)
        if isinstance(result, TdguiError):
            raise result
        if not isinstance(result, Exception):
            raise result  # KeyboardInterrupt, SystemExit: not a keyring failure
        error, safe = _map_error(result, secret)
        if safe:
            raise error from result
        raise error from None  # the original may carry the secret: do not chain it

    def _timeout_message(self) -> str:
        return (
            f"the keyring did not answer within {self.timeout:g} s (Secret Service hung, or "
            "an unlock prompt is waiting): unlock your keyring and retry, or choose an "
            "explicit file store with --store file"
        )


def _chunk_name(key: str, gen: str, index: int) -> str:
    return f"{key}#{gen}.{index}"


def _resolve_backend() -> keyring.backend.KeyringBackend:
    backend: keyring.backend.KeyringBackend = keyring.get_keyring()
    if isinstance(backend, chainer.ChainerBackend):
        # keyring chains every viable backend when there are several, and its set_password
        # falls through to the next one on failure: with keyrings.alt installed, a locked
        # Secret Service would silently land tokens in a plaintext file. Use the best safe
        # member alone instead.
        members: list[keyring.backend.KeyringBackend] = list(backend.backends)
        safe = [member for member in members if _plaintext_reason(member) is None]
        if safe:
            return safe[0]
        reason = _plaintext_reason(members[0]) if members else "keyring found no backend"
        raise StoreUnavailable(f"{_NO_KEYRING} ({reason})")
    reason = _plaintext_reason(backend)
    if reason is not None:
        raise StoreUnavailable(f"{_NO_KEYRING} ({reason})")
    return backend


def _map_error(exc: Exception, secret: str | None) -> tuple[StoreUnavailable, bool]:
    """A StoreUnavailable for a backend failure, and whether chaining `exc` is safe."""
    full = f"{type(exc).__name__}: {exc}"
    safe = not _leaks(full, secret)  # the whole text: a chained original is shown in full
    detail = full[:300]
    if not safe:
        detail = f"{type(exc).__name__} (details withheld: they would include the secret)"
    if _is_locked(exc):
        return (
            StoreUnavailable(
                "the keyring is locked: unlock it (log in to the desktop session, or unlock "
                "the login keyring in your passwords app) and retry, or choose an explicit "
                f"file store with --store file ({detail})"
            ),
            safe,
        )
    if isinstance(exc, keyring.errors.NoKeyringError):
        return StoreUnavailable(f"{_NO_KEYRING} ({detail})"), safe
    return (
        StoreUnavailable(
            f"keyring unavailable ({detail}): check that the Secret Service / system keyring "
            "is running and unlocked, or choose an explicit file store with --store file"
        ),
        safe,
    )

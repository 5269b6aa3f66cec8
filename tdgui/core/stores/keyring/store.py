"""KeyringStore: records in the system keyring, chunked, atomic, never plaintext, never hanging."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from tdgui.core.errors import StoredDataError, StoreUnavailable, UsageError
from tdgui.core.stores._common import encode_value
from tdgui.core.stores.base import TokenStore, check_key
from tdgui.core.stores.keyring import chunks
from tdgui.core.stores.keyring.backend import backend_name
from tdgui.core.stores.keyring.chunks import (
    CHUNK_UNITS,
    HEADER_PREFIX,
    MAX_CHUNKS,
    MORE,
    Header,
    Pending,
    chunk_name,
    fits_one_entry,
    has_more,
    journal_name,
    journal_pieces,
    plan_collection,
    split_chunks,
    unique,
)
from tdgui.core.stores.keyring.timed import CALL_TIMEOUT, TimedKeyring

log = logging.getLogger(__name__)

#: Username of the probe `check_available` reads (never written).
PROBE_USERNAME = "tdgui-probe"


@dataclass(frozen=True)
class _Journal:
    """The journal as read: its entries and the raw piece texts (to rewrite only changes)."""

    entries: list[Pending]
    pieces: list[str]


class KeyringStore(TokenStore):
    """Records as keyring passwords of `service`, username = the store key.

    Layout for key K: a value of at most CHUNK_UNITS that does not look like a header is
    stored as is under K: one keyring call, the shortest window a killed writer has. Anything
    else is stored as chunks under `K#<gen>.<i>` (gen: fresh random id per write) plus a
    header `tdgui-chunks:v1:<gen>:<n>:<sha256>` under K, written last: the header is the
    commit point, so a writer killed at any moment leaves the old record readable. The
    journal `K#pending` (+ `K#pending.<i>`, it never drops an entry) names every generation
    whose chunks may exist, the live one included, so whatever a killed writer left is found
    and deleted by a later write (once stale) or by delete().
    """

    kind = "keyring"
    #: A Secret Service call that timed out (2.5 s) on a loaded box usually completes seconds
    #: later; row 22's soak lost a rotated grant to one such timeout (row 39).
    answer_write_patience = 15.0

    _locks: dict[tuple[str, str], threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, service: str = "tdgui", timeout: float = CALL_TIMEOUT) -> None:
        if not service:
            raise UsageError("the keyring service name must not be empty")
        self.calls = TimedKeyring(service, timeout)
        # The header this store last read or wrote under each key (None: a plain value or
        # nothing). A refresh reads its record before it writes the answer, so the write need
        # not read the header again before its commit: one D-Bus round trip less inside the
        # window a SIGKILL can cut (issue 11). A stale entry costs no correctness: every
        # generation written since is named by the journal too.
        self._seen: dict[str, Header | None] = {}

    @property
    def service(self) -> str:
        return self.calls.service

    @property
    def timeout(self) -> float:
        return self.calls.timeout

    # ------------------------------------------------------------------ TokenStore API

    def read(self, key: str) -> str | None:
        check_key(key)
        with self._key_lock(key), self.calls.operation():
            previous: str | None = None
            # A writer in another process may replace the record (and delete the chunks we
            # are reading) between our reads: retry while the header keeps changing.
            for _ in range(3):
                head = self.calls.get(key)
                if head is None or not head.startswith(HEADER_PREFIX):
                    self._seen[key] = None
                    return head
                if head == previous:
                    return None  # same header, still incomplete: reads as nothing stored
                try:
                    header = Header.parse(head)
                except StoredDataError:
                    self._seen.pop(key, None)
                    raise
                self._seen[key] = header
                if header is None:
                    return None
                value = self._read_chunks(key, header)
                if value is not None:
                    return value
                previous = head
            return None

    def write(self, key: str, value: str) -> None:
        check_key(key)
        raw = encode_value(value)
        with self._key_lock(key), self.calls.operation():
            try:
                if fits_one_entry(value):
                    self._write_plain(key, value)
                else:
                    self._write_chunked(key, value, raw)
            except BaseException:
                self._seen.pop(key, None)  # the stored state is not known any more
                raise

    def delete(self, key: str) -> None:
        check_key(key)
        with self._key_lock(key), self.calls.operation():
            self._seen.pop(key, None)
            head = self.calls.get(key)
            journal = self._read_journal(key)
            # Header first: from here on the record reads as missing, whatever happens next.
            if head is not None:
                self.calls.delete(key)
            garbage: dict[str, int] = {}
            if head is not None and head.startswith(HEADER_PREFIX):
                try:
                    header = Header.parse(head)
                except StoredDataError:
                    header = None  # a newer format: its chunks are not ours to guess
                if header is not None:
                    garbage[header.gen] = header.count
            for entry in journal.entries:
                garbage[entry.gen] = max(garbage.get(entry.gen, 0), entry.count)
            for gen, count in garbage.items():
                self._delete_chunks(key, gen, count)
            if journal.pieces:
                self._write_journal(key, journal, [])
            self._seen[key] = None
            if garbage:
                log.debug("deleted %s with %d chunk generation(s)", key, len(garbage))

    def describe(self) -> str:
        try:
            backend = self.calls.backend()
            if self.calls.hung():
                raise StoreUnavailable(self.calls.timeout_message())
        except StoreUnavailable as exc:
            return f"system keyring, service {self.service!r} (unavailable: {exc})"
        return f"system keyring ({backend_name(backend)}), service {self.service!r}"

    def check_available(self) -> None:
        with self.calls.operation():
            self.calls.get(PROBE_USERNAME)

    # ------------------------------------------------------------------ writes

    def _write_plain(self, key: str, value: str) -> None:
        replaced = self._replaced(key)
        # The commit, and the only keyring call between "answer in hand" and "stored": the
        # replaced record's chunks are named by the journal (or by `replaced`) and go after.
        self.calls.set(key, value, secret=value)
        self._seen[key] = None
        self._collect_after_commit(key, None, live=None, replaced=replaced)

    def _write_chunked(self, key: str, value: str, raw: bytes) -> None:
        pieces = split_chunks(value)
        if len(pieces) > MAX_CHUNKS:
            raise UsageError(
                f"a record of {len(value):,} characters is too large for the keyring "
                f"(at most {MAX_CHUNKS} chunks of {CHUNK_UNITS} characters)"
            )
        replaced = self._replaced(key)
        journal = self._read_journal(key)
        header = Header(secrets.token_hex(8), len(pieces), hashlib.sha256(raw).hexdigest())
        now = int(time.time())
        entries = list(journal.entries)
        if replaced is not None:
            # The record being replaced is garbage once the header below is in place: say so
            # ("o"), so that even if this writer's cleanup fails the next writer deletes it at
            # once, not only when stale. An older tdgui did not journal its live generation:
            # it is named here.
            old = Pending("o", replaced.gen, replaced.count, now)
            if replaced.gen in {e.gen for e in entries}:
                entries = [old if e.gen == replaced.gen else e for e in entries]
            else:
                entries.append(old)
        entries.append(Pending("n", header.gen, header.count, now))
        # Journal first, so chunks of a writer killed before its header can be found again.
        journal = self._write_journal(key, journal, unique(entries))
        for index, piece in enumerate(pieces):
            self.calls.set(chunk_name(key, header.gen, index), piece, secret=piece)
        self.calls.set(key, header.text())  # the commit point
        self._seen[key] = header
        self._collect_after_commit(key, journal, live=header.gen, replaced=replaced)

    def _replaced(self, key: str) -> Header | None:
        """The header of the record about to be replaced (None: plain or nothing)."""
        if key in self._seen:
            return self._seen[key]
        head = self.calls.get(key)
        if head is None or not head.startswith(HEADER_PREFIX):
            return None
        try:
            return Header.parse(head)
        except StoredDataError:
            return None  # overwriting a newer format is allowed; its chunks are not ours

    # ------------------------------------------------------------------ chunks and journal

    def _read_chunks(self, key: str, header: Header) -> str | None:
        parts = []
        for index in range(header.count):
            part = self.calls.get(chunk_name(key, header.gen, index))
            if part is None:
                return None
            parts.append(part)
        value = "".join(parts)
        # surrogatepass: a damaged entry holding a lone surrogate must read as a hash mismatch
        # (None), not crash with UnicodeEncodeError.
        if hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest() != header.sha256:
            return None
        return value

    def _read_journal(self, key: str) -> _Journal:
        pieces: list[str] = []
        while True:
            text = self.calls.get(journal_name(key, len(pieces)))
            if text is None:
                break
            pieces.append(text)
            if not has_more(text):
                break
        return _Journal(unique([e for text in pieces for e in Pending.parse_all(text)]), pieces)

    def _write_journal(self, key: str, journal: _Journal, entries: list[Pending]) -> _Journal:
        """Replace `journal` by `entries` so that a reader never misses a surviving entry.

        Entries only ever move to an earlier piece (appended at the end, removed anywhere),
        so writing pieces in increasing order, then deleting surplus pieces from the last
        one down, keeps every entry readable whenever the writer is killed.
        """
        old = journal.pieces
        new = journal_pieces(entries, len(old))
        for index, text in enumerate(new):
            if index >= len(old) or old[index] != text:
                self.calls.set(journal_name(key, index), text)
        for index in reversed(range(len(new), len(old))):
            self.calls.delete(journal_name(key, index))
        if new and len(old) > len(new):
            last = new[-1].removesuffix(" " + MORE)
            self.calls.set(journal_name(key, len(new) - 1), last)
            new[-1] = last
        return _Journal(list(entries), new)

    def _collect_after_commit(
        self, key: str, journal: _Journal | None, *, live: str | None, replaced: Header | None
    ) -> None:
        """Clean up, but never fail a write that is already committed.

        Reporting "could not save" for a record that was saved would make the caller act on
        a wrong belief (e.g. ask for a new login although the rotated token is stored).
        Whatever is left stays named by the journal, so a later write or delete removes it.
        """
        try:
            if journal is None:
                journal = self._read_journal(key)
            plan = plan_collection(
                journal.entries,
                live=live,
                replaced=replaced,
                now=time.time(),
                stale_seconds=chunks.STALE_SECONDS,
            )
            for gen, count in plan.delete:
                self._delete_chunks(key, gen, count)
            if journal_pieces(plan.keep, len(journal.pieces)) != journal.pieces:
                self._write_journal(key, journal, plan.keep)
            if plan.delete:
                log.debug("collected %d chunk generation(s) of %s", len(plan.delete), key)
        except StoreUnavailable as exc:
            log.warning("keyring cleanup after a committed write deferred: %s", exc)

    def _delete_chunks(self, key: str, gen: str, count: int) -> None:
        for index in range(count):
            self.calls.delete(chunk_name(key, gen, index))

    def _key_lock(self, key: str) -> threading.Lock:
        # One lock per (service, key) for the whole process: threads never interleave their
        # chunk writes and journal updates. Waiting is bounded: every call of the holder gives
        # up within `timeout`. Other processes are handled by the protocol (header last).
        with KeyringStore._locks_guard:
            return KeyringStore._locks.setdefault((self.service, key), threading.Lock())

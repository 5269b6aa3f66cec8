"""The keyring chunk protocol: sizes, the header (the commit point) and the pending journal."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from tdgui.core.errors import StoredDataError

log = logging.getLogger(__name__)

#: Largest piece stored under one keyring entry, in UTF-16 code units. Windows Credential
#: Manager rejects blobs over CRED_MAX_CREDENTIAL_BLOB_SIZE = 5*512 bytes (wincred.h) and
#: keyring stores UTF-16, i.e. ~1,280 characters (jaraco/keyring#355, #540); keep a margin.
CHUNK_UNITS = 1200

#: At most this many chunks (four digits in the header): ~12 million characters per record.
MAX_CHUNKS = 9999

#: A record that starts with this is a chunk header, written last (see KeyringStore.write).
HEADER_PREFIX = "tdgui-chunks:"

# Used with fullmatch: "$" would also accept a trailing newline.
_HEADER_V1 = re.compile(
    r"tdgui-chunks:v1:(?P<gen>[0-9a-f]{16}):(?P<count>[1-9][0-9]{0,3}):(?P<sha>[0-9a-f]{64})"
)

# "n.<gen>.<count>.<unix time>" or "o...." (see Pending).
_PENDING_ENTRY = re.compile(r"([no])\.([0-9a-f]{16})\.([1-9][0-9]{0,3})\.([0-9]{1,12})")

#: Username suffix of journal piece 0; piece i > 0 is `K#pending.<i>`. check_key() forbids
#: "#" in keys, and chunk names carry 16 hex digits, so neither collides with these.
PENDING = "#pending"

#: Last word of a journal piece that has a successor (see journal_pieces).
MORE = "+"

#: Entries per journal piece: an entry is at most 36 characters ("n." + 16 + "." + 4 + "." +
#: 12), so 30 of them, their spaces and MORE stay within CHUNK_UNITS (Windows' limit again).
ENTRIES_PER_PIECE = 30

#: A journal entry "n" still there after this long belongs to a killed writer (a live one
#: commits within (chunks + 3) calls of at most the call timeout each).
STALE_SECONDS = 300.0


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


def fits_one_entry(value: str) -> bool:
    """Whether `value` is stored as is under its key (no chunks, one keyring call)."""
    return utf16_units(value) <= CHUNK_UNITS and not value.startswith(HEADER_PREFIX)


def chunk_name(key: str, gen: str, index: int) -> str:
    return f"{key}#{gen}.{index}"


def journal_name(key: str, piece: int) -> str:
    return key + PENDING if piece == 0 else f"{key}{PENDING}.{piece}"


@dataclass(frozen=True)
class Header:
    """`tdgui-chunks:v1:<gen>:<count>:<sha256>`: the record is chunks `K#<gen>.<i>`."""

    gen: str
    count: int
    sha256: str

    def text(self) -> str:
        return f"{HEADER_PREFIX}v1:{self.gen}:{self.count}:{self.sha256}"

    @classmethod
    def parse(cls, text: str) -> Header | None:
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
class Pending:
    """A journal entry: chunks of generation `gen` that may need deleting some day.

    kind "n": a chunked write journaled before its first chunk; it stays after the commit
    (the live record's chunks are then named by the journal too, so whoever replaces the
    record can delete them after its own commit, without a journal write before it). "o": a
    generation a writer is replacing that the journal did not name yet (written by an older
    tdgui), garbage as soon as the new record is in place.
    """

    kind: str
    gen: str
    count: int
    since: int

    def text(self) -> str:
        return f"{self.kind}.{self.gen}.{self.count}.{self.since}"

    @classmethod
    def parse_all(cls, text: str | None) -> list[Pending]:
        entries = []
        for word in (text or "").split():
            match = _PENDING_ENTRY.fullmatch(word)
            if match:
                kind, gen, count, since = match.groups()
                entries.append(cls(kind, gen, int(count), int(since)))
        return entries


def has_more(piece: str | None) -> bool:
    """Whether journal piece text `piece` says a next piece may exist."""
    words = (piece or "").split()
    return bool(words) and words[-1] == MORE


def journal_pieces(entries: list[Pending], old_count: int) -> list[str]:
    """The piece texts for `entries`, replacing a journal of `old_count` pieces.

    The journal never drops an entry (docs/reliability.md D2: a capped journal forgot the
    chunks of dozens of killed writers); it grows by pieces of ENTRIES_PER_PIECE entries,
    each within one keyring entry. A piece ends with MORE when a successor may exist. The
    last new piece keeps MORE while old pieces beyond it still exist (write_order deletes
    them before dropping it), so a reader never misses a piece that still holds entries.
    """
    pieces = [
        " ".join(e.text() for e in entries[i : i + ENTRIES_PER_PIECE])
        for i in range(0, len(entries), ENTRIES_PER_PIECE)
    ]
    return [
        f"{text} {MORE}" if index < len(pieces) - 1 or old_count > len(pieces) else text
        for index, text in enumerate(pieces)
    ]


def unique(entries: list[Pending]) -> list[Pending]:
    """`entries` without repeats (a journal cut short while being rewritten can repeat some)."""
    seen: set[str] = set()
    kept = []
    for entry in entries:
        if entry.text() not in seen:
            seen.add(entry.text())
            kept.append(entry)
    return kept


@dataclass(frozen=True)
class Collection:
    """What a writer does after its commit: generations to delete, entries to keep."""

    delete: list[tuple[str, int]]
    keep: list[Pending]


def plan_collection(
    journal: list[Pending],
    *,
    live: str | None,
    replaced: Header | None,
    now: float,
    stale_seconds: float = STALE_SECONDS,
) -> Collection:
    """After a commit of generation `live` (None: a plain record) over `replaced`.

    Garbage: the replaced generation, "o" entries, "n" entries of other generations once
    stale. A young "n" entry may be a write another process is doing right now: kept. The
    live generation's entry is kept (see Pending).
    """
    delete: dict[str, int] = {}
    if replaced is not None and replaced.gen != live:
        delete[replaced.gen] = replaced.count
    keep = []
    for entry in unique(journal):
        if entry.gen == live:
            keep.append(entry)
        elif entry.gen in delete or entry.kind == "o" or now - entry.since > stale_seconds:
            delete[entry.gen] = max(delete.get(entry.gen, 0), entry.count)
        else:
            keep.append(entry)
    keep = [e for e in keep if e.gen not in delete]
    return Collection(list(delete.items()), keep)

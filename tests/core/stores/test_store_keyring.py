"""KeyringStore specifics: chunk layout, cleanup, plaintext refusal, error mapping, timeouts."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import keyring
import keyring.backend
import keyring.errors
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keyring.backends import chainer, fail, null

from tdgui.core.errors import StoredDataError, StoreUnavailable, UsageError
from tdgui.core.stores.keyring import KeyringStore, chunks
from tdgui.core.stores.keyring.chunks import CHUNK_UNITS, HEADER_PREFIX, split_chunks, utf16_units
from tdgui.core.stores.keyring.timed import TimedKeyring

WITH_KEYRING = "scripts/with-keyring.sh .venv/bin/pytest tests/core/stores/test_store_keyring.py"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def restore_backend() -> Iterator[None]:
    """keyring.set_keyring changes process-wide state: put the original back afterwards."""
    original = keyring.get_keyring()
    try:
        yield
    finally:
        keyring.set_keyring(original)


def _secret_service_collection() -> Any:
    import secretstorage

    connection = secretstorage.dbus_init()
    return connection, secretstorage.get_default_collection(connection)


def items(service: str) -> list[str]:
    """Usernames stored for `service`, listed through secretstorage (keyring cannot list)."""
    connection, collection = _secret_service_collection()
    try:
        return sorted(i.get_attributes()["username"] for i in collection.search_items({"service": service}))
    finally:
        connection.close()


@pytest.fixture
def real() -> Iterator[KeyringStore]:
    """A store on the real Secret Service; FAILS (not skips) when there is none."""
    service = f"tdgui-test-{uuid.uuid4().hex[:12]}"
    store = KeyringStore(service=service)
    if "(SecretService)" not in store.describe():
        pytest.fail(
            f"this test needs a real, unlocked Secret Service; keyring offers {keyring.get_keyring()!r}. "
            f"Run it in a private D-Bus session with gnome-keyring: `{WITH_KEYRING}` (make test does).",
            pytrace=False,
        )
    try:
        yield store
    finally:
        connection, collection = _secret_service_collection()
        try:
            for item in collection.search_items({"service": service}):
                item.delete()
        finally:
            connection.close()


# ----------------------------------------------------------------------------- fake backends
# No `priority` on these classes: keyring then deems them not viable, so merely defining them
# (keyring registers every subclass) never makes keyring pick one by itself.


class DictBackend(keyring.backend.KeyringBackend):
    def __init__(self) -> None:
        super().__init__()
        self.data: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.data.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.data[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.data.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("not found")


class PlaintextKeyring(DictBackend):
    """Stands in for keyrings.alt.file.PlaintextKeyring (not installed here)."""


PlaintextKeyring.__module__ = "keyrings.alt.file"


class EncryptedKeyring(DictBackend):
    """Stands in for keyrings.alt.file.EncryptedKeyring: encrypted, so acceptable."""


EncryptedKeyring.__module__ = "keyrings.alt.file"


class HungBackend(DictBackend):
    """A Secret Service that never answers (until released, at most 10 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.calls = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.calls += 1
        self.release.wait(10)
        return None


class FaultyBackend(DictBackend):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def get_password(self, service: str, username: str) -> str | None:
        raise self.error

    def set_password(self, service: str, username: str, password: str) -> None:
        raise self.error

    def delete_password(self, service: str, username: str) -> None:
        raise self.error


def use(backend: keyring.backend.KeyringBackend) -> KeyringStore:
    keyring.set_keyring(backend)
    return KeyringStore(service="tdgui-fake")


# ----------------------------------------------------------------------------- chunk layout


def _header(store: KeyringStore, key: str) -> tuple[str, int]:
    raw = keyring.get_password(store.service, key)
    assert raw is not None and raw.startswith(HEADER_PREFIX + "v1:")
    _, _, gen, count, _sha = raw.split(":")
    return gen, int(count)


def test_layout_plain_up_to_1200_then_chunks(real: KeyringStore) -> None:
    value = "x" * 1200
    real.write("a/tokens", value)
    assert keyring.get_password(real.service, "a/tokens") == value  # one plain entry
    assert items(real.service) == ["a/tokens"]

    value = "y" * 1201
    real.write("a/tokens", value)
    gen, count = _header(real, "a/tokens")
    assert count == 2
    # The journal names the live generation too (whoever replaces it deletes its chunks).
    assert items(real.service) == sorted(
        ["a/tokens", f"a/tokens#{gen}.0", f"a/tokens#{gen}.1", "a/tokens#pending"]
    )
    assert keyring.get_password(real.service, f"a/tokens#{gen}.0") == "y" * 1200
    assert keyring.get_password(real.service, f"a/tokens#{gen}.1") == "y"
    journal = keyring.get_password(real.service, "a/tokens#pending")
    assert journal is not None and journal.startswith(f"n.{gen}.2.")
    assert real.read("a/tokens") == value


def test_one_secret_service_connection_per_operation(
    real: KeyringStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keyring opens a D-Bus connection and a session for every call; the store shares one per
    operation (a chunked write is 6+ calls), and plain keyring reads what it wrote."""
    import secretstorage

    opened = []
    original = secretstorage.dbus_init

    def counting() -> Any:
        opened.append(1)
        return original()

    real.check_available()  # resolve the backend first (keyring probes D-Bus once)
    monkeypatch.setattr(secretstorage, "dbus_init", counting)
    value = "w" * 3000
    real.write("c/tokens", value)
    assert len(opened) == 1
    gen, count = _header(real, "c/tokens")
    assert (
        "".join(keyring.get_password(real.service, f"c/tokens#{gen}.{i}") or "" for i in range(count))
        == value
    )
    opened.clear()
    assert real.read("c/tokens") == value
    real.delete("c/tokens")
    assert len(opened) == 2
    assert items(real.service) == []


def test_astral_characters_count_double_for_windows(real: KeyringStore) -> None:
    value = "😀" * 700  # 700 characters, 1,400 UTF-16 units: too big for one Windows entry
    real.write("e/tokens", value)
    gen, count = _header(real, "e/tokens")
    parts = [keyring.get_password(real.service, f"e/tokens#{gen}.{i}") for i in range(count)]
    assert all(c is not None and utf16_units(c) <= CHUNK_UNITS for c in parts)
    assert real.read("e/tokens") == value


def test_short_value_that_looks_like_a_header_is_stored_chunked(real: KeyringStore) -> None:
    value = HEADER_PREFIX + "v1:feedfacefeedface:1:" + "0" * 64
    real.write("h/tokens", value)
    assert keyring.get_password(real.service, "h/tokens") != value  # a real header instead
    assert real.read("h/tokens") == value


def test_missing_chunk_reads_as_nothing_stored(real: KeyringStore) -> None:
    real.write("m/tokens", "z" * 5000)
    gen, count = _header(real, "m/tokens")
    assert count == 5
    keyring.delete_password(real.service, f"m/tokens#{gen}.3")
    assert real.read("m/tokens") is None
    real.write("m/tokens", "recovered")  # and the store is usable again
    assert real.read("m/tokens") == "recovered"
    assert items(real.service) == ["m/tokens"]


def test_tampered_chunk_reads_as_nothing_stored(real: KeyringStore) -> None:
    real.write("t/tokens", "q" * 3000)
    gen, _ = _header(real, "t/tokens")
    keyring.set_password(real.service, f"t/tokens#{gen}.1", "Q" * 1200)  # same size, other text
    assert real.read("t/tokens") is None


def test_newer_chunk_format_is_reported_not_misread(real: KeyringStore) -> None:
    keyring.set_password(real.service, "n/tokens", HEADER_PREFIX + "v2:something")
    with pytest.raises(StoredDataError, match="newer tdgui"):
        real.read("n/tokens")
    real.write("n/tokens", "mine now")  # overwriting it is allowed
    assert real.read("n/tokens") == "mine now"


def test_overwrite_and_delete_leave_no_stale_entries(real: KeyringStore) -> None:
    real.write("s/tokens", "a" * 5000)
    first_gen, _ = _header(real, "s/tokens")
    real.write("s/tokens", "b" * 3000)
    gen, count = _header(real, "s/tokens")
    assert gen != first_gen
    # Only the live generation is left: old chunks are gone, the journal names the live one.
    live = [f"s/tokens#{gen}.{i}" for i in range(count)]
    assert items(real.service) == sorted(["s/tokens", "s/tokens#pending", *live])
    real.write("s/tokens", "short")
    assert items(real.service) == ["s/tokens"]
    real.write("s/tokens", "c" * 2500)
    real.delete("s/tokens")
    assert items(real.service) == []


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so the store neither maps nor swallows it."""


def kill_at(monkeypatch: pytest.MonkeyPatch, username: str) -> None:
    """Make the keyring set of `username` (e.g. a header: the commit point) kill the writer."""
    original = TimedKeyring.set

    def set_or_die(self: TimedKeyring, name: str, value: str, **kw: Any) -> None:
        if name == username:
            raise Killed
        original(self, name, value, **kw)

    monkeypatch.setattr(TimedKeyring, "set", set_or_die)


def test_debris_of_a_killed_writer_is_cleaned_up(real: KeyringStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real.write("k/tokens", "old " * 600)  # 2,400 characters, chunked
    with monkeypatch.context() as patch:
        kill_at(patch, "k/tokens")  # "killed" right before the commit point
        with pytest.raises(Killed):
            real.write("k/tokens", "new " * 900)
    assert real.read("k/tokens") == "old " * 600  # the old record is intact
    assert len(items(real.service)) == 1 + 2 + 3 + 1  # header, old, orphaned new, journal

    # A recent unfinished write may belong to a live process: the next write keeps it (and
    # deletes the chunks of the record it replaced, after its one-call commit)...
    real.write("k/tokens", "next")
    assert len(items(real.service)) == 1 + 3 + 1
    # ...until it is stale: then any later write collects it, a small one too.
    monkeypatch.setattr(chunks, "STALE_SECONDS", -1.0)
    real.write("k/tokens", "later")
    assert items(real.service) == ["k/tokens"]
    # A delete removes everything the journal names, stale or not.
    monkeypatch.setattr(chunks, "STALE_SECONDS", 300.0)
    with monkeypatch.context() as patch:
        kill_at(patch, "k/tokens")
        with pytest.raises(Killed):
            real.write("k/tokens", "x" * 4000)
    real.delete("k/tokens")
    assert items(real.service) == []


def test_journal_never_forgets_debris(restore_backend: None) -> None:
    """D2: 100 writers killed before their commit within seconds (more than the 30 entries one
    journal piece holds, and than the old 1,200-character journal kept), then delete():
    nothing of the record is left. Before the fix ~36 entries fit and the rest leaked."""
    backend = DictBackend()
    store = use(backend)
    store.write("d/tokens", "0" * 2500)
    for index in range(100):
        with pytest.MonkeyPatch.context() as patch:
            kill_at(patch, "d/tokens")
            with pytest.raises(Killed):
                store.write("d/tokens", str(index % 10) * 2500)
        assert store.read("d/tokens") == "0" * 2500
    pieces = sorted(u for _, u in backend.data if "#pending" in u)
    assert len(pieces) == 4  # 101 entries: 30 per piece
    assert all(utf16_units(v) <= CHUNK_UNITS for v in backend.data.values())
    store.delete("d/tokens")
    assert backend.data == {}


class DiesAfter(DictBackend):
    """A backend whose writer is killed after `budget` more changes (sets or deletes)."""

    budget = 10**9

    def _spend(self) -> None:
        if self.budget <= 0:
            raise Killed
        self.budget -= 1

    def set_password(self, service: str, username: str, password: str) -> None:
        self._spend()
        super().set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        self._spend()
        super().delete_password(service, username)


@settings(max_examples=150, deadline=None)
@given(
    old=st.integers(min_value=0, max_value=95),
    dropped=st.sets(st.integers(min_value=0, max_value=95)),
    added=st.integers(min_value=0, max_value=35),
    budget=st.integers(min_value=0, max_value=8),
)
def test_journal_rewrite_killed_at_any_call_keeps_every_surviving_entry(
    old: int, dropped: set[int], added: int, budget: int
) -> None:
    """Whatever call of a journal rewrite the writer dies at, every entry in both the old and
    the new journal is still read back, and nothing that was in neither appears."""
    from tdgui.core.stores.keyring.chunks import Pending

    original = keyring.get_keyring()
    backend = DiesAfter()
    try:
        store = use(backend)
        entries = [Pending("n", f"{i:016x}", 1 + i % 3, 1_000_000 + i) for i in range(old + added)]
        before, after_added = entries[:old], entries[old:]
        store._write_journal("j/tokens", store._read_journal("j/tokens"), before)
        after = [e for i, e in enumerate(before) if i not in dropped] + after_added
        backend.budget = budget
        try:
            store._write_journal("j/tokens", store._read_journal("j/tokens"), after)
        except Killed:
            pass
        backend.budget = 10**9
        seen = set(store._read_journal("j/tokens").entries)
        assert set(before) & set(after) <= seen
        assert seen <= set(before) | set(after)
    finally:
        keyring.set_keyring(original)


def test_damaged_records_read_as_nothing(restore_backend: None) -> None:
    backend = DictBackend()
    store = use(backend)
    store.write("d/tokens", "w" * 2000)
    head = backend.data[("tdgui-fake", "d/tokens")]
    gen = head.split(":")[2]
    backend.data[("tdgui-fake", "d/tokens")] = head + "\n"  # not exactly a header
    assert store.read("d/tokens") is None
    backend.data[("tdgui-fake", "d/tokens")] = head
    backend.data[("tdgui-fake", f"d/tokens#{gen}.1")] = "\udc80" * 800  # lone surrogates
    assert store.read("d/tokens") is None


def test_too_large_for_the_header_is_refused_up_front(restore_backend: None) -> None:
    backend = DictBackend()
    store = use(backend)
    with pytest.raises(UsageError, match="too large"):
        store.write("big/tokens", "x" * (chunks.MAX_CHUNKS * CHUNK_UNITS + 1))
    assert backend.data == {}


def test_describe_names_the_backend(real: KeyringStore) -> None:
    assert real.describe() == f"system keyring (SecretService), service {real.service!r}"
    real.check_available()


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=4000), st.integers(min_value=2, max_value=1300))
def test_split_chunks_property(value: str, limit: int) -> None:
    parts = split_chunks(value, limit)
    assert "".join(parts) == value
    assert all(utf16_units(c) <= limit for c in parts)
    assert all(parts) or parts == [""]


# ----------------------------------------------------------------------------- refusal


def test_refuses_keyrings_alt_plaintext(restore_backend: None) -> None:
    backend = PlaintextKeyring()
    store = use(backend)
    for action in (
        lambda: store.write("a/tokens", "secret"),
        lambda: store.read("a/tokens"),
        lambda: store.delete("a/tokens"),
        store.check_available,
    ):
        with pytest.raises(StoreUnavailable) as caught:
            action()
        message = str(caught.value)
        assert "--store file" in message
        assert "plaintext" in message and "keyrings.alt.file.PlaintextKeyring" in message
    assert backend.data == {}  # nothing was written in clear
    assert "unavailable" in store.describe()


def test_accepts_an_encrypted_keyrings_alt_backend(restore_backend: None) -> None:
    store = use(EncryptedKeyring())
    store.write("a/tokens", "v" * 3000)
    assert store.read("a/tokens") == "v" * 3000


@pytest.mark.parametrize("backend_class", [fail.Keyring, null.Keyring])
def test_refuses_no_backend(restore_backend: None, backend_class: type) -> None:
    store = use(backend_class())
    with pytest.raises(StoreUnavailable, match="--store file") as caught:
        store.write("a/tokens", "secret")
    assert "No system keyring (Secret Service) is available" in str(caught.value)
    with pytest.raises(StoreUnavailable, match="--store file"):
        store.check_available()


def test_chainer_uses_the_safe_member_only(restore_backend: None) -> None:
    plaintext, safe = PlaintextKeyring(), DictBackend()

    class Chain(chainer.ChainerBackend):
        priority = -1  # never chosen by keyring itself
        backends = [plaintext, safe]  # what keyring chains when keyrings.alt is installed

    store = use(Chain())
    store.write("a/tokens", "secret")
    assert safe.data == {("tdgui-fake", "a/tokens"): "secret"}
    assert plaintext.data == {}

    class OnlyPlaintext(chainer.ChainerBackend):
        priority = -1
        backends = [plaintext]

    store = use(OnlyPlaintext())
    with pytest.raises(StoreUnavailable, match="plaintext"):
        store.write("a/tokens", "secret")


# ----------------------------------------------------------------------------- errors


def _dbus_error() -> Exception:
    from jeepney import DBusAddress
    from jeepney.wrappers import DBusErrorResponse, new_error, new_method_call

    call = new_method_call(DBusAddress("/org/freedesktop/secrets", "org.freedesktop.secrets"), "Ping")
    reply = new_error(call, "org.freedesktop.DBus.Error.ServiceUnknown", "s", ("not activatable",))
    return DBusErrorResponse(reply)


def _secretstorage_error(name: str) -> Exception:
    import secretstorage.exceptions

    exc: Exception = getattr(secretstorage.exceptions, name)("boom")
    return exc


@pytest.mark.parametrize(
    ("make_error", "expected"),
    [
        (lambda: keyring.errors.KeyringLocked("Failed to unlock the collection!"), "keyring is locked"),
        (
            lambda: keyring.errors.InitError("Failed to create the collection: Prompt dismissed.."),
            "keyring is locked",
        ),
        (lambda: _secretstorage_error("LockedException"), "keyring is locked"),
        (lambda: _secretstorage_error("PromptDismissedException"), "keyring is locked"),
        (lambda: keyring.errors.NoKeyringError("No recommended backend"), "No system keyring"),
        (
            lambda: keyring.errors.InitError("Failed to create the collection: no service"),
            "keyring unavailable",
        ),
        (lambda: _secretstorage_error("SecretServiceNotAvailableException"), "keyring unavailable"),
        (_dbus_error, "keyring unavailable"),
        (lambda: ConnectionRefusedError(111, "Connection refused"), "keyring unavailable"),
    ],
)
def test_backend_errors_become_store_unavailable(
    restore_backend: None, make_error: Any, expected: str
) -> None:
    store = use(FaultyBackend(make_error()))
    for action in (
        lambda: store.read("a/tokens"),
        lambda: store.write("a/tokens", "v"),
        lambda: store.delete("a/tokens"),
        store.check_available,
    ):
        with pytest.raises(StoreUnavailable, match=expected) as caught:
            action()
        assert "--store file" in str(caught.value)


def test_error_messages_never_contain_the_value(restore_backend: None) -> None:
    secret = "refresh-token-0123456789-abcdefghij-SECRET"

    class Leaky(DictBackend):
        def set_password(self, service: str, username: str, password: str) -> None:
            if "SECRET" in password:  # the record or one of its chunks (not the journal)
                # The secret far into a long message: past what the user sees, not past a traceback.
                raise keyring.errors.PasswordSetError(f"{'noise ' * 80}could not store {password!r}")
            super().set_password(service, username, password)

    for value in (secret, secret * 100):  # plain and chunked
        store = use(Leaky())
        with pytest.raises(StoreUnavailable) as caught:
            store.write("a/tokens", value)
        assert secret[:16] not in str(caught.value)
        assert "withheld" in str(caught.value)
        assert caught.value.__cause__ is None  # the leaky original is not chained either


# ----------------------------------------------------------------------------- timeouts


def test_hung_keyring_gives_up_within_the_timeout(restore_backend: None) -> None:
    backend = HungBackend()
    try:
        store = use(backend)  # default timeout: 2.5 s per call
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"did not answer within 2.5 s") as caught:
            store.read("a/tokens")
        elapsed = time.monotonic() - started
        assert 2.4 <= elapsed < 3.0
        assert "--store file" in str(caught.value)
        # While that call still hangs, further calls fail at once instead of piling up threads.
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="did not answer"):
            store.write("a/tokens", "v")
        assert time.monotonic() - started < 0.5
        assert backend.calls == 1
    finally:
        backend.release.set()


def test_a_committed_write_is_not_reported_failed_when_cleanup_hangs(restore_backend: None) -> None:
    class SlowDelete(DictBackend):
        release = threading.Event()
        hang = False

        def delete_password(self, service: str, username: str) -> None:
            if self.hang:
                self.release.wait(10)
            super().delete_password(service, username)

    backend = SlowDelete()
    keyring.set_keyring(backend)
    store = KeyringStore(service="tdgui-fake", timeout=0.3)
    try:
        store.write("a/tokens", "1" * 3000)
        backend.hang = True
        store.write("a/tokens", "2" * 3000)  # committed; deleting the old chunks hangs
    finally:
        backend.release.set()
    backend.hang = False
    deadline = time.monotonic() + 5
    while store.calls.stuck is not None and store.calls.stuck.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.read("a/tokens") == "2" * 3000
    store.write("a/tokens", "3")  # the next write removes what the hung cleanup left
    assert sorted(u for _, u in backend.data) == ["a/tokens"]


def test_check_available_is_timed_too(restore_backend: None) -> None:
    backend = HungBackend()
    try:
        keyring.set_keyring(backend)
        store = KeyringStore(service="tdgui-fake", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"within 0.3 s"):
            store.check_available()
        assert time.monotonic() - started < 0.8
        assert "unavailable" in store.describe()  # describe never raises
    finally:
        backend.release.set()

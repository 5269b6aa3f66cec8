"""Row 6: hypothesis fuzzing of redirect parsing and of every stored format's loader.

Must hold: no exception other than the typed ones (tdgui.core.errors.TdguiError subclasses);
parse_redirect accepts only an exact callback match carrying the right state once and a code
once. ~300 examples per target by default, 10,000 under TD_SOAK=1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import keyring
import keyring.backend
import keyring.errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rel_support import scale
from tdgui.core import flow, providers
from tdgui.core.config import ACCOUNTS_VERSION, Config, Settings, sandbox_account
from tdgui.core.errors import TdguiError
from tdgui.core.service import RefreshRecord, TokenService
from tdgui.core.stores.keyring import KeyringStore
from tdgui.core.stores.keyring.chunks import HEADER_PREFIX
from tdgui.core.stores.keyring.chunks import Header as _Header
from tdgui.core.stores.keyring.chunks import Pending as _Pending
from tdgui.core.stores.memory import MemoryStore
from tdgui.core.tokens import TokenSet

EXAMPLES = scale(300, 10_000)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
CALLBACK = "https://127.0.0.1:8182/"
PENDING = flow.begin_login(
    "fuzz", providers.sandbox("schwab", "https://127.0.0.1:9", None), "KEY", CALLBACK, 0
)
STATE = PENDING.state
counts: dict[str, int] = {}


def count(target: str, outcome: str) -> None:
    counts[f"{target}:{outcome}"] = counts.get(f"{target}:{outcome}", 0) + 1


# ----------------------------------------------------------------------------- redirects

texts = st.text(max_size=40)
schemes = st.sampled_from(["https", "http", "HTTPS", "ftp", "javascript", "file", "", "https:"]) | texts
hosts = (
    st.sampled_from(
        [
            "127.0.0.1",
            "127.0.0.1.evil.com",
            "localhost",
            "127.0.0.2",
            "[::1]",
            "evil.com",
            "127.0.0.1.",
            "127.1",
            "0x7f.0.0.1",
            "",
            "%31%32%37.0.0.1",
            "127.0.0.1\\@evil.com",
        ]
    )
    | texts
)
ports = st.sampled_from(["", ":8182", ":8183", ":443", ":0", ":99999", ":abc", ":08182", ":8182:8182", ":"])
userinfos = st.sampled_from(["", "", "", "user@", "u:p@", "127.0.0.1:8182@", "@"])
paths = st.sampled_from(["/", "", "/cb", "//", "/%2e", "/./", "/?", "/#", "/%2F"]) | texts.map(
    lambda t: "/" + t
)
keys = (
    st.sampled_from(["code", "state", "error", "error_description", "session", "x", "Code", "STATE", "code "])
    | texts
)
values = (
    st.sampled_from([STATE, STATE + "x", STATE[:-1], "", "C0.abc@", "C0.abc%40", "access_denied"]) | texts
)
params = st.lists(st.tuples(keys, values), max_size=6)
fragments = st.sampled_from(["", "code=frag", f"state={STATE}"]) | texts
separators = st.sampled_from(["&", "&", "&", ";", "&&", "&amp;"])


def mostly(value: str, others: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """The right component 3 times in 4, so that near-misses (one part wrong) are common."""
    return st.integers(0, 3).flatmap(lambda i: st.just(value) if i else others)


@st.composite
def redirect_urls(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=200))  # anything at all
    pairs = draw(params) if draw(st.booleans()) else [("session", "abc")]
    if draw(st.integers(0, 3)):
        pairs.append(("state", draw(mostly(STATE, values))))
    if draw(st.integers(0, 3)):
        pairs.append(("code", draw(values)))
    pairs = draw(st.permutations(pairs))
    sep = draw(mostly("&", separators))
    quote_values = draw(st.booleans())
    query = sep.join(f"{k}={quote(v, safe='') if quote_values else v}" for k, v in pairs)
    url = (
        f"{draw(mostly('https', schemes))}://{draw(mostly('', userinfos))}{draw(mostly('127.0.0.1', hosts))}"
        f"{draw(mostly(':8182', ports))}{draw(mostly('/', paths))}"
    )
    if draw(st.booleans()) or query:
        url += "?" + query
    fragment = draw(fragments)
    if fragment or draw(st.booleans()):
        url += "#" + fragment
    if draw(st.integers(0, 6)) == 0:  # one random edit somewhere
        at = draw(st.integers(0, len(url)))
        url = url[:at] + draw(st.text(min_size=1, max_size=3)) + url[at + draw(st.integers(0, 2)) :]
    return url


def exact_match_oracle(url: str, code: str) -> None:
    """What an accepted redirect must look like, checked independently of flow.py."""
    parts = urlsplit(url.strip())
    assert parts.scheme.lower() == "https", url
    assert "@" not in parts.netloc, url
    assert parts.hostname == "127.0.0.1", url
    assert parts.port == 8182, url
    assert parts.path in ("", "/"), url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    assert [v for k, v in pairs if k == "state"] == [STATE], url
    assert [v for k, v in pairs if k == "code"] == [code], url
    assert code, url
    assert not [k for k, _ in pairs if k == "error"], url


@FUZZ
@given(url=redirect_urls())
def test_fuzz_parse_redirect(url: str) -> None:
    try:
        code = flow.parse_redirect(PENDING, url)
    except TdguiError:
        count("redirect", "rejected")
        return
    exact_match_oracle(url, code)
    count("redirect", "accepted")


@FUZZ
@given(
    code=st.text(min_size=1, max_size=60).filter(
        lambda c: c.strip() == c and not any(x.isspace() for x in c)
    ),
    extra=st.lists(st.tuples(st.sampled_from(["session", "x", "scope"]), st.text(max_size=10)), max_size=3),
)
def test_fuzz_exact_redirect_is_accepted(code: str, extra: list[tuple[str, str]]) -> None:
    """The other direction: the exact callback with the right state gives back the code, decoded once."""
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in [("code", code), *extra, ("state", STATE)])
    assert flow.parse_redirect(PENDING, f"{CALLBACK}?{query}") == code
    count("redirect-exact", "accepted")


# ----------------------------------------------------------------------------- TokenSet.from_json

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
VALID_TOKENS = TokenSet(
    access_token="A" * 40,
    access_expires_at=1_800_001_800.0,
    refresh_token="R" * 40,
    refresh_expires_at=1_800_604_800.0,
    login_at=1_800_000_000.0,
    received_at=1_800_000_000.0,
    scope="api",
    response={"expires_in": 1800},
)
TOKEN_FIELDS = [*json.loads(VALID_TOKENS.to_json()).keys(), "extra"]


@st.composite
def token_texts(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.text(max_size=200))
    if kind == 1:
        return json.dumps(draw(json_values))
    if kind == 2:
        depth = draw(st.integers(1, 200_000))
        return "[" * depth + "]" * draw(st.sampled_from([0, depth]))
    body = json.loads(VALID_TOKENS.to_json())
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(TOKEN_FIELDS))
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(json_values)
    text = json.dumps(body)
    if kind == 5:  # and a byte-level cut
        text = text[: draw(st.integers(0, len(text)))]
    return text


def check_token_set(tokens: TokenSet) -> None:
    assert isinstance(tokens.access_token, str)
    assert tokens.refresh_token is None or isinstance(tokens.refresh_token, str)
    for value in (tokens.access_expires_at, tokens.login_at, tokens.received_at):
        assert isinstance(value, float) and math.isfinite(value)
    assert tokens.refresh_expires_at is None or math.isfinite(tokens.refresh_expires_at)
    assert isinstance(tokens.response, dict)
    assert TokenSet.from_json(tokens.to_json()) == tokens
    tokens.access_valid(0.0)
    tokens.refresh_valid(0.0)


@FUZZ
@given(text=token_texts())
def test_fuzz_token_set_loader(text: str) -> None:
    try:
        tokens = TokenSet.from_json(text)
    except TdguiError:
        count("tokens", "rejected")
        return
    check_token_set(tokens)
    count("tokens", "loaded")


# ----------------------------------------------------------------------------- accounts.json

VALID_ACCOUNT = sandbox_account("acct").to_dict()
ACCOUNT_FIELDS = [*VALID_ACCOUNT.keys(), "extra"]
SETTINGS_FIELDS = ["start_minimized", "launch_at_login", "refresh_lead_seconds", "notifications", "other"]


@st.composite
def accounts_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    if kind == 2:
        depth = draw(st.integers(1, 200_000))
        return ("{" + '"a":[' * depth).encode()
    account = dict(VALID_ACCOUNT)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        key = draw(st.sampled_from(ACCOUNT_FIELDS))
        account[key] = draw(
            json_values | st.sampled_from(["custom", "sandbox", "https://127.0.0.1:1/", "file"])
        )
    settings_body: object = {
        draw(st.sampled_from(SETTINGS_FIELDS)): draw(json_values) for _ in range(draw(st.integers(0, 2)))
    }
    if draw(st.integers(0, 5)) == 0:
        settings_body = draw(json_values)
    body = {
        "version": draw(st.sampled_from([ACCOUNTS_VERSION, ACCOUNTS_VERSION, 2, "1", True, None])),
        "accounts": draw(st.sampled_from([[account], [account, account], account, None, "x"])),
        "settings": settings_body,
    }
    raw = json.dumps(body).encode()
    if kind == 5:
        raw = raw[: draw(st.integers(0, len(raw)))] + draw(st.binary(max_size=3))
    return raw


def check_loaded_config(config: Config) -> None:
    data = config.load()
    for name, account in data.accounts.items():
        assert account.validate() is account
        assert name == account.name
        account.resolve_provider(config.directory)
    for field_name, default in vars(Settings()).items():
        assert type(getattr(data.settings, field_name)) is type(default), field_name
    statuses = TokenService(config, store_override=MemoryStore()).statuses()
    assert [s.name for s in statuses] == list(data.accounts)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config")


@FUZZ
@given(raw=accounts_files())
def test_fuzz_accounts_json_loader(raw: bytes, fuzz_dir: Path) -> None:
    config = Config(fuzz_dir)
    fuzz_dir.mkdir(exist_ok=True)
    config.path.write_bytes(raw)
    try:
        check_loaded_config(config)
    except TdguiError:
        count("accounts.json", "rejected")
        return
    count("accounts.json", "loaded")


# ----------------------------------------------------------------------------- status records

STATUS_FIELDS = ["last_refresh_at", "last_refresh_ok", "last_error", "login_required", "other"]


@st.composite
def status_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=100))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    if kind == 2:
        return ("[" * draw(st.integers(1, 200_000))).encode()
    body: dict[str, object] = {
        "last_refresh_at": 1.8e9,
        "last_refresh_ok": False,
        "last_error": "x",
        "login_required": False,
    }
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(STATUS_FIELDS))
        body[key] = draw(json_values | st.sampled_from([float("nan"), float("inf"), 1e300, -1e300]))
    return json.dumps(body).encode()


@FUZZ
@given(raw=status_files())
def test_fuzz_status_record_loader(raw: bytes, fuzz_dir: Path) -> None:
    config = Config(fuzz_dir)
    config.path.write_text(json.dumps({"version": 1, "accounts": [VALID_ACCOUNT], "settings": {}}))
    service = TokenService(config, store_override=MemoryStore())
    path = fuzz_dir / "status" / "acct.json"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(raw)
    record = service.refresh_record("acct")  # bookkeeping: never raises, damaged reads as empty
    assert isinstance(record, RefreshRecord)
    assert record.last_refresh_at is None or (
        type(record.last_refresh_at) in (int, float) and math.isfinite(record.last_refresh_at)
    )
    assert record.last_refresh_ok is None or type(record.last_refresh_ok) is bool
    assert record.last_error is None or type(record.last_error) is str
    assert type(record.login_required) is bool
    status = service.status("acct")
    json.dumps(status.to_json(), allow_nan=False)
    count("status", "loaded")


# ----------------------------------------------------------------------------- keyring chunk headers


class DictBackend(keyring.backend.KeyringBackend):
    """In-memory keyring (no `priority`: keyring never picks it by itself)."""

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


@pytest.fixture
def dict_keyring() -> Iterator[DictBackend]:
    original = keyring.get_keyring()
    backend = DictBackend()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(original)


hex16 = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)
sha_hex = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@st.composite
def header_texts(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.text(max_size=120))
    if kind == 1:
        return HEADER_PREFIX + draw(st.text(max_size=100))
    gen, sha = draw(hex16), draw(sha_hex)
    count_text = draw(st.sampled_from(["1", "2", "3", "0", "01", "99999", "100000", "-1", "٣"]))
    text = f"{HEADER_PREFIX}v1:{gen}:{count_text}:{sha}"
    if kind == 3:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=3)) + text[at + draw(st.integers(0, 2)) :]
    return text


@FUZZ
@given(text=header_texts(), journal=st.text(max_size=200))
def test_fuzz_chunk_header_parsing(text: str, journal: str) -> None:
    try:
        header = _Header.parse(text)
    except TdguiError:
        count("chunk-header", "newer-format")
        header = None
    else:
        count("chunk-header", "parsed" if header else "malformed")
        if header is not None:
            assert header.text() == text
            assert 1 <= header.count <= 99999
    for entry in _Pending.parse_all(journal):
        assert entry.kind in ("n", "o") and len(entry.gen) == 16


@FUZZ
@given(
    head=header_texts(),
    chunks=st.lists(st.text(max_size=30), max_size=4),
    matching=st.booleans(),
)
def test_fuzz_keyring_read_of_a_damaged_record(
    head: str, chunks: list[str], matching: bool, dict_keyring: DictBackend
) -> None:
    """Whatever the keyring holds under the record and its chunks, read() gives the value whose
    SHA-256 the header names, None, or a typed error; never another exception or a wrong value."""
    import hashlib

    store = KeyringStore(service="tdgui-fuzz")
    dict_keyring.data.clear()
    if matching:  # a header that really describes the chunks (so reads can succeed)
        value = "".join(chunks)
        gen = "0123456789abcdef"
        sha = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        head = f"{HEADER_PREFIX}v1:{gen}:{max(1, len(chunks))}:{sha}"
    match = head.startswith(HEADER_PREFIX) and _safe_parse(head)
    gen = match.gen if match else "0123456789abcdef"
    dict_keyring.data[("tdgui-fuzz", "acct/tokens")] = head
    for index, chunk in enumerate(chunks):
        dict_keyring.data[("tdgui-fuzz", f"acct/tokens#{gen}.{index}")] = chunk
    try:
        value = store.read("acct/tokens")
    except TdguiError:
        count("keyring-read", "typed error")
        return
    if value is None:
        count("keyring-read", "absent")
        return
    if head.startswith(HEADER_PREFIX):
        assert match, "a value came back for a header that does not parse"
        assert hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest() == match.sha256
        count("keyring-read", "chunked value")
    else:
        assert value == head
        count("keyring-read", "plain value")


def _safe_parse(text: str) -> _Header | None:
    try:
        return _Header.parse(text)
    except TdguiError:
        return None


def test_fuzz_summary(figure) -> None:
    """Runs last in this file: the figure for row 6."""
    targets = sorted({k.split(":")[0] for k in counts})
    detail = "; ".join(
        f"{t} "
        + "/".join(f"{k.split(':')[1]} {v}" for k, v in sorted(counts.items()) if k.startswith(t + ":"))
        for t in targets
    )
    figure(f"row 6: {EXAMPLES} examples per target, 0 untyped exceptions, 0 wrong accepts ({detail})")

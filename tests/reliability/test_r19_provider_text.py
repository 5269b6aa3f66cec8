"""Row 19 (issue 11, finding 6 / task item 5): provider text is validated, sanitized, bounded
and masked before it reaches stderr, the status record or `tdgui status`.

- Tokens must be RFC 6750 §2.1 b64token characters (plus Schwab's "@"): an access or refresh
  token with an escape sequence, a newline, a space or a quote is a provider error and
  nothing is stored.
- An error answer whose code and description echo the refresh token and the client secret,
  with terminal escapes, newlines and 900 KB of text: real `tdgui token` and `tdgui status`
  processes and the status file show none of the secrets, no control character, at most a
  few hundred characters of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.hostile_provider import (
    Answer,
    HostileProvider,
    add_account,
    seed_tokens,
    start_for_config,
    stored_bytes,
)
from tdgui.core import oauth
from tdgui.core.config import Config
from tdgui.core.errors import ProviderError
from tdgui.core.logs import sanitize_provider_text
from tdgui.core.providers import SANDBOX_SCHWAB_CLIENT_SECRET, schwab
from tdgui.core.service import TokenService
from tdgui.core.tokens import TokenSet

BAD_TOKENS = {
    "escape": "abc\x1b[2Jdef",
    "osc": "abc\x1b]0;pwned\x07",
    "newline": "abc\ndef",
    "space": "abc def",
    "quote": 'abc"def',
    "nul": "abc\x00",
}


@pytest.fixture
def provider(isolated_config: Path) -> Iterator[HostileProvider]:
    server = start_for_config(isolated_config)
    try:
        yield server
    finally:
        server.stop()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tdgui", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )


def controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]


@pytest.mark.parametrize("field", ["access_token", "refresh_token"])
@pytest.mark.parametrize("label", list(BAD_TOKENS))
def test_a_token_with_bad_characters_is_refused(provider: HostileProvider, field: str, label: str) -> None:
    add_account(provider, store="file")
    service = TokenService(Config())
    seed_tokens(service, provider)
    before = stored_bytes(service)
    body = {"access_token": "A" * 40, "refresh_token": "R" * 40, "expires_in": 1800, field: BAD_TOKENS[label]}
    provider.script(*[Answer(200, body)] * oauth.MAX_ATTEMPTS)
    with pytest.raises(ProviderError, match=f"invalid {field}|without an access token"):
        service.refresh("acct", force=True)
    assert stored_bytes(service) == before
    with pytest.raises(ProviderError):
        TokenSet.from_response(body, schwab(), 1_800_000_000.0)


def test_schwab_style_tokens_still_pass() -> None:
    tokens = TokenSet.from_response(
        {"access_token": "I0.b2F1dGgy-_abc@", "refresh_token": "Rz+/9=@", "expires_in": 1800},
        schwab(),
        1_800_000_000.0,
    )
    assert tokens.access_token.endswith("@")


def test_sanitize_provider_text() -> None:
    text = "a\x1b[31mb\x1b[0m\r\nc\x1b]0;title\x07\u202eevil\x9b2J " + "x" * 1000
    clean = sanitize_provider_text(text, ["topsecret-value"])
    assert clean.startswith("ab c evil") and len(clean) <= 300 and not controls(clean)
    # A secret split by an escape is masked once the escape is gone.
    assert "topsecret" not in sanitize_provider_text("key topsecret\x1b[0m-value!", ["topsecret-value"])


@pytest.mark.parametrize("size", [100, 900_000])
def test_an_echoing_error_shows_no_secret_anywhere(provider: HostileProvider, size: int, figure) -> None:
    add_account(provider, store="file")
    service = TokenService(Config())
    seed = seed_tokens(service, provider, access_left=-10)  # expired: the error reaches the user
    refresh = seed.refresh_token or ""
    echo = f"refresh_token={refresh} secret {SANDBOX_SCHWAB_CLIENT_SECRET} raw:{refresh}"
    body = {
        "error": f"invalid_request\x1b[31m {refresh}\x1b]0;pwned\x07",
        "error_description": f"{echo}\n\x1b[2J\x1b[H{'y' * size}",
    }
    provider.script(Answer(400, body))
    token = cli("token", "acct")
    status = cli("status")
    status_json = cli("status", "--json")
    record = (Path(os.environ["TD_CONFIG_DIR"]) / "status" / "acct.json").read_text()
    assert token.returncode == 4, token.stderr
    outputs = {
        "token stderr": token.stderr,
        "token stdout": token.stdout,
        "status": status.stdout + status.stderr,
        "status --json": status_json.stdout,
        "status record": record,
    }
    for where, text in outputs.items():
        assert refresh not in text, f"refresh token in {where}"
        assert SANDBOX_SCHWAB_CLIENT_SECRET not in text, f"client secret in {where}"
        assert "\x1b" not in text and "\\u001b" not in text, f"escape in {where}"
        assert not controls(text), f"control characters in {where}"
        assert len(text) < 3000, f"{where} is {len(text)} characters"
    last_error = json.loads(record)["last_error"]
    assert "invalid_request" in last_error and "[secret]" in last_error
    assert provider.token_requests() == 1
    figure(
        f"row 19 (error echoing secrets, {size} B description): exit 4, stderr {len(token.stderr)} chars, "
        f"status record {len(record)} chars, 0 secrets, 0 control characters"
    )


def test_a_5_mb_error_is_refused_briefly(provider: HostileProvider) -> None:
    add_account(provider, store="file")
    service = TokenService(Config())
    seed_tokens(service, provider, access_left=-10)
    provider.script(Answer(400, {"error": "invalid_request", "error_description": "z" * (5 << 20)}))
    token = cli("token", "acct")
    assert token.returncode == 4 and len(token.stderr) < 1000, token.stderr[:2000]
    assert "larger than" in token.stderr


def test_a_stored_token_with_an_escape_is_never_printed(provider: HostileProvider) -> None:
    """A record edited by hand (or written before this check) cannot reach the terminal."""
    add_account(provider, store="file")
    service = TokenService(Config())
    seed_tokens(service, provider, access_left=3000)
    record = json.loads(stored_bytes(service) or "")
    record["access_token"] = "abc\x1b]0;pwned\x07def"
    service.store(service.account("acct")).write("acct/tokens", json.dumps(record))
    token = cli("token", "acct")
    assert token.returncode == 5, token
    assert "\x1b" not in token.stdout + token.stderr and "abc" not in token.stdout

"""Row 3: the token endpoint answers 500, 503 + Retry-After, hangs, malformed JSON, 200 without
access_token, an HTML page.

Must hold: stored bytes unchanged (same SHA-256), at most 3 attempts with (growing) backoff,
Retry-After honoured, and a still-valid access token still served.
"""

from __future__ import annotations

import email.utils
import hashlib
import time

import pytest

from rel_support import add_sandbox_account, log_in, make_due
from tdgui.core import oauth
from tdgui.core.config import Config
from tdgui.core.errors import ProviderError
from tdgui.core.service import TokenService
from tdgui.core.stores.file import FileStore
from tdgui.sandbox import SandboxServer


class RecordingClock:
    """Wall time plus every backoff the code asked for: sleeps are recorded, not waited."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds


def stored_sha(store: FileStore, name: str) -> str:
    return hashlib.sha256(store.path_for(f"{name}/tokens").read_bytes()).hexdigest()


FAULTS = ["500", "503", "429", "hang", "malformed", "no_access_token", "html"]


@pytest.mark.parametrize("fault", FAULTS)
def test_transient_fault_keeps_bytes_and_serves_valid_token(
    sandbox: SandboxServer, fault: str, figure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TD_HTTP_TIMEOUT", "0.5")  # a hang costs 0.5 s per attempt
    monkeypatch.setenv("TD_HTTP_BACKOFF", "0.5")
    add_sandbox_account(sandbox, name="acct", store="file")
    clock = RecordingClock()
    service = TokenService(Config(), clock=clock)
    store = FileStore.default()
    log_in(service, "acct")
    make_due(service, "acct", seconds_left=120)  # due (inside the 5-min lead) but still valid
    valid = service.read_tokens(service.account("acct"))
    assert valid is not None
    sha_before = stored_sha(store, "acct")
    retry_after = 7.0 if fault in ("503", "429") else None

    # 1. An explicit refresh: fails after at most 3 attempts, nothing stored changes.
    sandbox.set_fault(fault, count=10, retry_after=retry_after, hang_seconds=3)
    before = sandbox.stats()["token_requests"]
    with pytest.raises(ProviderError):
        service.refresh("acct", force=True)
    attempts = sandbox.stats()["token_requests"] - before
    sleeps = list(clock.sleeps)
    assert attempts == oauth.MAX_ATTEMPTS, f"{attempts} attempts"
    assert len(sleeps) == attempts - 1
    if retry_after is not None:
        assert all(s >= retry_after for s in sleeps), sleeps  # Retry-After honoured
    else:
        assert sleeps == sorted(sleeps) and sleeps[-1] >= 2 * sleeps[0] > 0, sleeps  # backoff grows
    assert stored_sha(store, "acct") == sha_before

    # 2. A script asking for a token meanwhile: the still-valid access token is served.
    clock.sleeps.clear()
    served = service.get_token("acct")
    assert served.access_token == valid.access_token
    assert stored_sha(store, "acct") == sha_before
    assert sandbox.stats()["token_requests"] - before == 2 * oauth.MAX_ATTEMPTS
    sandbox.clear_faults()
    figure(
        f"row 3 ({fault}): {attempts} attempts, backoff {', '.join(f'{s:g}' for s in sleeps)} s, "
        f"0 bytes changed (same SHA-256), still-valid token served"
    )


def test_retry_after_then_success(sandbox: SandboxServer, figure) -> None:
    add_sandbox_account(sandbox, name="acct", store="file")
    clock = RecordingClock()
    service = TokenService(Config(), clock=clock)
    first = log_in(service, "acct")
    sandbox.set_fault("503", count=2, retry_after=7)
    before = sandbox.stats()["token_requests"]
    refreshed = service.refresh("acct", force=True)
    attempts = sandbox.stats()["token_requests"] - before
    assert refreshed.access_token != first.access_token  # type: ignore[attr-defined]
    assert attempts == 3 and clock.sleeps == [7.0, 7.0], clock.sleeps
    # A huge Retry-After is capped (a script must not sleep for hours), an HTTP-date is read.
    clock.sleeps.clear()
    sandbox.set_fault("503", count=2, retry_after=86400)
    service.refresh("acct", force=True)
    capped = list(clock.sleeps)
    assert capped == [oauth.MAX_RETRY_AFTER] * 2
    http_date = email.utils.formatdate(time.time() + 30, usegmt=True)
    parsed = oauth._retry_after(http_date)
    assert parsed is not None and 25 <= parsed <= 31
    figure(
        f"row 3 (Retry-After): 503 x2 with Retry-After 7 -> slept 7, 7 s, success on attempt "
        f"{attempts}; Retry-After 86400 -> slept {', '.join(f'{s:g}' for s in capped)} s (cap); "
        "HTTP-date form read"
    )

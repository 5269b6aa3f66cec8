"""Row 17 (issue 11, findings 2 and 3): a token answer is bounded in time and in size.

A hostile provider drips its answer one byte every 2 s, sends a 13 MB answer (with and
without Content-Length), a gzip bomb (2 MB on the wire, 2 GiB decoded), or a rotating
refresh whose answer carries a 900 KB extra field. Must hold: a clear ProviderError within
the deadline (a short one here; 30 s by default), stored bytes unchanged, memory bounded
(tracemalloc in-process; peak RSS of a separate process for the bomb), and the 900 KB
answer stored without the extra field, in well under a second, with the grant alive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
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
from tdgui.core.service import TokenService

HERE = Path(__file__).resolve().parent


@pytest.fixture
def provider(isolated_config: Path) -> Iterator[HostileProvider]:
    server = start_for_config(isolated_config)
    try:
        yield server
    finally:
        server.stop()


def refresh_in_thread(service: TokenService, limit: float) -> tuple[BaseException | None, float]:
    """Run a forced refresh; give up waiting after `limit` s (a missing deadline must fail the
    test, not hang it). Returns (exception or None, elapsed)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            service.refresh("acct", force=True)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    start = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    elapsed = time.monotonic() - start
    assert outcome, f"the refresh was still running after {elapsed:.1f} s: no deadline"
    return outcome[0], elapsed


def test_default_deadline_is_30_seconds() -> None:
    assert oauth.DEFAULT_DEADLINE == 30.0


@pytest.mark.parametrize("store", ["file", "keyring"])
def test_a_drip_fails_within_the_deadline(
    provider: HostileProvider, store: str, monkeypatch: pytest.MonkeyPatch, figure
) -> None:
    monkeypatch.setenv("TD_HTTP_DEADLINE", "3")
    add_account(provider, store=store)
    service = TokenService(Config())
    seed_tokens(service, provider)
    before = stored_bytes(service)
    # One byte every 2 s from the status line on: 100+ bytes would take minutes.
    provider.script(Answer(200, {"access_token": "A" * 40, "expires_in": 1800}, drip=2.0))
    error, elapsed = refresh_in_thread(service, 15)
    assert isinstance(error, ProviderError), error
    assert "deadline" in str(error) and "3 s" in str(error)
    assert elapsed < 3 + 2.5, f"{elapsed:.1f} s"
    assert stored_bytes(service) == before
    assert provider.token_requests() == 1
    # The refresh lock was released: the next refresh goes through at once.
    start = time.monotonic()
    service.refresh("acct", force=True)
    figure(
        f"row 17 (drip 1 byte/2 s, {store}): ProviderError after {elapsed:.1f} s (deadline 3 s), "
        f"0 bytes changed; next refresh {time.monotonic() - start:.2f} s"
    )


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-close"])
def test_a_13_mb_answer_is_refused_with_bounded_memory(
    provider: HostileProvider, length: bool, figure
) -> None:
    add_account(provider, store="file")
    service = TokenService(Config())
    seed_tokens(service, provider)
    before = stored_bytes(service)
    body = json.dumps({"access_token": "A" * 40, "expires_in": 1800, "extra": "x" * (13 << 20)}).encode()
    provider.script(Answer(200, body, headers={"Content-Type": "application/json"}, length=length))
    tracemalloc.start()
    try:
        with pytest.raises(ProviderError, match=r"larger than 1048576 bytes"):
            service.refresh("acct", force=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored_bytes(service) == before
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"  # the answer alone is 13 MiB
    how = "with" if length else "without"
    figure(f"row 17 (13 MB answer, {how} Content-Length): refused, traced peak {peak / 2**20:.1f} MiB")


BOMB_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from tdgui.core import oauth, providers
    from tdgui.core.clock import SYSTEM_CLOCK
    from tdgui.core.errors import ProviderError
    token_url, ca, refresh_token = sys.argv[1:4]
    provider = providers.custom(token_url, token_url, "none", (), True, ca_file=ca)
    client = oauth.TokenClient(provider, "client", None, SYSTEM_CLOCK, backoff=0.01)
    client.refresh(refresh_token, renew=False)  # warm up: imports, TLS, one good answer
    # Cap the address space, so a regression fails here instead of taking the machine's memory.
    size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + (768 << 20), resource.RLIM_INFINITY))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    try:
        client.refresh(refresh_token, renew=False)
        error = None
    except BaseException as exc:
        error = f"{isinstance(exc, ProviderError)} {type(exc).__name__}: {exc}"
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "after_kib": after, "error": error,
                      "elapsed": time.monotonic() - start}))
    """
)


def test_a_gzip_bomb_is_refused_with_bounded_memory(provider: HostileProvider, figure) -> None:
    provider.grant()
    provider.script(
        lambda seen: Answer(200, provider.rotate(seen.form)),
        Answer(200, gzip_bomb=2 << 30),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            BOMB_CHILD,
            provider.token_url,
            str(provider.ca_path),
            provider.live_refresh or "",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TD_HTTP_DEADLINE": "20"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    growth = (report["after_kib"] - report["before_kib"]) / 1024
    assert report["error"] and report["error"].startswith("True "), report  # a ProviderError
    assert "larger than 1048576 bytes" in report["error"], report
    assert growth < 32, f"peak RSS grew {growth:.0f} MiB"
    figure(
        f"row 17 (gzip bomb, 2 GiB decoded): refused in {report['elapsed']:.2f} s, "
        f"peak RSS growth {growth:.1f} MiB"
    )


def test_a_900_kb_extra_field_is_dropped_and_the_rotated_token_stored(
    provider: HostileProvider, figure
) -> None:
    add_account(provider, store="keyring")
    service = TokenService(Config())
    seed_tokens(service, provider)
    provider.script(lambda seen: Answer(200, provider.rotate(seen.form, extra="e" * 900_000, note="small")))
    start = time.monotonic()
    tokens = service.refresh("acct", force=True)
    elapsed = time.monotonic() - start
    stored = service.read_tokens(service.account("acct"))
    assert stored is not None and stored.refresh_token == provider.live_refresh
    assert "extra" not in stored.response and stored.response.get("note") == "small"
    assert any("too large" in w for w in tokens.warnings)
    assert len(stored_bytes(service) or "") < 10_000
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    service.refresh("acct", force=True)  # the grant is alive
    figure(
        f"row 17 (900 KB extra field, keyring): rotated token stored in {elapsed:.2f} s, "
        f"record {len(stored_bytes(service) or '')} chars, extra dropped, grant alive"
    )

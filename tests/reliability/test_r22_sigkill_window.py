"""Row 22 (issue 11): SIGKILL during a rotating refresh loses a grant only inside the measured window.

SIGKILL cannot be deferred: a process killed after the provider rotated the refresh token and
before the new one is durable loses the grant (RFC 9700 §4.14.2 revokes on reuse). tdgui
keeps that window as short as the store allows (the answer is stored before status, exports
or anything else; a Schwab record is one keyring entry).

1. The window per store, measured on the real refresh path (TokenService.refresh against the
   rotating sandbox): from the moment the sandbox finished sending the answer (its own
   time.monotonic(), the same clock in every process) to the store's write returning. This is
   an upper bound of "answer in hand → durable": it includes reading the answer off the socket.
2. `tdgui token` subprocesses SIGKILLed at random moments after their refresh reached the
   sandbox: every lost grant must come from a kill that fell between the provider processing
   the refresh and the end of the window (answer sent + the largest measured window + SLACK
   for the child being scheduled later than the measuring process).
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from rel_support import add_sandbox_account, log_in, make_due, scale, start_sandbox_for_test
from tdgui.core.config import Config
from tdgui.core.errors import LoginRequired
from tdgui.core.service import TokenService
from tdgui.core.stores.keyring.chunks import fits_one_entry

MEASURED = scale(20, 200)
KILLS = {"file": scale(15, 200), "sql": scale(15, 200), "keyring": scale(12, 200)}
#: A killed child may be descheduled between reading the answer and writing it (2 cores
#: shared by many processes): this much beyond the in-process window still counts as inside.
SLACK = 0.05


def _measure(service: TokenService, server, name: str) -> tuple[list[float], list[float], list[float], int]:
    """Per refresh, seconds: (answer in hand → store write returned), (sandbox answer sent →
    store write returned), (the first minus the store write itself: what tdgui does before
    writing); and the stored record's size. The real calls are only timed."""
    account = service.account(name)
    store = service.store(account)
    done: list[float] = []
    took: list[float] = []
    in_hand: list[float] = []
    real_write: Callable[[str, str], None] = store.write
    real_client = service.token_client

    def timed_write(key: str, value: str) -> None:
        started = time.monotonic()
        real_write(key, value)
        if key.endswith("/tokens"):
            done.append(time.monotonic())
            took.append(done[-1] - started)

    def timed_client(*args: Any) -> Any:
        client = real_client(*args)
        real_refresh = client.refresh

        def refresh(*a: Any, **k: Any) -> Any:
            answer = real_refresh(*a, **k)
            in_hand.append(time.monotonic())
            return answer

        client.refresh = refresh
        return client

    store.write = timed_write  # type: ignore[method-assign]
    service.token_client = timed_client  # type: ignore[method-assign]
    from_hand, from_sent, other = [], [], []
    try:
        for _ in range(MEASURED):
            before = len(server.refresh_answers())
            service.refresh(name, force=True)
            sent = server.refresh_answers()[before][1]
            from_hand.append(done[-1] - in_hand[-1])
            from_sent.append(done[-1] - sent)
            other.append(from_hand[-1] - took[-1])
    finally:
        del store.write  # the instance attributes; the real methods are back
        del service.token_client
    stored = store.read(f"{name}/tokens")
    assert stored is not None
    return sorted(from_hand), sorted(from_sent), sorted(other), len(stored)


def _spread(values: list[float]) -> str:
    p95 = values[int(0.95 * (len(values) - 1))]
    return f"median {_ms(statistics.median(values))}, p95 {_ms(p95)}, max {_ms(values[-1])}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


@pytest.mark.parametrize("kind", ["file", "sql", "keyring"])
def test_sigkill_loses_grants_only_inside_the_window(kind: str, figure) -> None:
    server = start_sandbox_for_test(rotate=True)
    try:
        name = f"r22{kind}"
        add_sandbox_account(server, name, "schwab", store=kind)
        service = TokenService(Config())
        log_in(service, name)
        from_hand, windows, other, size = _measure(service, server, name)
        one_entry = fits_one_entry(service.store(service.account(name)).read(f"{name}/tokens") or "")
        figure(
            f"row 22: {kind} window, {len(windows)} refreshes: answer in hand → stored "
            f"{_spread(from_hand)} (outside the store's write: median "
            f"{_ms(statistics.median(other))}); answer sent → stored {_spread(windows)}; record {size} chars"
            + (f", one keyring entry: {one_entry}" if kind == "keyring" else "")
        )
        if kind == "keyring":
            assert one_entry, "a Schwab record must fit one keyring entry (one D-Bus call to commit)"
        limit = windows[-1] + SLACK

        env = {k: v for k, v in os.environ.items() if k != "TD_LOG_LEVEL"}
        rng = random.Random(kind)
        lost = inside = outside = landed = 0
        for i in range(KILLS[kind]):
            make_due(service, name)
            answers_before = len(server.refresh_answers())
            requests_before = server.stats()["refresh_requests"]
            proc = subprocess.Popen(
                [sys.executable, "-m", "tdgui", "token", name],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            deadline = time.monotonic() + 30
            while server.stats()["refresh_requests"] == requests_before and proc.poll() is None:
                assert time.monotonic() < deadline, "the refresh never reached the sandbox"
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, 0.03))  # around the answer, its read and the write
            killed_at = time.monotonic()
            alive = proc.poll() is None
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            landed += alive
            answers = server.refresh_answers()[answers_before:]
            make_due(service, name)
            try:
                service.get_token(name)
                continue
            except LoginRequired:
                lost += 1
            assert answers, f"kill {i}: the grant died without the provider answering a refresh"
            processed, sent = answers[0]
            if processed <= killed_at <= sent + limit:
                inside += 1
            else:
                outside += 1
            log_in(service, name)  # a new grant for the next kills
        figure(
            f"row 22: {kind} SIGKILL: {KILLS[kind]} kills ({landed} while running), grants lost "
            f"{lost}, all inside the window (processed → sent + {_ms(limit)}): {outside == 0}"
        )
        assert outside == 0, f"{outside} grants lost by kills outside the window"
        # Nothing but building the record runs between the answer and the write (no status,
        # exports, notifications first). The absolute target (under 5 ms for file and sql) is
        # reported above; it moves with the load of the box, so it is not asserted here.
        assert statistics.median(other) < 0.003, "work before the store write widens the window"
    finally:
        server.stop()

"""Row 39: a Secret Service that stalls just as a rotated refresh answer arrives does not cost the grant.

Row 22's soak lost a grant this way: on a loaded box gnome-keyring did not answer the write
of the new tokens within the keyring store's 2.5 s call timeout, the refresh raised
StoreUnavailable, and the provider had already rotated the refresh token. Here the stall is
real: this test's own gnome-keyring-daemon is stopped (SIGSTOP) the moment the rotating
sandbox has processed the refresh (its answer held back 1 s), and continued 4 s later. Must
hold: the refresh returns the new tokens, the stored record is the one the provider issued
last, and a later forced refresh is accepted (the grant is alive).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from rel_support import add_sandbox_account, log_in
from tdgui.core.config import Config
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer

STALL = 4.0


def _keyring_daemon(marker: str) -> int:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() == "gnome-keyring-d" and marker.encode() in (
                proc / "environ"
            ).read_bytes():
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError("this test's gnome-keyring-daemon was not found")


def test_keyring_stall_while_the_answer_arrives(
    rotating_sandbox: SandboxServer, private_keyring: dict[str, str], figure
) -> None:
    daemon = _keyring_daemon(f"TDGUI_PRIVATE_KEYRING={private_keyring['TDGUI_PRIVATE_KEYRING']}")
    service = TokenService(Config())
    add_sandbox_account(rotating_sandbox, "r39", store="keyring")
    log_in(service, "r39")
    before = rotating_sandbox.stats()["refresh_requests"]
    rotating_sandbox.set_answer_delay(1.0)
    stalled: list[float] = []

    def stall_when_processed() -> None:
        give_up = time.monotonic() + 30
        while rotating_sandbox.stats()["refresh_requests"] == before and time.monotonic() < give_up:
            time.sleep(0.005)
        os.kill(daemon, signal.SIGSTOP)
        stalled.append(time.monotonic())
        try:
            time.sleep(STALL)
        finally:
            os.kill(daemon, signal.SIGCONT)

    staller = threading.Thread(target=stall_when_processed, daemon=True)
    staller.start()
    started = time.monotonic()
    try:
        tokens = service.refresh("r39", force=True)
    finally:
        staller.join(timeout=40)
        rotating_sandbox.set_answer_delay(0.0)
    took = time.monotonic() - started
    assert stalled, "the refresh never reached the sandbox"
    assert took > STALL - 1.5, f"the refresh returned after {took:.1f} s: the keyring never stalled it"
    assert TokenService(Config()).read_tokens(service.account("r39")) == tokens
    assert rotating_sandbox.stats()["refresh_requests"] == before + 1
    assert TokenService(Config()).refresh("r39", force=True).access_token, "the grant is gone"
    figure(
        f"row 39: gnome-keyring stopped {STALL:g} s as a rotated refresh answer arrived: refresh "
        f"returned after {took:.1f} s with the new tokens stored, grant alive (a forced refresh "
        "afterwards accepted)"
    )

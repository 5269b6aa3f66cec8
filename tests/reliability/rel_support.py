"""Helpers for the reliability rows: soak scaling, sandbox accounts, worker processes, secret scans."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

from helpers.sandbox import add_sandbox_account, config_dir, log_in
from tdgui.core.service import TokenService
from tdgui.core.stores.base import TokenStore
from tdgui.sandbox import SandboxServer, sandbox_state_dir

__all__ = [
    "HERE",
    "SOAK",
    "WORKERS",
    "add_sandbox_account",
    "ca_file",
    "config_dir",
    "digest",
    "log_in",
    "make_due",
    "scale",
    "secret_windows",
    "start_sandbox_for_test",
    "worker_cmd",
]

#: `make soak` sets TD_SOAK=1: the long variants of every row.
SOAK = os.environ.get("TD_SOAK") == "1"
HERE = Path(__file__).resolve().parent
WORKERS = HERE / "rel_workers.py"


def scale(default: int, soak: int) -> int:
    return soak if SOAK else default


def start_sandbox_for_test(**options: object) -> SandboxServer:
    """A sandbox whose CA lives in the test's config dir (so tdgui clients pin it)."""
    return SandboxServer(sandbox_state_dir(config_dir()), **options).start()  # type: ignore[arg-type]


def ca_file() -> Path:
    return config_dir() / "sandbox" / "ca.pem"


def worker_cmd(role: str, *args: str) -> list[str]:
    return [sys.executable, str(WORKERS), role, *args]


def digest(store: TokenStore, key: str) -> str:
    """SHA-256 of the stored record's bytes (a missing record hashes as the empty string)."""
    value = store.read(key)
    return hashlib.sha256((value or "").encode("utf-8")).hexdigest()


def make_due(service: TokenService, name: str, seconds_left: float = 30.0) -> None:
    """Rewrite the stored record so the access token is inside the 5-minute refresh lead."""
    account = service.account(name)
    tokens = service.read_tokens(account)
    assert tokens is not None
    due = dataclasses.replace(tokens, access_expires_at=service.clock.now() + seconds_left)
    service.store(account).write(f"{name}/tokens", due.to_json())


def secret_windows(secrets: Iterable[str], *, public: Sequence[str] = (), width: int = 8) -> set[str]:
    """Every `width`-character piece of every secret, raw and URL-encoded.

    A piece that also occurs in a public string (a client id, a host name) is dropped: the
    sandbox's demo client secret starts with the same 8 letters as its demo client id.
    """
    pieces: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe="")}:
            for i in range(len(form) - width + 1):
                pieces.add(form[i : i + width])
    return {p for p in pieces if not any(p in text for text in public)}


def find_leaks(text: str, windows: set[str], width: int = 8) -> list[str]:
    """The secret pieces that occur in `text` (a set lookup per position: fast on big logs)."""
    found = []
    for i in range(len(text) - width + 1):
        piece = text[i : i + width]
        if piece in windows:
            found.append(piece)
    return found


def wait_for(predicate: object, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


def run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd, check=False
    )

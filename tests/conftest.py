"""Shared fixtures: an isolated config dir per test, Qt offscreen, the sandbox on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.keyring_session import private_keyring  # noqa: F401 - for tests that kill keyring clients
from helpers.postgres import postgres_server  # noqa: F401 - the session's private PostgreSQL

# Tests run headless and (in CI) as root: Chromium refuses to start as root with its sandbox.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
os.environ.setdefault("TD_HTTP_BACKOFF", "0.05")


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own TD_CONFIG_DIR, so no test sees another's accounts or tokens."""
    config = tmp_path / "config"
    monkeypatch.setenv("TD_CONFIG_DIR", str(config))
    monkeypatch.setenv("TD_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("TD_STORE_TOKENS", raising=False)
    monkeypatch.delenv("TD_SANDBOX_URL", raising=False)
    # The process-wide "memory" store must not carry records from one test into the next.
    import tdgui.core.stores

    monkeypatch.setattr(tdgui.core.stores, "_shared_memory", None)
    yield config

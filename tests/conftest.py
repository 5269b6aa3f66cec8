"""Shared fixtures: an isolated config dir per test, Qt offscreen, the sandbox on a free port."""

from __future__ import annotations

import os
import subprocess
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


def _keyring_alive() -> bool:
    from keyring.backends.SecretService import Keyring

    try:
        Keyring().get_password("tdgui-test-probe", "probe")
        return True
    except Exception:
        return False


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Keep the test session's Secret Service usable for every keyring test.

    gnome-keyring can die when a client is SIGKILLed inside a call (the crash-safety tests do
    that on purpose); D-Bus then restarts it with the login keyring locked, and every later
    keyring test would fail for that reason alone. Unlock it again, as scripts/with-keyring.sh
    did at the start.
    """
    password = os.environ.get("TDGUI_TEST_KEYRING_PASSWORD")
    if password is None or "keyring" not in item.nodeid.lower() or _keyring_alive():
        return
    subprocess.run(
        ["gnome-keyring-daemon", "--replace", "--unlock", "--components=secrets"],
        input=password,
        text=True,
        capture_output=True,
        timeout=20,
        check=False,
    )

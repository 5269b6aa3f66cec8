"""A private D-Bus session with its own unlocked gnome-keyring, for tests that SIGKILL keyring clients.

Killing a client inside a Secret Service call can take gnome-keyring down with it; in the
suite's shared session every later keyring test would then fail for that reason alone. Tests
that kill on purpose get a daemon of their own, and whatever happens to it ends with them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSWORD = "private-session"


def _processes_of(marker: str) -> list[int]:
    """PIDs whose environment names `marker` (the daemons this session started)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.fixture
def private_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This test's own session bus + unlocked gnome-keyring; returns the environment to use.

    Off Linux (the Windows/macOS CI jobs) there is no Secret Service to isolate: the
    platform's own keyring (Credential Manager, Keychain) is used as it is."""
    if not sys.platform.startswith("linux"):
        yield dict(os.environ)
        return
    scratch = tempfile.mkdtemp(prefix="tdgui-private-keyring-")
    env = dict(os.environ)
    env.update(
        HOME=f"{scratch}/home",
        XDG_DATA_HOME=f"{scratch}/data",
        XDG_CONFIG_HOME=f"{scratch}/config",
        XDG_CACHE_HOME=f"{scratch}/cache",
        XDG_RUNTIME_DIR=f"{scratch}/run",
        TDGUI_PRIVATE_KEYRING=scratch,  # the marker the teardown finds its daemons by
    )
    for key in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        os.makedirs(env[key], mode=0o700, exist_ok=True)
    bus = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--print-address=1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
        check=True,
    )
    env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.strip().splitlines()[0]
    subprocess.run(
        ["gnome-keyring-daemon", "--unlock", "--components=secrets"],
        input=PASSWORD,
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
        check=True,
    )
    for key in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "XDG_DATA_HOME", "TDGUI_PRIVATE_KEYRING"):
        monkeypatch.setenv(key, env[key])
    try:
        yield env
    finally:
        for pid in _processes_of(f"TDGUI_PRIVATE_KEYRING={scratch}"):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(scratch, ignore_errors=True)

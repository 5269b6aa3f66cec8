"""The private keyring session the SIGKILL tests use is really separate from the suite's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import keyring, sys; print(keyring.get_password('tdgui-private-probe', 'p'))"


def test_private_session_is_separate(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    suite_bus = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    assert suite_bus, "run under scripts/with-keyring.sh"
    env = request.getfixturevalue("private_keyring")
    assert env["DBUS_SESSION_BUS_ADDRESS"] != suite_bus
    import keyring

    keyring.set_password("tdgui-private-probe", "p", "only-here")
    inside = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    outside_env = {**env, "DBUS_SESSION_BUS_ADDRESS": suite_bus}
    outside = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=outside_env, check=True
    )
    assert inside.stdout.strip() == "only-here"
    assert outside.stdout.strip() == "None"

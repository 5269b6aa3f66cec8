"""Row 35 (issue 11 #16): another local user can neither block the app nor command it.

1. A squatter running as uid 65534 listens (socket mode 0777) at the path the app's
   single-instance socket had in /tmp, and at the path it uses now (root can put one even in
   the user's 0700 runtime dir). Must hold: the real app (`run_gui` in its own process)
   starts anyway, tells the squatter nothing, and a second launch of the same user still
   reaches it ("already running", exit 0).
2. With the socket made reachable for everyone on purpose, a uid-65534 process connecting
   and sending "activate" is ignored (SO_PEERCRED), while the same message from the user's
   own process still shows the window.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from rel_support import wait_for

OTHER = 65534
#: Binds as root (so it can reach any path), then becomes uid 65534 before listen():
#: SO_PEERCRED reports the credentials of the process at listen() time.
SQUATTER = r"""
import os, socket, sys
paths, log = sys.argv[1:-1], sys.argv[-1]
servers = []
heard = open(log, "ab", buffering=0)  # opened before giving up root: the log is in root's tmp
for path in paths:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)
    os.chown(path, 65534, 65534)
    servers.append(s)
os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
for s in servers:
    s.listen(8)
    s.setblocking(False)
print("ready", flush=True)
import select, time
end = time.time() + 60
while time.time() < end:
    ready, _, _ = select.select(servers, [], [], 0.2)
    for s in ready:
        conn, _ = s.accept()
        conn.settimeout(1.0)
        try:
            data = conn.recv(100)
        except OSError:
            data = b""
        heard.write(b"connection " + data + b"\n")
        conn.close()
"""


def socket_paths(config: Path) -> list[str]:
    """Where the app's socket was (/tmp/tdgui-<digest>) and where it is now."""
    from tdgui.qt.single_instance import instance_key

    key = instance_key(config)
    old_name = "tdgui-" + key.rsplit("-", 1)[-1] if os.path.isabs(key) else key
    paths = [str(Path(tempfile.gettempdir()) / old_name)]
    if os.path.isabs(key):
        paths.append(key)
    return paths


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private XDG_RUNTIME_DIR with a short path (sun_path holds ~100 bytes)."""
    run = Path(tempfile.mkdtemp(prefix="r35-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    yield run
    shutil.rmtree(run, ignore_errors=True)


def test_squatter_neither_blocks_nor_hears(
    qtbot: QtBot, isolated_config: Path, runtime_dir: Path, tmp_path: Path, figure
) -> None:
    paths = socket_paths(isolated_config)
    heard = tmp_path / "squatter.log"
    squatter = subprocess.Popen(
        [sys.executable, "-c", SQUATTER, *paths, str(heard)], stdout=subprocess.PIPE, text=True
    )
    code = "from tdgui.cli import main; raise SystemExit(main(['--minimized']))"
    first = None
    try:
        assert squatter.stdout is not None and squatter.stdout.readline().strip() == "ready"
        first = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # Give it the time a start takes; a blocked app exits at once saying "already running".
        started = wait_for(lambda: first.poll() is not None, timeout=8)
        assert not started, f"the app did not start: {first.communicate()}"
        second = None
        for _ in range(20):  # the first may still be setting up its server
            second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
            if "already running" in second.stdout:
                break
            time.sleep(0.5)
        assert second is not None and second.returncode == 0 and "already running" in second.stdout, second
        assert first.poll() is None
    finally:
        if first is not None:
            first.terminate()
            first.communicate(timeout=30)
        squatter.kill()
        squatter.communicate()
    told = heard.read_bytes() if heard.exists() else b""
    assert b"activate" not in told, "the app sent 'activate' to another user's socket"
    assert told.count(b"connection") >= 1, "the app never met the squatter (test setup)"
    figure(
        f"row 35: a uid-{OTHER} squatter at {len(paths)} socket paths (old /tmp name and the "
        f"runtime dir): the app started anyway, the squatter heard {told.count(b'connection')} "
        "connection(s) and no 'activate'; a second launch of the user reached the app"
    )


def test_activate_from_another_user_is_ignored(qtbot: QtBot, figure) -> None:
    from tdgui.qt.single_instance import SingleInstance

    runtime = Path(tempfile.mkdtemp(prefix="tdgui-r35-"))
    try:
        path = runtime / "instance-test"
        guard = SingleInstance(str(path))
        assert guard.listen()
        # Open it up on purpose, so only the peer check stands between the other user and us.
        os.chmod(runtime, 0o711)
        os.chmod(path, 0o777)
        # Connect, then send; the server may already have hung up on a foreign peer.
        send = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.connect(sys.argv[1])\n"
            "print('connected', flush=True)\n"
            "try:\n    s.sendall(b'activate\\n')\nexcept OSError:\n    pass\n"
        )

        def sender(*setpriv: str) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [*setpriv, "/usr/bin/python3", "-I", "-c", send, str(path)], stdout=subprocess.PIPE, text=True
            )

        activations: list[int] = []
        guard.activated.connect(lambda: activations.append(1))
        other = sender("setpriv", f"--reuid={OTHER}", f"--regid={OTHER}", "--clear-groups")
        qtbot.waitUntil(lambda: other.poll() is not None, timeout=20_000)
        assert other.communicate()[0].strip() == "connected", "the other user could not connect (test setup)"
        qtbot.wait(1500)
        assert activations == [], "a connection from another uid activated the window"
        with qtbot.waitSignal(guard.activated, timeout=10_000):
            own = sender()
        own.wait(20)
        guard.close()
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    figure(f"row 35: 'activate' from uid {OTHER} ignored (SO_PEERCRED); from the user's own process obeyed")

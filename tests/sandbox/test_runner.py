"""Running a sandbox: ports, restart, `serve_forever` and its signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tdgui.core.errors import UsageError
from tdgui.sandbox import (
    CONTROL_HEADER,
    SandboxServer,
    control_secret_file,
    ensure_sandbox_certs,
    read_control_secret,
)

from .support import (
    get,
    schwab_refresh,
    schwab_tokens,
    subprocess_env,
)

# --------------------------------------------------------------------------- lifecycle


def test_port_in_use_is_a_usage_error(server: SandboxServer, shared_dir: Path) -> None:
    with pytest.raises(UsageError, match=f"port {server.port} is in use"):
        SandboxServer(shared_dir, port=server.port).start()


def test_restart_keeps_port_and_grants(server: SandboxServer) -> None:
    tokens = schwab_tokens(server)
    port = server.port
    server.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        get(server, "/")
    server.start()
    assert server.port == port
    assert schwab_refresh(server, tokens["refresh_token"]).status_code == 200


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_forever_prints_url_and_stops_on_signal(state_dir: Path, signum: int) -> None:
    code = (
        "import sys; from pathlib import Path; from tdgui.sandbox import serve_forever;"
        "serve_forever(Path(sys.argv[1]), 0, 'tdameritrade', 60, None, True)"
    )
    env = subprocess_env()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base_url = line.strip()
        port = urlsplit(base_url).port
        assert port and line == f"https://127.0.0.1:{port}\n"  # the OS chose a free port
        ca = ensure_sandbox_certs(state_dir).ca_file
        headers = {CONTROL_HEADER: read_control_secret(state_dir, port)}
        stats = requests.get(base_url + "/_sandbox/stats", headers=headers, verify=ca, timeout=5)
        assert json.loads(stats.text)["token_requests"] == 0
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert not control_secret_file(state_dir, port).exists()
        assert out == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

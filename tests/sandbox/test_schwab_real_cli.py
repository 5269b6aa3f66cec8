"""`tdgui sandbox --schwab-real`: the multi-host Schwab emulator started by hand, as a real subprocess."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tdgui.core import providers

REPO = Path(__file__).resolve().parents[2]


def _get(port: int, ca: str, host: str, path: str) -> str:
    """One HTTPS GET to 127.0.0.1:`port` for `host` (SNI, Host header, certificate checked for it)."""
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while chunk := tls.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_schwab_real_starts_prints_its_url_answers_and_stops(isolated_config: Path, sig: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tdgui", "sandbox", "--schwab-real"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        match = re.fullmatch(r"https://127\.0\.0\.1:(\d+)", url)
        assert match, url
        port = int(match.group(1))
        ca = next(isolated_config.rglob("schwab-real/**/ca.pem"), None) or next(
            isolated_config.rglob("schwab-real/*.pem")
        )
        query = (
            f"?response_type=code&client_id={providers.SANDBOX_SCHWAB_CLIENT_ID}"
            f"&redirect_uri={providers.SANDBOX_CALLBACK_URL}&state=s1"
        )
        answer = _get(port, str(ca), "api.schwabapi.com", "/v1/oauth/authorize" + query)
        status = answer.split("\r\n", 1)[0]
        assert status.split()[1] in ("200", "302", "303"), status  # the hand-over to the login app
        assert "sws-gateway.schwab.com" in answer
        other = _get(port, str(ca), "sws-gateway.schwab.com", "/ui/host/")
        assert other.split()[1] == "200"
        proc.send_signal(sig)
        proc.wait(timeout=10)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        assert proc.stderr is not None
        help_text = proc.stderr.read()
        assert f"MAP api.schwabapi.com 127.0.0.1:{port}" in help_text
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

"""Row 15: the --browser loopback listener (tdgui.core.loopback.LoopbackListener).

Must hold: it binds 127.0.0.1 only (other local addresses are refused); a port in use is
reported as a UsageError; it answers one request and then is closed (the next connection is
refused); it gives up after its timeout (DEFAULT_TIMEOUT = 300 s, the CLI's default too) with
LoginFailed, also when a connection opens and never speaks.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from rel_support import config_dir
from tdgui.cli.parser import build_parser
from tdgui.core import loopback
from tdgui.core.errors import LoginFailed, UsageError
from tdgui.core.loopback import LoopbackListener
from tdgui.sandbox import ensure_sandbox_certs, sandbox_state_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def other_local_addresses() -> list[str]:
    """Addresses of this machine other than 127.0.0.1 (127.0.0.2 is local on Linux)."""
    found = {"127.0.0.2"}
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: picks the outbound address
            found.add(probe.getsockname()[0])
    except OSError:
        pass
    found.discard("127.0.0.1")
    found.discard("0.0.0.0")
    return sorted(found)


def refused(host: str, port: int, family: int = socket.AF_INET) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect((host, port))
        except (ConnectionRefusedError, OSError):
            return True
        return False


class Waiter:
    """listener.wait() in a thread: its result or error, and how long it took."""

    def __init__(self, listener: LoopbackListener, timeout: float) -> None:
        self.result: str | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._run, args=(listener, timeout), daemon=True)
        self.thread.start()

    def _run(self, listener: LoopbackListener, timeout: float) -> None:
        started = time.monotonic()
        try:
            self.result = listener.wait(timeout)
        except BaseException as exc:
            self.error = exc
        self.seconds = time.monotonic() - started

    def join(self, limit: float) -> None:
        self.thread.join(limit)
        assert not self.thread.is_alive(), f"wait() still running after {limit} s"


@pytest.fixture
def port() -> int:
    return free_port()


def test_binds_loopback_only_and_closes_after_one_request(port: int, figure) -> None:
    for callback in (f"http://127.0.0.1:{port}/", f"http://localhost:{port}/"):
        listener = LoopbackListener(callback)
        assert listener.server.socket.getsockname()[0] == "127.0.0.1"
        others = other_local_addresses()
        assert all(refused(host, port) for host in others), others
        if socket.has_ipv6:
            assert refused("::1", port, socket.AF_INET6)
        waiter = Waiter(listener, 10)
        answer = requests.get(f"http://127.0.0.1:{port}/?code=C0.x%40&state=S", timeout=5)
        waiter.join(10)
        assert answer.status_code == 200 and "tdgui received the login" in answer.text
        host = "localhost" if "localhost" in callback else "127.0.0.1"
        assert waiter.result == f"http://{host}:{port}/?code=C0.x%40&state=S"
        assert refused("127.0.0.1", port), "the listener still accepts after its one request"
    figure(
        f"row 15: bound to 127.0.0.1 only (refused on {', '.join(other_local_addresses())}, ::1); "
        "one request answered, then the port refuses connections"
    )


@pytest.mark.parametrize("occupier", ["127.0.0.1", "0.0.0.0"])
def test_port_in_use_is_a_usage_error(port: int, occupier: str, figure) -> None:
    with socket.socket() as other:
        other.bind((occupier, port))
        other.listen(1)
        with pytest.raises(UsageError, match=rf"port {port} of the callback URL is in use"):
            LoopbackListener(f"http://127.0.0.1:{port}/")
    figure(f"row 15 (port held on {occupier}): UsageError 'port {port} of the callback URL is in use ...'")


def test_timeout_default_and_short(port: int, figure) -> None:
    assert loopback.DEFAULT_TIMEOUT == 300
    login = next(
        a
        for a in build_parser()._subparsers._group_actions[0].choices["login"]._actions  # type: ignore[union-attr]
        if a.dest == "timeout"
    )
    assert login.default == 300
    listener = LoopbackListener(f"http://127.0.0.1:{port}/")
    waiter = Waiter(listener, 0.5)
    waiter.join(5)
    assert isinstance(waiter.error, LoginFailed), waiter.error
    assert "within 0.5 s" in str(waiter.error)
    assert refused("127.0.0.1", port)
    figure(
        f"row 15 (timeout): default 300 s (API and CLI); a 0.5 s wait raised LoginFailed "
        f"after {waiter.seconds:.2f} s"
    )


@pytest.mark.parametrize("tls", [False, True])
def test_a_silent_connection_does_not_block_the_login(
    port: int, tls: bool, figure, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A browser preconnect (or any local program) that opens a connection and says nothing must
    neither swallow the real redirect nor stop the timeout."""
    monkeypatch.setattr(loopback, "CONNECTION_TIMEOUT", 1.0)  # 5 s in the product; quicker here
    scheme = "https" if tls else "http"
    certs = ensure_sandbox_certs(sandbox_state_dir(config_dir())) if tls else None
    kwargs = {"cert_file": str(certs.cert_file), "key_file": str(certs.key_file)} if certs else {}
    # 1. Silent first, then the real redirect: the redirect still arrives.
    listener = LoopbackListener(f"{scheme}://127.0.0.1:{port}/", **kwargs)
    silent = socket.create_connection(("127.0.0.1", port))
    try:
        waiter = Waiter(listener, 30)
        time.sleep(0.2)
        verify: str | bool = str(certs.ca_file) if certs else False
        answer = requests.get(f"{scheme}://127.0.0.1:{port}/?code=abc&state=S", timeout=20, verify=verify)
        waiter.join(30)
    finally:
        silent.close()
    assert answer.status_code == 200
    assert waiter.result == f"{scheme}://127.0.0.1:{port}/?code=abc&state=S"
    late = waiter.seconds
    # 2. Silent only: the timeout still ends the wait.
    listener = LoopbackListener(f"{scheme}://127.0.0.1:{port}/", **kwargs)
    silent = socket.create_connection(("127.0.0.1", port))
    try:
        waiter = Waiter(listener, 1.0)
        waiter.join(15)
    finally:
        silent.close()
    assert isinstance(waiter.error, LoginFailed), waiter.error
    figure(
        f"row 15 (silent connection, {scheme}): real redirect still received after {late:.1f} s "
        f"(per-connection limit {loopback.CONNECTION_TIMEOUT:g} s in this test, 5 s in the product); "
        f"a 1 s timeout still ended the wait after {waiter.seconds:.1f} s"
    )


def test_tls_listener_ignores_plain_and_broken_handshakes(port: int, figure) -> None:
    certs = ensure_sandbox_certs(sandbox_state_dir(config_dir()))
    listener = LoopbackListener(
        f"https://127.0.0.1:{port}/", cert_file=str(certs.cert_file), key_file=str(certs.key_file)
    )
    waiter = Waiter(listener, 20)
    # A plain-HTTP request and an aborted TLS handshake are not the redirect.
    with socket.create_connection(("127.0.0.1", port)) as plain:
        plain.sendall(b"GET /?code=evil&state=S HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert b"received the login" not in plain.recv(100)
        except OSError:
            pass  # reset by the listener: fine
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x05hello")  # a truncated ClientHello
    answer = requests.get(
        f"https://127.0.0.1:{port}/?code=good&state=S", timeout=10, verify=str(certs.ca_file)
    )
    waiter.join(20)
    assert answer.status_code == 200
    assert waiter.result == f"https://127.0.0.1:{port}/?code=good&state=S"
    figure("row 15 (https): plain-HTTP request and broken TLS handshake ignored; the TLS redirect received")


def test_cancel(port: int) -> None:
    listener = LoopbackListener(f"http://127.0.0.1:{port}/")
    cancel = threading.Event()
    thread_error: list[BaseException] = []

    def run() -> None:
        try:
            listener.wait(60, cancel)
        except BaseException as exc:
            thread_error.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    cancel.set()
    thread.join(5)
    assert not thread.is_alive() and isinstance(thread_error[0], LoginFailed)
    assert refused("127.0.0.1", port)

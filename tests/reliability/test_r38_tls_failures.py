"""Row 38: a TLS handshake cut short is a network failure; only a failed certificate check is one.

A CI run failed on "TLS certificate check failed for 127.0.0.1: SSLError" against a sandbox
whose certificate was fine: requests raises SSLError for every TLS failure, so a handshake the
other side closed (EOF under load, a proxy dropping the connection) was reported as a certificate
problem and never retried. Must hold: connections closed during the handshake are retried (the
refresh then succeeds) or end in a transient error that says the handshake broke off and keeps
the stored tokens; a certificate tdgui does not trust is refused at once, naming OpenSSL's
reason, with 0 requests reaching the server.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.hostile_provider import HostileProvider, add_account, seed_tokens, start_for_config, stored_bytes
from tdgui.core.config import Config
from tdgui.core.errors import ProviderError
from tdgui.core.schedule import AccountState
from tdgui.core.service import TokenService


class HandshakeCutter:
    """A TCP front for `target` that closes the first `cut` connections once the ClientHello is in.

    How it closes decides what the client sees, so each way is tested on its own instead of
    leaving it to timing (a CI run saw the reset where the test expected EOF): "eof" reads the
    ClientHello, then closes (a FIN: SSLEOFError); "reset" closes with the ClientHello unread,
    which makes the kernel answer with a RST (ConnectionResetError).
    """

    def __init__(self, target_port: int, cut: int, how: str = "eof") -> None:
        self.target_port = target_port
        self.cut = cut
        self.how = how
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted <= self.cut:
                self._cut(client)
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _cut(self, client: socket.socket) -> None:
        with client:
            client.settimeout(5)
            if self.how == "eof":
                client.recv(65536)
            else:
                select.select([client], [], [], 5)  # the ClientHello arrived, and stays unread

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.listener.close()


@pytest.fixture
def provider(isolated_config: Path) -> Iterator[HostileProvider]:
    server = start_for_config(isolated_config)
    try:
        yield server
    finally:
        server.stop()


def _account_behind(provider: HostileProvider, cutter: HandshakeCutter) -> TokenService:
    provider.base_url = f"https://127.0.0.1:{cutter.port}"
    add_account(provider, store="file")
    service = TokenService(Config())
    seed_tokens(service, provider)
    return service


def test_handshake_cut_short_is_retried(provider: HostileProvider, figure) -> None:
    cutter = HandshakeCutter(provider.port, cut=1)
    try:
        service = _account_behind(provider, cutter)
        tokens = service.refresh("acct", force=True)
    finally:
        cutter.stop()
    assert tokens.access_token
    assert provider.token_requests() == 1
    assert cutter.accepted == 2, "the cut handshake was not retried"
    figure("row 38 (cut once): handshake closed by the other side, retried: 2 connections, 1 refresh, ok")


@pytest.mark.parametrize("how", ["eof", "reset"])
def test_handshakes_always_cut_are_a_network_error(provider: HostileProvider, figure, how: str) -> None:
    cutter = HandshakeCutter(provider.port, cut=100, how=how)
    try:
        service = _account_behind(provider, cutter)
        before = stored_bytes(service)
        with pytest.raises(ProviderError) as caught:
            service.refresh("acct", force=True)
    finally:
        cutter.stop()
    message = str(caught.value)
    assert "handshake with 127.0.0.1 broke off" in message, message
    assert "certificate" not in message, message
    assert caught.value.transient
    assert provider.token_requests() == 0
    assert stored_bytes(service) == before
    assert service.status("acct").state is not AccountState.LOGIN_REQUIRED
    figure(
        f"row 38 (always cut, {how}): {cutter.accepted} connections cut, transient error "
        "'TLS handshake … broke off', tokens unchanged, no login required"
    )


def test_untrusted_certificate_is_refused_with_its_reason(
    provider: HostileProvider, tmp_path: Path, figure
) -> None:
    stranger = HostileProvider(tmp_path / "stranger")  # its own CA, not the one tdgui pins
    try:
        add_account(stranger, store="file")
        service = TokenService(Config())
        seed_tokens(service, stranger)
        with pytest.raises(ProviderError) as caught:
            service.refresh("acct", force=True)
    finally:
        stranger.stop()
    message = str(caught.value)
    assert message.startswith("TLS certificate check failed for 127.0.0.1: "), message
    assert "issuer certificate" in message, message
    assert not caught.value.transient
    assert stranger.token_requests() == 0
    figure(f"row 38 (untrusted CA): refused at once, 0 requests: {message!r}")

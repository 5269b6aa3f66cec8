"""A small, real HTTPS token endpoint on 127.0.0.1 that answers however a test tells it to.

It plays the provider a hostile or broken broker would be: arbitrary status, headers and
bodies, drips, gzip bombs, redirects, connections dropped after the request was read, and
by default a well-behaved *rotating* token endpoint (every refresh answers a new refresh
token, a reused one gets invalid_grant, as RFC 9700 §4.14.2 recommends). Its own CA and leaf
certificate are made with `cryptography`; clients pin `ca_path`.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tdgui.core.config import Account, Config, sandbox_account
from tdgui.core.service import TokenService
from tdgui.core.tokens import TokenSet


@dataclass
class Answer:
    """One scripted answer. `body` may be bytes, str or a JSON-able object."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds between single bytes of the whole answer (status line and headers included).
    drip: float | None = None
    #: Send a gzip body that decodes to this many zero bytes (written as it is compressed).
    gzip_bomb: int | None = None
    #: Read the request, act on it (a refresh rotates), then close without answering.
    drop: bool = False
    #: Seconds to wait after reading the request, before answering.
    delay: float = 0.0
    #: False: no Content-Length, the body ends when the connection closes.
    length: bool = True


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    form: dict[str, str]


def _certs(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a leaf for 127.0.0.1 signed by it (ca.pem, leaf.pem, leaf.key)."""
    now = _dt.datetime.now(_dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hostile test CA {secrets.token_hex(4)}")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(ca_ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = (directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


class HostileProvider:
    """`answers` is consumed in order; when empty, the rotating default endpoint answers."""

    def __init__(self, cert_dir: Path, *, listen: bool = True, tls: bool = True) -> None:
        self.ca_path, leaf, key = _certs(cert_dir)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(leaf, key)
        self.answers: list[Answer | Callable[[Seen], Answer]] = []
        self.seen: list[Seen] = []
        #: The refresh token the rotating default endpoint accepts next.
        self.live_refresh: str | None = None
        self.issued: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(), bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.allow_reuse_address = True
        self.server.server_bind()
        self.port = self.server.server_address[1]
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.token_url = self.base_url + "/token"
        self._thread: threading.Thread | None = None
        if tls:
            self._wrap()
        if listen:
            self.listen()

    # -- control ---------------------------------------------------------------------
    def listen(self) -> None:
        """Start accepting (until then the bound port refuses connections)."""
        self.server.server_activate()
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()

    def script(self, *answers: Answer | Callable[[Seen], Answer]) -> None:
        with self.lock:
            self.answers.extend(answers)

    def token_requests(self) -> int:
        return len(self.seen)

    def grant(self, refresh_token: str | None = None) -> str:
        """Start a grant the default endpoint honours; returns its refresh token."""
        self.live_refresh = refresh_token or "R" + secrets.token_urlsafe(24)
        return self.live_refresh

    def rotate(self, form: dict[str, str], **extra: Any) -> dict[str, Any]:
        """The rotating endpoint's good answer (also used by scripted answers with extras)."""
        body: dict[str, Any] = {
            "access_token": "A" + secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 1800,
        }
        if form.get("grant_type") == "refresh_token" or form.get("grant_type") == "authorization_code":
            self.live_refresh = "R" + secrets.token_urlsafe(24)
            body["refresh_token"] = self.live_refresh
        body.update(extra)
        self.issued.append(body)
        return body

    # -- serving ---------------------------------------------------------------------
    def _default(self, seen: Seen) -> Answer:
        if (
            seen.form.get("grant_type") == "refresh_token"
            and seen.form.get("refresh_token") != self.live_refresh
        ):
            # Reuse of a rotated-out token: RFC 9700 §4.14.2 says revoke the whole grant.
            self.live_refresh = None
            return Answer(400, {"error": "invalid_grant", "error_description": "refresh token reused"})
        return Answer(200, self.rotate(seen.form))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                seen = Seen(self.path, dict(self.headers.items()), dict(parse_qsl(raw)))
                with provider.lock:
                    provider.seen.append(seen)
                    scripted = provider.answers.pop(0) if provider.answers else None
                answer = scripted(seen) if callable(scripted) else scripted
                if answer is None:
                    answer = provider._default(seen)
                elif answer.drop and seen.form.get("grant_type") == "refresh_token":
                    provider.rotate(seen.form)  # processed (rotated), then the answer is lost
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send(answer)

            def _send(self, answer: Answer) -> None:
                headers = dict(answer.headers)
                if answer.gzip_bomb is not None:
                    headers.setdefault("Content-Type", "application/json")
                    headers["Content-Encoding"] = "gzip"
                    head = self._head(answer.status, {**headers, "Transfer-Encoding": "chunked"})
                    self.wfile.write(head)
                    self._bomb(answer.gzip_bomb)
                    return
                body = answer.body
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                    headers.setdefault("Content-Type", "application/json")
                elif isinstance(body, str):
                    body = body.encode()
                body = body or b""
                if headers.get("Content-Encoding") == "gzip":
                    body = gzip.compress(body)
                if answer.length:
                    headers.setdefault("Content-Length", str(len(body)))
                else:
                    headers["Connection"] = "close"
                    self.close_connection = True
                head = self._head(answer.status, headers)
                try:
                    if answer.drip is None:
                        # Two writes, no concatenation: a 13 MB body is not copied here, so
                        # a test's memory figures are the client's.
                        self.wfile.write(head)
                        self.wfile.write(body)
                        return
                    data = head + body
                    for i in range(len(data)):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(answer.drip)
                except OSError:
                    self.close_connection = True  # the client gave up: that is the point

            def _head(self, status: int, headers: dict[str, str]) -> bytes:
                lines = [f"HTTP/1.1 {status} Scripted", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
                return "\r\n".join(lines).encode("latin-1")

            def _bomb(self, size: int) -> None:
                """Chunked gzip of `size` zero bytes, compressed on the fly (never all in memory)."""
                compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
                zeros = bytes(1 << 20)
                left = size
                try:
                    while left > 0:
                        piece = compressor.compress(zeros[: min(left, len(zeros))])
                        left -= min(left, len(zeros))
                        if piece:
                            self._chunk(piece)
                    self._chunk(compressor.flush())
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    self.close_connection = True

            def _chunk(self, data: bytes) -> None:
                if data:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        return Handler

    def _wrap(self) -> None:
        context = self.context
        original = self.server.get_request

        def get_request() -> tuple[socket.socket, Any]:
            sock, address = original()
            # The handshake happens in the handler's thread, not the accept loop.
            return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

        self.server.get_request = get_request  # type: ignore[method-assign]


# -- tdgui accounts on a hostile provider -----------------------------------------------------
def start_for_config(config_dir: Path, *, listen: bool = True) -> HostileProvider:
    """A hostile provider whose CA sits where tdgui's sandbox-provider accounts pin it
    (TD_CONFIG_DIR/sandbox/ca.pem), so real `tdgui` processes trust it and nothing else."""
    return HostileProvider(config_dir / "sandbox", listen=listen)


def add_account(
    provider: HostileProvider, name: str = "acct", store: str = "file", flavor: str = "schwab"
) -> Account:
    """A sandbox account (Schwab or TD Ameritrade quirks) whose token endpoint is the hostile provider."""
    base = sandbox_account(name, flavor, provider.base_url)
    account = Account(**{**base.to_dict(), "store": store, "scopes": (), "exports": ()})
    Config().add_account(account)
    return account


def seed_tokens(
    service: TokenService,
    provider: HostileProvider,
    name: str = "acct",
    *,
    rotated: bool = False,
    access_left: float = 60.0,
) -> TokenSet:
    """Store a grant the provider honours, with an access token inside the refresh lead."""
    now = service.clock.now()
    tokens = TokenSet(
        access_token="A" + secrets.token_urlsafe(24),
        access_expires_at=now + access_left,
        refresh_token=provider.grant(),
        refresh_expires_at=now + 6 * 24 * 3600,
        login_at=now - 24 * 3600,
        received_at=now - 1800 + access_left,
        response={"token_type": "Bearer", "expires_in": 1800},
        **({"rotated": True} if rotated else {}),  # type: ignore[arg-type]
    )
    service.store(service.account(name)).write(f"{name}/tokens", tokens.to_json())
    return tokens


def stored_bytes(service: TokenService, name: str = "acct") -> str | None:
    return service.store(service.account(name)).read(f"{name}/tokens")

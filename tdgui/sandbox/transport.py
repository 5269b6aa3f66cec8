"""The sandbox's HTTPS transport: a threading TLS server and the request handler endpoints write to."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import socketserver
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast

LOG = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
_HANDSHAKE_TIMEOUT = 10.0


class Router(Protocol):
    """What answers the requests (tdgui.sandbox.authserver.AuthServer)."""

    def route(self, handler: Handler, method: str) -> None: ...


class RequestError(Exception):
    """A request the transport refuses before any endpoint sees it (status, plain-text reason)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def single_values(raw: dict[str, list[str]]) -> dict[str, str]:
    """RFC 6749 §3.1: a parameter must not be sent twice."""
    repeated = sorted(name for name, values in raw.items() if len(values) > 1)
    if repeated:
        raise RequestError(400, f"parameter sent more than once: {', '.join(repeated)}")
    return {name: values[0] for name, values in raw.items()}


class HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer doing the TLS handshake in the request thread, not the accept loop."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = sys.platform != "win32"
    #: socketserver's default backlog of 5 drops the 6th simultaneous connect (1 s SYN retry).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Router, context: ssl.SSLContext) -> None:
        self.app = app
        self.ssl_context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), which can hang on a reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        sock = cast(socket.socket, request)
        sock.settimeout(_HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(sock, server_side=True)
        except (OSError, ValueError) as exc:
            LOG.debug("TLS handshake failed: %s", type(exc).__name__)
            return
        with self.connections_lock:
            self.connections.add(tls)
        try:
            Handler(tls, client_address, self)
        finally:
            with self.connections_lock:
                self.connections.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)):
            LOG.debug("connection ended: %s", type(exc).__name__)
        else:
            LOG.exception("sandbox request failed")

    def close_connections(self) -> None:
        with self.connections_lock:
            open_ = list(self.connections)
        for conn in open_:
            with contextlib.suppress(OSError):
                # Plain socket shutdown: wakes a thread blocked reading, leaves the TLS object be.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tdgui-sandbox/1"
    sys_version = ""
    timeout = 60
    #: Headers and body go out as separate writes: without this each answer waits ~40 ms.
    disable_nagle_algorithm = True

    @property
    def app(self) -> Router:
        return cast(HTTPServer, self.server).app

    def log_message(self, format: str, *args: Any) -> None:
        """The stdlib logs the request line (with its query): never do that."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            self.app.route(self, method)
        except RequestError as exc:
            self.send_text(exc.status, str(exc))

    # ----------------------------------------------------------------- helpers

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestError(411, "send the body with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            self.close_connection = True
            raise RequestError(400, "bad Content-Length") from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise RequestError(413, "request body too large")
        return self.rfile.read(length) if length else b""

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_text(self, status: int, text: str) -> None:
        self.send(status, (text + "\n").encode(), "text/plain; charset=utf-8")

    def send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(data).encode(), "application/json", headers)

    def send_html(self, status: int, body: bytes) -> None:
        self.send(status, body, "text/html; charset=utf-8", {"X-Frame-Options": "DENY"})

    def send_redirect(self, location: str) -> None:
        self.send(302, b"", "text/plain; charset=utf-8", {"Location": location})

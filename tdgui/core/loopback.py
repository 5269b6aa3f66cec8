"""System-browser login (RFC 8252 §7.3): a one-shot listener on the loopback callback port.

The browser is started at a one-time start URL on the listener (`/tdgui-login/<random id>`),
which answers a 302 to the real authorization URL once: a browser's command line is readable
by every local user (/proc/PID/cmdline), and the authorization URL carries the login's
`state`, which is all that binds a login without PKCE (Schwab) to this browser (issue 11 #10).
"""

from __future__ import annotations

import errno
import hmac
import http.server
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tdgui.core.errors import LoginFailed, UsageError
from tdgui.core.flow import PendingLogin, matches_callback

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0

_DONE_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>tdgui</title></head>
<body style="font-family:sans-serif;margin:3em"><h1>tdgui received the login</h1>
<p>You can close this browser tab and return to tdgui.</p></body></html>"""


_USED_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>tdgui</title></head>
<body style="font-family:sans-serif;margin:3em"><h1>This login link was already used</h1>
<p>Another program may have opened it: tdgui ended the login. Start it again.</p></body></html>"""

#: Where the one-time start URLs live on the listener (never a registered callback path).
START_PREFIX = "/tdgui-login/"


class BrowserStart(str):
    """The one-time start URL given to the browser; `authorize_url` is the real one, for the
    user's own terminal (a copy to paste if no browser opens: the start URL works once)."""

    authorize_url: str

    def __new__(cls, start_url: str, authorize_url: str) -> BrowserStart:
        made = super().__new__(cls, start_url)
        made.authorize_url = authorize_url
        return made


class _OneShotHandler(http.server.BaseHTTPRequestHandler):
    server: _OneShotServer

    def do_GET(self) -> None:
        start = self.server.start
        if start is not None and hmac.compare_digest(self.path.encode(), start[0].encode()):
            self._start(start[1])
            return
        scheme = "https" if self.server.tls else "http"
        # Rebuild the URL as the browser addressed it (the callback's host, e.g. localhost).
        url = f"{scheme}://{self.server.callback_host}:{self.server.server_port}{self.path}"
        accept = self.server.accept
        if accept is not None and not accept(url):
            # A favicon, a prefetch, a stale tab or another local program: not this login's
            # redirect. Answered and ignored; the listener keeps waiting for the real one.
            self.send_error(404, "Not the login this listener waits for")
            return
        self.server.received = url
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(_DONE_PAGE)))
        self.end_headers()
        self.wfile.write(_DONE_PAGE)

    def _start(self, authorize_url: str) -> None:
        """302 to the authorization URL the first time; a second request means another program
        (or the browser after it) also has the link: 404, and the login ends (an attacker who
        won the race holds the `state`, and without PKCE could inject a code with it)."""
        if self.server.start_used:
            self.server.start_reused = True
            self._page(404, _USED_PAGE)
            return
        self.server.start_used = True
        self.send_response(302)
        self.send_header("Location", authorize_url)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _page(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """The request line holds the code: never log it."""


#: How long one connection may take to say what it wants (TLS handshake, request line).
#: Connections are served one at a time: a browser preconnect or another local program that
#: connects and stays silent must not hold up the redirect (or the timeout) for longer.
CONNECTION_TIMEOUT = 5.0


class _OneShotServer(http.server.HTTPServer):
    received: str | None = None
    #: which request ends the wait (None: the first one)
    accept: Callable[[str], bool] | None = None
    tls_context: ssl.SSLContext | None = None
    callback_host = "127.0.0.1"
    deadline = float("inf")
    #: (path, authorization URL) of the one-time start URL, if one was made
    start: tuple[str, str] | None = None
    start_used = False
    start_reused = False

    @property
    def tls(self) -> bool:
        return self.tls_context is not None

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept with a bounded time for the handshake and the request (never the wait's)."""
        sock, address = self.socket.accept()
        sock.settimeout(max(0.05, min(CONNECTION_TIMEOUT, self.deadline - time.monotonic())))
        if self.tls_context is not None:
            try:
                sock = self.tls_context.wrap_socket(sock, server_side=True)
            except BaseException:
                sock.close()
                raise
        return sock, address


class LoopbackListener:
    """Binds 127.0.0.1 only, answers exactly one request, then closes."""

    def __init__(self, callback_url: str, *, cert_file: str | None = None, key_file: str | None = None):
        parts = urlsplit(callback_url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise UsageError(f"the browser login needs a callback URL on 127.0.0.1, not {parts.hostname!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            self.server = _OneShotServer(("127.0.0.1", port), _OneShotHandler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} of the callback URL is in use by another program; "
                    "close it or use `tdgui login NAME --manual`"
                ) from None
            if exc.errno == errno.EACCES:
                raise UsageError(
                    f"port {port} needs administrator rights; use a callback URL with a port "
                    "above 1024, e.g. https://127.0.0.1:8182/"
                ) from None
            raise
        self.server.callback_host = parts.hostname
        if parts.scheme == "https":
            if not (cert_file and key_file):
                raise UsageError("an https callback needs a certificate for 127.0.0.1")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert_file, key_file)
            self.server.tls_context = context  # each connection's handshake: see get_request
        self.port = port
        self.scheme = parts.scheme

    def start_url(self, authorize_url: str) -> BrowserStart:
        """A one-time URL on this listener that redirects to `authorize_url` (once)."""
        path = START_PREFIX + secrets.token_urlsafe(32)
        self.server.start = (path, authorize_url)
        return BrowserStart(f"{self.scheme}://{self.server.callback_host}:{self.port}{path}", authorize_url)

    def wait(
        self,
        timeout: float,
        cancel: threading.Event | None = None,
        accept: Callable[[str], bool] | None = None,
    ) -> str:
        """The URL of the first request `accept` takes (any, without it); LoginFailed after
        `timeout` s or on `cancel`. Requests it refuses get a 404 and are forgotten."""
        deadline = time.monotonic() + timeout
        self.server.deadline = deadline
        self.server.accept = accept
        try:
            while self.server.received is None:
                if cancel is not None and cancel.is_set():
                    raise LoginFailed("the browser login was cancelled")
                if self.server.start_reused:
                    raise LoginFailed(
                        "the login's one-time browser link was opened twice (another program on "
                        "this computer may have used it); the login was ended: start it again"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LoginFailed(
                        f"no redirect reached 127.0.0.1:{self.port} within {timeout:g} s; "
                        "the login was abandoned"
                    )
                self.server.timeout = min(remaining, 1.0)
                try:
                    self.server.handle_request()
                except (TimeoutError, ssl.SSLError, OSError):
                    continue  # a browser's aborted TLS handshake is not the redirect
            return self.server.received
        finally:
            self.close()

    def close(self) -> None:
        self.server.server_close()


def open_system_browser(url: str) -> bool:
    """Open the system browser without blocking the listener; False when none could be started.

    webbrowser runs a console browser from $BROWSER (w3m, lynx, a script) in the foreground and
    waits for it to exit, which would keep the one-shot listener from ever answering the
    redirect; so the browser is started from a daemon thread, and its answer awaited briefly.
    """
    import webbrowser

    started = threading.Event()
    opened: list[bool] = []

    def run() -> None:
        try:
            opened.append(bool(webbrowser.open(url)))
        except Exception as exc:  # a broken $BROWSER must not end the login: the caller shows the URL
            log.warning("could not start the browser: %s", exc)
            opened.append(False)
        finally:
            started.set()

    threading.Thread(target=run, name="tdgui-open-browser", daemon=True).start()
    # A GUI browser answers at once; a console one runs in the foreground thread, so it "opened".
    return opened[0] if started.wait(2.0) and opened else True


def open_browser_telling(url: str, tell: Callable[[str], None]) -> None:
    """The system browser for a login; `tell` gets the URL first, in case no browser opens (the
    CLI and the Python API send it to stderr; core prints nothing itself)."""
    # The terminal is the user's own: it gets the authorization URL itself (a one-time start
    # URL would not work a second time); only the browser's command line gets the start URL.
    shown = url.authorize_url if isinstance(url, BrowserStart) else url
    tell(f"Opening your browser; if it does not open, visit:\n{shown}")
    if not open_system_browser(url):
        tell("tdgui: no browser could be started: open the URL above yourself")


def wait_for_redirect(
    pending: PendingLogin,
    config_dir: Path,
    open_browser: Callable[[str], object],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    cancel: threading.Event | None = None,
) -> str:
    """Listen on the callback's loopback port, open the authorization URL, return the redirect."""
    cert_file = key_file = None
    if urlsplit(pending.redirect_uri).scheme == "https":
        # Browsers will warn about this local certificate once (same trade-off as schwab-py);
        # Schwab insists on an https callback, so there is no plain-http option.
        # Imported here: cryptography is loaded only when a certificate may have to be made.
        from tdgui.core.localtls import ensure_local_tls, local_tls_dir

        tls = ensure_local_tls(local_tls_dir(config_dir))
        cert_file, key_file = str(tls.cert_file), str(tls.key_file)
    listener = LoopbackListener(pending.redirect_uri, cert_file=cert_file, key_file=key_file)
    open_browser(listener.start_url(pending.url))
    return listener.wait(timeout, cancel, accept=lambda url: _is_this_login(pending, url))


def _is_this_login(pending: PendingLogin, url: str) -> bool:
    """The callback of this login: its path, and its own `state` (RFC 6749 §10.12), denial or not."""
    from urllib.parse import parse_qs

    if not matches_callback(url, pending.redirect_uri):
        return False
    states = parse_qs(urlsplit(url).query).get("state", [])
    return len(states) == 1 and hmac.compare_digest(states[0], pending.state)

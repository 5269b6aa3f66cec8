"""Running a sandbox: the in-process server object (tests, the app) and `tdgui sandbox`'s serve_forever."""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from tdgui.core.errors import UsageError
from tdgui.core.providers import (
    ACCESS_LIFETIME,
    SANDBOX_CALLBACK_URL,
    SANDBOX_DEFAULT_PORT,
    SANDBOX_FLAVORS,
    Provider,
    sandbox,
)
from tdgui.sandbox import controls
from tdgui.sandbox.authserver import AuthServer
from tdgui.sandbox.certs import SandboxCerts, ensure_sandbox_certs
from tdgui.sandbox.model import State
from tdgui.sandbox.transport import HTTPServer

LOG = logging.getLogger(__name__)

_ADDR_IN_USE = {errno.EADDRINUSE, 10048}  # 10048: WSAEADDRINUSE
_ADDR_DENIED = {errno.EACCES, 10013}  # 10013: WSAEACCES (Windows reports a taken port so)


class SandboxServer:
    """The local HTTPS emulator of both brokers; start() serves it in a daemon thread."""

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        flavor: str | None = None,
        access_ttl: int = ACCESS_LIFETIME,
        refresh_ttl: int | None = None,
        rotate: bool = False,
        code_ttl: float = 60,
        clock: Callable[[], float] = time.time,
        answer_delay: float = 0.0,
    ) -> None:
        if flavor is not None and flavor not in SANDBOX_FLAVORS:
            raise UsageError(f"sandbox flavor must be one of {', '.join(SANDBOX_FLAVORS)}")
        if access_ttl <= 0:
            raise UsageError("the access token lifetime must be a positive number of seconds")
        if refresh_ttl is not None and refresh_ttl <= 0:
            raise UsageError("the refresh token lifetime must be a positive number of seconds")
        if not 0 <= port <= 65535:
            raise UsageError(f"port must be between 0 and 65535, got {port}")
        self.host = host
        self.flavor = flavor
        self.state_dir = state_dir
        self._port = port
        self._certs = ensure_sandbox_certs(state_dir)
        self._state = State(
            access_ttl=access_ttl,
            refresh_ttl=refresh_ttl,
            rotate=rotate,
            code_ttl=code_ttl,
            clock=clock,
        )
        self._state.faults.set_answer_delay(answer_delay)
        self._stopping = threading.Event()
        #: The control API's secret for this server object (see tdgui.sandbox.controls).
        self._control_secret = controls.new_control_secret()
        self._app = AuthServer(
            self._state, flavor=flavor, control_secret=self._control_secret, stopping=self._stopping
        )
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> SandboxServer:
        """Bind, listen and serve in a daemon thread; returns once connections are accepted."""
        if self._httpd is not None:
            return self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self._certs.cert_file), str(self._certs.key_file))
        context.set_alpn_protocols(["http/1.1"])
        try:
            httpd = HTTPServer((self.host, self._port), self._app, context)
        except OSError as exc:
            if exc.errno in _ADDR_IN_USE or (exc.errno in _ADDR_DENIED and self._port >= 1024):
                raise UsageError(
                    f"port {self._port} is in use (is a sandbox already running?); "
                    "choose another one with --port"
                ) from None
            raise UsageError(f"cannot listen on {self.host}:{self._port}: {exc}") from None
        self._port = int(httpd.server_address[1])
        try:
            secret_file = controls.write_control_secret(self.state_dir, self._port, self._control_secret)
        except OSError:
            httpd.server_close()
            raise
        self._state.issuer = self._app.base_url = self.base_url
        self._stopping.clear()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"tdgui-sandbox-{self._port}",
            daemon=True,
        )
        self._thread.start()
        LOG.info(
            "sandbox listening on %s (flavor %s); control secret in %s",
            self.base_url,
            self.flavor or "both",
            secret_file,
        )
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections; does not wait for hanging requests."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        # Before the port is free again: a later run on it writes its own file.
        controls.remove_control_secret(self.state_dir, self._port, self._control_secret)
        closer = threading.Thread(target=httpd.shutdown, name="tdgui-sandbox-stop", daemon=True)
        closer.start()
        # Wake the accept loop's select() now instead of after its poll interval.
        with contextlib.suppress(OSError):
            wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
            wake = wildcard.get(self.host, self.host)
            socket.create_connection((wake, self._port), timeout=0.2).close()
        closer.join()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None
        LOG.info("sandbox on port %d stopped", self._port)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        if self._port == 0:
            raise RuntimeError("the sandbox has no port yet: call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self._port}"

    @property
    def certs(self) -> SandboxCerts:
        return self._certs

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def control_secret(self) -> str:
        """The secret the control API (/_sandbox/...) asks for; also in control_secret_file."""
        return self._control_secret

    @property
    def control_headers(self) -> dict[str, str]:
        """Headers to send with a control request (fault, clock, stats) over HTTP."""
        return {controls.CONTROL_HEADER: self._control_secret}

    def provider(self, flavor: str) -> Provider:
        """The `sandbox` Provider profile for this server (pins its CA and leaf)."""
        return sandbox(
            flavor, self.base_url, str(self._certs.ca_file), pinned_cert_file=str(self._certs.cert_file)
        )

    def authorize_url(
        self,
        flavor: str,
        *,
        redirect_uri: str = SANDBOX_CALLBACK_URL,
        state: str | None = None,
        code_challenge: str | None = None,
        client_id: str | None = None,
    ) -> str:
        """An authorization URL for the demo app of `flavor` (a convenience for tests)."""
        self._app.base_url = self.base_url  # RuntimeError before start(): no port, no URL
        return self._app.authorize_url(
            flavor, redirect_uri=redirect_uri, state=state, code_challenge=code_challenge, client_id=client_id
        )

    # ----------------------------------------------------------------- test controls (in process)

    def set_fault(
        self,
        kind: str,
        count: int = 1,
        retry_after: float | None = None,
        hang_seconds: float = 30,
    ) -> None:
        """Make the next `count` token requests fail as `kind` (queued after earlier faults)."""
        self._state.faults.add(kind, count, retry_after, hang_seconds)

    def clear_faults(self) -> None:
        self._state.faults.clear()

    def set_answer_delay(self, seconds: float) -> None:
        """Hold each successful refresh answer `seconds` after processing it (see faults.py)."""
        self._state.faults.set_answer_delay(seconds)

    def refresh_answers(self) -> list[tuple[float, float]]:
        """(processed, sent), time.monotonic(), of every successful refresh answer so far."""
        with self._state.lock:
            return list(self._state.stats.answers)

    def stats(self) -> dict[str, int]:
        """Counters: token_requests, code_exchanges, refresh_requests, revoked_grants, ..."""
        return self._state.counts()

    def reset_stats(self) -> None:
        self._state.reset_stats()

    @property
    def requests(self) -> list[tuple[str, str, str | None]]:
        """(method, path, grant_type) of every request so far (a copy)."""
        return self._state.requests()

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox's notion of time forward (codes and refresh tokens expire)."""
        self._state.advance_clock(seconds)


# --------------------------------------------------------------------------- CLI entry


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: list[tuple[int, Any]] = []
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
            signum = getattr(signal, name, None)
            if signum is not None:
                previous.append((signum, signal.signal(signum, handler)))
    try:
        yield
    finally:
        for signum, old in previous:
            signal.signal(signum, old)


def serve_forever(
    state_dir: Path,
    port: int = SANDBOX_DEFAULT_PORT,
    flavor: str | None = None,
    access_ttl: int = ACCESS_LIFETIME,
    refresh_ttl: int | None = None,
    rotate: bool = False,
) -> None:
    """Run the sandbox until SIGINT/SIGTERM; prints its base URL as the one line on stdout.

    The control API's secret for this run is in `state_dir/control-PORT.secret` (0600).
    """
    server = SandboxServer(
        state_dir,
        port=port,
        flavor=flavor,
        access_ttl=access_ttl,
        refresh_ttl=refresh_ttl,
        rotate=rotate,
    )
    server.start()
    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            sys.stdout.write(server.base_url + "\n")
            sys.stdout.flush()
            while not stop.wait(0.25):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def serve_schwab_real(state_dir: Path) -> None:
    """Run the multi-host Schwab login emulator (tdgui.sandbox.schwab_real) until SIGINT/SIGTERM.

    Prints its URL (https://127.0.0.1:PORT) as the one line on stdout and, on stderr, how to
    reach it by hand: the emulator tells its four host names apart by the Host header, so a
    browser must send those names to 127.0.0.1:PORT (Chromium's --host-resolver-rules) and
    trust the local CA. The demo app's client id and callback are the plain sandbox's.
    """
    from tdgui.core import providers
    from tdgui.sandbox import schwab_real

    emulator = schwab_real.SchwabEmulator(
        state_dir / "schwab-real",
        client_id=providers.SANDBOX_SCHWAB_CLIENT_ID,
        client_secret=providers.SANDBOX_SCHWAB_CLIENT_SECRET,
        redirect_uris=(providers.SANDBOX_CALLBACK_URL,),
    )
    emulator.start()
    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            assert emulator.tls is not None
            authorize = emulator.url(
                schwab_real.AUTH_HOST,
                f"{schwab_real.AUTHORIZE_PATH}?response_type=code&client_id="
                f"{providers.SANDBOX_SCHWAB_CLIENT_ID}&redirect_uri={providers.SANDBOX_CALLBACK_URL}",
            )
            sys.stderr.write(
                "Schwab login emulator: hosts "
                + ", ".join(schwab_real.HOSTS)
                + f" on 127.0.0.1:{emulator.port}\n"
                f"  local CA: {emulator.tls.ca_file}\n"
                f'  try it:   chromium --host-resolver-rules="{emulator.resolver_rules()}" '
                f"--user-data-dir=$(mktemp -d) '{authorize}'\n"
                "  (import the CA into that browser profile, or accept the warning: this is a local "
                "test server). Stop with Ctrl+C.\n"
            )
            sys.stdout.write(f"https://127.0.0.1:{emulator.port}\n")
            sys.stdout.flush()
            while not stop.wait(0.25):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()

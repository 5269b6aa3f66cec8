"""Bounds on one token-endpoint HTTP attempt: an overall deadline, request-sent tracking, a read cap.

requests/urllib3 only offer per-read timeouts and decode gzip without a size limit; these
pieces add what a token request needs on top of them (issue 11, findings 2, 3 and 19).
"""

from __future__ import annotations

import os
import socket
import threading
import zlib
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from tdgui.core.errors import ProviderError
from tdgui.core.providers import host_of

_CHUNK = 64 * 1024


class Attempt:
    """One HTTP attempt: whether the request went out, and a watchdog for its deadline.

    The watchdog shuts the connection's socket down (through a duplicate descriptor, which
    also reaches a socket TLS has wrapped), so a blocked read returns at once whatever phase
    it is in: TLS handshake, headers or body.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sent = False
        self.expired = False
        self._fds: list[int] = []
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(deadline, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Attempt:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True
            fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._done:
                return
            self._fds.append(os.dup(sock.fileno()))
            expired = self.expired
        if expired:
            self._shutdown()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
        self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            fds = list(self._fds)
        for fd in fds:
            try:
                with socket.socket(fileno=os.dup(fd)) as dup:
                    dup.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the other side


def _pool_classes(attempt: Attempt) -> dict[str, type[HTTPConnectionPool]]:
    """Connection classes that report their socket and the moment the request goes out."""

    class Watched:
        def _new_conn(self) -> socket.socket:
            sock: socket.socket = super()._new_conn()  # type: ignore[misc]
            attempt.watch(sock)
            return sock

        def request(self, *args: Any, **kwargs: Any) -> None:
            # Set before sending: a failure part-way through may already have reached the provider.
            attempt.sent = True
            super().request(*args, **kwargs)  # type: ignore[misc]

    class Tracked(Watched, HTTPConnection):
        pass

    class TrackedTLS(Watched, HTTPSConnection):
        pass

    class Pool(HTTPConnectionPool):
        ConnectionCls = Tracked

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = TrackedTLS

    return {"http": Pool, "https": TLSPool}


class AttemptAdapter(HTTPAdapter):
    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._attempt)  # type: ignore[assignment]


def read_body(resp: requests.Response, limit: int) -> bytes:
    """At most `limit` bytes of the decoded body; gzip/deflate are decoded here under the cap."""
    where = host_of(resp.url)
    too_big = ProviderError(f"{where} sent a token answer larger than {limit} bytes", transient=False)
    length = (resp.headers.get("Content-Length") or "").strip()
    if length.isdigit() and int(length) > limit:
        raise too_big
    coding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
    decoder: Any
    if coding in ("identity", ""):
        decoder = None
    elif coding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        decoder = zlib.decompressobj()  # RFC 9110 §8.4.1.2: "deflate" is the zlib format
    else:
        raise ProviderError(f"{where} sent a token answer in an unsupported encoding", transient=False)
    body = bytearray()
    read = 0
    while True:
        chunk = resp.raw.read(_CHUNK, decode_content=False)
        if not chunk:
            break
        read += len(chunk)
        if read > limit:
            raise too_big
        if decoder is None:
            body += chunk
        else:
            data = chunk
            while data:
                # max_length keeps a bomb from expanding past the cap in one call.
                body += decoder.decompress(data, limit + 1 - len(body))
                if len(body) > limit:
                    raise too_big
                data = decoder.unconsumed_tail
    if decoder is not None:
        body += decoder.flush()
        if len(body) > limit:
            raise too_big
    return bytes(body)

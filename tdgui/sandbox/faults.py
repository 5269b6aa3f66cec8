"""Switchable faults of the sandbox's token endpoint, and its request counters."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tdgui.sandbox.transport import Handler

LOG = logging.getLogger(__name__)

FAULT_KINDS = (
    "500",
    "503",
    "429",
    "hang",
    "malformed",
    "no_access_token",
    "html",
    "invalid_grant",
    "invalid_client",
    "refresh_token_authentication_error",
    # A first login's setup failures, as Schwab answers them (docs/providers.md, "First setup"):
    "app_not_ready",  # 401 Whitelabel Error Page HTML (Schwabdev #33, schwab-py #50)
    "access_denied_page",  # 403 "Access Denied" HTML from the CDN (Schwabdev #61)
    "wrong_secret",  # 401 invalid_client "Unauthorized" on the code exchange (go-schwab/trader #26)
)
#: Faults of the authorize page (the first request of a login in the browser or login window).
PAGE_FAULT_KINDS = ("app_not_ready", "callback_mismatch")
STAT_NAMES = (
    "token_requests",
    "code_exchanges",
    "refresh_requests",
    "revoked_grants",
    "faults_served",
    "successful_code_exchanges",
    "successful_refreshes",
    "superseded_grants",
    "codes_issued",
    "api_requests",
)


@dataclass
class Fault:
    kind: str
    remaining: int
    retry_after: float | None
    hang_seconds: float


@dataclass
class Stats:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_NAMES, 0))
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: (processed, sent) in time.monotonic() (one clock for every process on the machine) of
    #: each successful refresh answer: a test killing a client can tell whether its kill fell
    #: between the provider rotating the refresh token and the answer leaving.
    answers: list[tuple[float, float]] = field(default_factory=list)


class FaultQueue:
    """Faults the next token requests are answered with, in the order they were queued."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._page_faults: list[Fault] = []
        self._answer_delay = 0.0

    @property
    def answer_delay(self) -> float:
        """Seconds a successful refresh answer waits *after* the refresh was processed (the
        refresh token already rotated): a client killed then never learns the new one."""
        return self._answer_delay

    def set_answer_delay(self, seconds: float) -> None:
        if not 0 <= seconds <= 600:
            raise ValueError("answer_delay must be between 0 and 600 seconds")
        with self._lock:
            self._answer_delay = float(seconds)

    def add(
        self, kind: str, count: int = 1, retry_after: float | None = None, hang_seconds: float = 30
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if hang_seconds < 0:
            raise ValueError("hang_seconds must not be negative")
        with self._lock:
            self._faults.append(Fault(kind, count, retry_after, hang_seconds))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._page_faults.clear()

    def add_page(self, kind: str, count: int = 1) -> None:
        """Answer the next `count` authorize page requests (GET) with the page fault `kind`."""
        if kind not in PAGE_FAULT_KINDS:
            raise ValueError(f"unknown page fault {kind!r}; one of {', '.join(PAGE_FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._page_faults.append(Fault(kind, count, None, 0.0))

    def take_page(self) -> str | None:
        """The page fault for this authorize request, or None to answer normally."""
        with self._lock:
            if not self._page_faults:
                return None
            fault = self._page_faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._page_faults.pop(0)
            return fault.kind

    def take(self) -> Fault | None:
        """The fault for this request (one of its `remaining`), or None to answer normally."""
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.pop(0)
            return Fault(fault.kind, 1, fault.retry_after, fault.hang_seconds)


def serve_fault(handler: Handler, fault: Fault, stopping: threading.Event) -> None:
    """Answer one token request as `fault` says (hang: no answer until the server stops)."""
    LOG.info("serving fault %s", fault.kind)
    kind = fault.kind
    if kind == "hang":
        stopping.wait(fault.hang_seconds)
        handler.close_connection = True
        return
    if kind in ("500", "503", "429"):
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        text = {"500": "Internal Server Error", "503": "Service Unavailable"}.get(kind, "Too Many Requests")
        handler.send(int(kind), f"{text} (sandbox fault)\n".encode(), "text/plain", headers)
    elif kind == "malformed":
        handler.send(200, b'{"access_token": ', "application/json")
    elif kind == "no_access_token":
        handler.send_json(200, {"token_type": "Bearer", "expires_in": 1800, "scope": "api"})
    elif kind == "html":
        handler.send_html(
            200,
            b"<!doctype html><html><body><h1>Maintenance</h1>"
            b"<p>The service is down for maintenance (sandbox fault).</p></body></html>",
        )
    elif kind == "app_not_ready":
        handler.send_html(401, whitelabel_page(401, "Unauthorized"))
    elif kind == "access_denied_page":
        handler.send_html(403, ACCESS_DENIED_PAGE)
    elif kind == "wrong_secret":
        handler.send_json(401, {"error": "invalid_client", "error_description": "Unauthorized"})
    else:
        status = 401 if kind == "invalid_client" else 400
        handler.send_json(status, {"error": kind, "error_description": f"{kind} (sandbox fault)"})


#: The CDN's refusal page, as Schwabdev #61 quotes it (the sandbox's host in the text).
ACCESS_DENIED_PAGE = (
    b"<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n \n"
    b"You don't have permission to access this server.<P>\n</BODY>\n</HTML>\n"
)


def whitelabel_page(status: int, reason: str) -> bytes:
    """Spring Boot's fallback error page, which Schwab shows for an app not Ready For Use."""
    stamp = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime())
    return (
        "<html><body><h1>Whitelabel Error Page</h1>"
        "<p>This application has no configured error view, so you are seeing this as a fallback.</p>"
        f"<div id='created'>{stamp}</div>"
        f"<div>There was an unexpected error (type={reason}, status={status}).</div>"
        "</body></html>"
    ).encode()


#: The sandbox's page for a redirect URI that is not the app's registered callback. What
#: Schwab itself shows then is unverified (Schwabdev #53 saw the login loop back instead).
CALLBACK_MISMATCH_PAGE = (
    b"<!doctype html><html><head><title>Error</title></head><body><h1>We are unable to log you in</h1>"
    b"<p>invalid_request: the redirect_uri does not match the callback URL registered for this app"
    b" (sandbox fault).</p></body></html>"
)


def serve_page_fault(handler: Handler, kind: str) -> None:
    """Answer one authorize page request as the page fault `kind` says."""
    LOG.info("serving page fault %s", kind)
    if kind == "app_not_ready":
        handler.send_html(401, whitelabel_page(401, "Unauthorized"))
    else:
        handler.send_html(400, CALLBACK_MISMATCH_PAGE)

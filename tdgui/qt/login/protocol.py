"""The versioned wire between the app and its login child: the spec, the commands, the one result.

Over the child's pipes, one JSON object per line, each with `"v": VERSION`:
- parent → child, first line: a `LoginSpec` (everything the web view needs and nothing it must
  not have: no client secret, no PKCE verifier); later lines: `Command`s. End of stdin (the
  parent went away) means cancel.
- child → parent: exactly one `ChildResult` line: the callback URL exactly as caught (the
  parent checks the state and exchanges the code), a request for the system browser, or how
  the login ended, plus what the view's guard did (for the log).
A line of another version is refused with a clear `ProtocolError`: a parent and child from
different installs never half-understand each other. Test hooks are not part of this wire
(see tdgui.qt.login.hooks). No Qt here.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tdgui.core.login_outcome import DEFAULT_LOGIN_TIMEOUT, LoginOutcome
from tdgui.core.providers import host_of, is_loopback_host

log = logging.getLogger(__name__)

#: Bump on any change a peer of the previous version would misread.
VERSION = 2

_SHA256 = re.compile(r"[0-9a-f]{64}")


class ProtocolError(ValueError):
    """A line that is not this protocol (wrong version, missing or mistyped field)."""


def _load(line: str | bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"the {what} is not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"the {what} is not a JSON object")
    version = data.get("v")
    if version != VERSION:
        raise ProtocolError(
            f"the {what} speaks login protocol version {version!r}; this tdgui speaks {VERSION} "
            "(are the app and its login window from different installs?)"
        )
    return data


def _dump(data: dict[str, Any]) -> str:
    return json.dumps({"v": VERSION, **data}, separators=(",", ":"))


def _text(data: dict[str, Any], key: str, what: str, *, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"the {what} has no valid {key!r}")
    return value


def _web_url(url: str, key: str) -> str:
    scheme = url.partition(":")[0].lower()
    if scheme == "https" or (scheme == "http" and is_loopback_host(host_of(url))):
        return url
    raise ProtocolError(f"the login spec's {key!r} must be https (or http on a loopback host)")


@dataclass(frozen=True)
class LoginSpec:
    """What the parent sends first: the page to open, the callback to catch, the hosts and pin."""

    account: str
    url: str
    redirect_uri: str
    login_domains: tuple[str, ...]
    provider: str
    #: sandbox only: SHA-256 (hex) of the one leaf certificate the view accepts, and its host
    pinned_sha256: str | None = None
    pinned_host: str | None = None
    timeout: float = DEFAULT_LOGIN_TIMEOUT
    #: "remember this device": the account's 0700 dir for the view's cookies (absolute);
    #: None: off the record, nothing on disk
    device_dir: str | None = None

    @property
    def is_sandbox(self) -> bool:
        """The local sandbox, whose certificate the view pins (a real broker has no pin)."""
        return self.provider == "sandbox" and bool(self.pinned_host) and bool(self.pinned_sha256)

    def to_json(self) -> str:
        return _dump(
            {
                "account": self.account,
                "url": self.url,
                "redirect_uri": self.redirect_uri,
                "login_domains": list(self.login_domains),
                "provider": self.provider,
                "pinned_sha256": self.pinned_sha256,
                "pinned_host": self.pinned_host,
                "timeout": self.timeout,
                "device_dir": self.device_dir,
            }
        )

    @classmethod
    def from_json(cls, line: str | bytes) -> LoginSpec:
        what = "login spec"
        data = _load(line, what)
        hosts = data.get("login_domains")
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise ProtocolError("the login spec's 'login_domains' is not a list of domain names")
        timeout = data.get("timeout")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ProtocolError("the login spec's 'timeout' is not a positive number of seconds")
        pinned_sha256 = _text(data, "pinned_sha256", what, optional=True)
        pinned_host = _text(data, "pinned_host", what, optional=True)
        if (pinned_sha256 is None) != (pinned_host is None):
            raise ProtocolError("the login spec pins a certificate without its host, or a host without one")
        if pinned_sha256 is not None and not _SHA256.fullmatch(pinned_sha256):
            raise ProtocolError("the login spec's 'pinned_sha256' is not a lower-case SHA-256 in hex")
        device_dir = _text(data, "device_dir", what, optional=True)
        if device_dir is not None and not device_dir.startswith("/") and ":" not in device_dir[:3]:
            raise ProtocolError("the login spec's 'device_dir' is not an absolute path")
        return cls(
            account=str(_text(data, "account", what)),
            url=_web_url(str(_text(data, "url", what)), "url"),
            redirect_uri=str(_text(data, "redirect_uri", what)),
            login_domains=tuple(hosts),
            provider=str(_text(data, "provider", what)),
            pinned_sha256=pinned_sha256,
            pinned_host=pinned_host.lower() if pinned_host else None,
            timeout=float(timeout),
            device_dir=device_dir,
        )


class Command(Enum):
    """What the parent may ask of a running child."""

    CANCEL = "cancel"
    #: as if the user closed the login window
    CLOSE = "close"
    RAISE = "raise"
    #: the "Log in with my browser instead" button
    BROWSER = "browser"

    def to_json(self) -> str:
        return _dump({"command": self.value})

    @classmethod
    def from_json(cls, line: str | bytes) -> Command:
        data = _load(line, "command")
        try:
            return cls(data.get("command"))
        except ValueError:
            raise ProtocolError(f"unknown command {data.get('command')!r}") from None


class ResultKind(Enum):
    #: the callback URL was caught; `url` holds it (and the code: never log it)
    CALLBACK = "callback"
    #: the user chose the system browser; the parent runs that login
    BROWSER = "browser"
    #: the login ended in the child; `outcome` says how
    ENDED = "ended"


@dataclass(frozen=True)
class ChildResult:
    """The one line the child writes: the caught callback, the browser request, or the end."""

    kind: ResultKind
    outcome: LoginOutcome | None = None
    message: str = ""
    url: str | None = field(default=None, repr=False)
    #: (Qt WebEngine, Chromium) versions, for the About dialog
    engine: tuple[str, str] | None = None
    #: what the guard did: main-frame navigations it blocked (no query), popups refused,
    #: whether the pinned sandbox certificate was accepted
    blocked: tuple[str, ...] = ()
    popups_refused: int = 0
    certificate_pinned: bool = False

    def __post_init__(self) -> None:
        if self.kind is ResultKind.CALLBACK and not self.url:
            raise ProtocolError("a callback result carries no URL")
        if self.kind is ResultKind.ENDED and (self.outcome is None or self.outcome is LoginOutcome.SUCCESS):
            # Success is decided by the parent after the code exchange, never by the child.
            raise ProtocolError(f"the child cannot end a login with {self.outcome!r}")

    def to_json(self) -> str:
        return _dump(
            {
                "kind": self.kind.value,
                "outcome": self.outcome.value if self.outcome is not None else None,
                "message": self.message,
                "url": self.url,
                "engine": list(self.engine) if self.engine is not None else None,
                "blocked": list(self.blocked),
                "popups_refused": self.popups_refused,
                "certificate_pinned": self.certificate_pinned,
            }
        )

    @classmethod
    def from_json(cls, line: str | bytes) -> ChildResult:
        what = "login window's result"
        data = _load(line, what)
        try:
            kind = ResultKind(data.get("kind"))
            outcome = LoginOutcome(data["outcome"]) if data.get("outcome") is not None else None
        except ValueError:
            raise ProtocolError(f"the {what} has an unknown kind or outcome") from None
        engine = data.get("engine")
        blocked = data.get("blocked") or []
        popups = data.get("popups_refused") or 0
        if not isinstance(blocked, list) or not all(isinstance(b, str) for b in blocked):
            raise ProtocolError(f"the {what}'s 'blocked' is not a list of URLs")
        if isinstance(popups, bool) or not isinstance(popups, int):
            raise ProtocolError(f"the {what}'s 'popups_refused' is not a count")
        return cls(
            kind=kind,
            outcome=outcome,
            message=str(data.get("message") or ""),
            url=_text(data, "url", what, optional=True),
            engine=(str(engine[0]), str(engine[1]))
            if isinstance(engine, list) and len(engine) == 2
            else None,
            blocked=tuple(blocked),
            popups_refused=popups,
            certificate_pinned=data.get("certificate_pinned") is True,
        )

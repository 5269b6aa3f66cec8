"""TEST ONLY: hooks that script the login child on the local sandbox (tests, `tdgui --self-test`).

They travel in the environment variable TDGUI_LOGIN_TEST_HOOKS (JSON), never in the login
spec, so the production wire carries none of them. The parent sets the variable only when a
caller asks for hooks (and removes an inherited one otherwise); the child reads it once and
honours it only when the spec pins the sandbox's certificate on a loopback host: a real
broker's page is never scripted.

One exception, for the Schwab emulator (tdgui.sandbox.schwab_real) run under the shipped
`schwab` profile: a hook may name one emulator leaf the view then accepts, but only when
this child's own Chromium flags (QTWEBENGINE_CHROMIUM_FLAGS, set by the test) resolve every
host that leaf is accepted for to 127.0.0.1 (`--host-resolver-rules`): the pin can then
only ever be met on this machine's loopback, never by a server on the network. Even then no
script runs in the page (LoginWindow.run_sandbox_script refuses a non-sandbox spec).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, dataclass

from tdgui.core.providers import is_loopback_host
from tdgui.qt.login.protocol import LoginSpec

log = logging.getLogger(__name__)

ENV_VAR = "TDGUI_LOGIN_TEST_HOOKS"


@dataclass(frozen=True)
class TestHooks:
    """What the child does by itself on the sandbox's pages."""

    __test__ = False  # not a pytest test class, whatever its name

    #: fill the sandbox's form with demo/demo and press the consent button
    autofill: bool = False
    #: the consent button to press: "allow" or "deny"
    consent: str = "allow"
    #: a PNG path: the child saves its window there once the login page has loaded
    screenshot: str | None = None
    #: after the login page loaded, navigate here first (the guard decides as for any URL);
    #: once the guard blocked it or refused its popup, go back to the login page
    visit: str | None = None
    #: once the guard blocked a main-frame navigation, press "Continue in my browser" (as a
    #: user would) instead of going back to the login page
    continue_when_blocked: bool = False
    #: the emulator's leaf (SHA-256 hex), accepted on the hosts the child's resolver rules
    #: send to loopback; honoured only as the module docstring says
    emulator_leaf_sha256: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TestHooks:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{ENV_VAR} is not a JSON object")
        screenshot, visit = data.get("screenshot"), data.get("visit")
        leaf = data.get("emulator_leaf_sha256")
        return cls(
            autofill=data.get("autofill") is True,
            consent="deny" if data.get("consent") == "deny" else "allow",
            screenshot=str(screenshot) if screenshot else None,
            visit=str(visit) if visit else None,
            continue_when_blocked=data.get("continue_when_blocked") is True,
            emulator_leaf_sha256=str(leaf).lower() if leaf else None,
        )

    def apply_to(self, environ: MutableMapping[str, str]) -> None:
        environ[ENV_VAR] = self.to_json()


def take_from_environment(environ: MutableMapping[str, str], spec: LoginSpec) -> TestHooks | None:
    """The child's hooks: read and removed from `environ`, and None unless `spec` is the sandbox
    (or the emulator under loopback-only resolver rules, see the module docstring)."""
    text = environ.pop(ENV_VAR, None)
    if not text:
        return None
    return honoured(text, spec, environ.get(CHROMIUM_FLAGS_VAR, ""))


#: Where QtWebEngine reads extra Chromium switches.
CHROMIUM_FLAGS_VAR = "QTWEBENGINE_CHROMIUM_FLAGS"
_MAP_RULE = re.compile(r"MAP\s+(\S+)\s+(\S+)\Z", re.IGNORECASE)


def loopback_mapped_hosts(chromium_flags: str) -> frozenset[str]:
    """Host names the flags' --host-resolver-rules send to 127.0.0.1; empty if any rule goes
    elsewhere or is not a plain `MAP host 127.0.0.1[:port]` (nothing half-understood counts)."""
    rules: list[str] = []
    try:
        words = shlex.split(chromium_flags)
    except ValueError:
        return frozenset()
    for word in words:
        if word.startswith("--host-resolver-rules="):
            rules += [r.strip() for r in word.partition("=")[2].split(",") if r.strip()]
    hosts: set[str] = set()
    for rule in rules:
        match = _MAP_RULE.match(rule)
        if match is None:
            return frozenset()
        host, target = match.group(1).lower(), match.group(2)
        if "*" in host or target.rsplit(":", 1)[0] != "127.0.0.1":
            return frozenset()
        hosts.add(host)
    return frozenset(hosts)


def honoured(text: str, spec: LoginSpec, chromium_flags: str = "") -> TestHooks | None:
    """Hooks from their JSON, for a pinned loopback sandbox only (or the emulator's leaf under
    loopback-only resolver rules); None (and a warning) otherwise."""
    try:
        hooks = TestHooks.from_json(text)
    except ValueError as exc:
        log.warning("ignored %s: %s", ENV_VAR, exc)
        return None
    if spec.is_sandbox and spec.pinned_host and is_loopback_host(spec.pinned_host):
        return hooks
    if hooks.emulator_leaf_sha256 and loopback_mapped_hosts(chromium_flags):
        log.warning("TEST ONLY: the login view accepts the emulator's leaf on loopback-mapped hosts")
        return hooks
    log.warning("ignored %s: test hooks run only on the local sandbox", ENV_VAR)
    return None


def without(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of `environ` without any inherited hooks (what a production child gets)."""
    return {k: v for k, v in environ.items() if k != ENV_VAR}

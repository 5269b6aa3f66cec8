"""TEST ONLY: hooks that script the login child on the local sandbox (tests, `tdgui --self-test`).

They travel in the environment variable TDGUI_LOGIN_TEST_HOOKS (JSON), never in the login
spec, so the production wire carries none of them. The parent sets the variable only when a
caller asks for hooks (and removes an inherited one otherwise); the child reads it once and
honours it only when the spec pins the sandbox's certificate on a loopback host: a real
broker's page is never scripted.
"""

from __future__ import annotations

import json
import logging
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

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TestHooks:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{ENV_VAR} is not a JSON object")
        screenshot, visit = data.get("screenshot"), data.get("visit")
        return cls(
            autofill=data.get("autofill") is True,
            consent="deny" if data.get("consent") == "deny" else "allow",
            screenshot=str(screenshot) if screenshot else None,
            visit=str(visit) if visit else None,
            continue_when_blocked=data.get("continue_when_blocked") is True,
        )

    def apply_to(self, environ: MutableMapping[str, str]) -> None:
        environ[ENV_VAR] = self.to_json()


def take_from_environment(environ: MutableMapping[str, str], spec: LoginSpec) -> TestHooks | None:
    """The child's hooks: read and removed from `environ`, and None unless `spec` is the sandbox."""
    text = environ.pop(ENV_VAR, None)
    if not text:
        return None
    return honoured(text, spec)


def honoured(text: str, spec: LoginSpec) -> TestHooks | None:
    """Hooks from their JSON, for a pinned loopback sandbox only; None (and a warning) otherwise."""
    if not (spec.is_sandbox and spec.pinned_host and is_loopback_host(spec.pinned_host)):
        log.warning("ignored %s: test hooks run only on the local sandbox", ENV_VAR)
        return None
    try:
        return TestHooks.from_json(text)
    except ValueError as exc:
        log.warning("ignored %s: %s", ENV_VAR, exc)
        return None


def without(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of `environ` without any inherited hooks (what a production child gets)."""
    return {k: v for k, v in environ.items() if k != ENV_VAR}

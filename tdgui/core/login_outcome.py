"""How a login ended: one outcome enum, the classification of a failure, the user's messages.

No Qt here: the desktop app, its login child and the CLI share these words. Formatting of times
and durations is the caller's (each front end has its own text for them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from tdgui.core.errors import AccessDenied, ProviderError, TdguiError
from tdgui.core.first_login import explain, recognise_error
from tdgui.core.logs import SECRETS
from tdgui.core.text import fmt_duration, fmt_time
from tdgui.core.tokens import TokenTimes

log = logging.getLogger(__name__)

#: How long a login waits for the user before giving up (10 minutes).
DEFAULT_LOGIN_TIMEOUT = 600.0


class LoginOutcome(Enum):
    SUCCESS = "success"
    CANCELLED = "cancelled"
    CLOSED = "closed"
    DENIED = "denied"
    NETWORK = "network"
    TIMEOUT = "timeout"
    CERTIFICATE = "certificate"
    FAILED = "failed"


CANCELLED_MESSAGE = "The login was cancelled. Nothing was changed."
CLOSED_MESSAGE = "The login window was closed before the login finished. Nothing was changed."
DENIED_MESSAGE = "Access was denied on the consent page, so no tokens were issued. Nothing was changed."


@dataclass(frozen=True)
class LoginResult:
    """How a login ended. `message` is for the user and never holds a secret; `times`, no token."""

    account: str
    outcome: LoginOutcome
    message: str
    seconds: float
    #: on success: when the new tokens expire (the tokens themselves stay in the store)
    times: TokenTimes | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is LoginOutcome.SUCCESS

    @property
    def access_expires_at(self) -> float | None:
        return self.times.access_expires_at if self.times is not None else None

    @property
    def refresh_expires_at(self) -> float | None:
        return self.times.refresh_expires_at if self.times is not None else None


def classify_error(error: BaseException) -> tuple[LoginOutcome, str]:
    """The outcome and user message of a failed code exchange (or system-browser login)."""
    if isinstance(error, AccessDenied):
        return LoginOutcome.DENIED, DENIED_MESSAGE
    if isinstance(error, TdguiError):
        # A first login's known setup failures are said in plain words (issue 14, build 2):
        # a "network" problem that is really an app not ready yet must not send the user
        # looking at their connection.
        problem = recognise_error(str(error))
        if problem is not None:
            return LoginOutcome.FAILED, explain(problem).message
    if isinstance(error, ProviderError):
        return LoginOutcome.NETWORK, f"The provider could not be reached: {error}. Nothing was changed."
    if isinstance(error, TdguiError):
        return LoginOutcome.FAILED, f"The login failed: {SECRETS.mask(str(error))}"
    log.error("login failed unexpectedly: %s", SECRETS.mask(repr(error)))
    return LoginOutcome.FAILED, f"The login failed unexpectedly ({type(error).__name__})."


def success_message(name: str, times: TokenTimes) -> str:
    parts = [f"Logged in to {name}. Access token valid until {fmt_time(times.access_expires_at)}"]
    if times.refresh_expires_at is not None:
        parts.append(f"refresh token until {fmt_time(times.refresh_expires_at)}")
    return "; ".join(parts) + "."


def timeout_message(seconds: float) -> str:
    return (
        f"No login was completed within {fmt_duration(seconds)}; the login was abandoned. "
        "Nothing was changed."
    )

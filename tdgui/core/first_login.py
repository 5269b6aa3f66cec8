"""The first login's known failures (app not ready, callback mismatch, secret rejected), in plain words.

Pure functions on what the login saw (an error page's status and text, a failed code
exchange's message, the address a user pasted): the login window, the desktop app and the
CLI say the same thing. The facts behind each explanation are in docs/providers.md ("First
setup"); where a broker's wording is not confirmed by a source, the match stays loose.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: Schwab's developer portal, where the app is registered (docs/providers.md).
SCHWAB_PORTAL_URL = "https://developer.schwab.com"
#: The portal's list of the user's apps (the app key and secret are under "View Details").
SCHWAB_APPS_URL = "https://developer.schwab.com/dashboard/apps"
#: schwab-py's own guide to the same registration.
SCHWAB_PY_GETTING_STARTED_URL = "https://schwab-py.readthedocs.io/en/latest/getting-started.html"


class SetupProblem(Enum):
    APP_NOT_READY = "app_not_ready"
    CALLBACK_MISMATCH = "callback_mismatch"
    SECRET_REJECTED = "secret_rejected"


@dataclass(frozen=True)
class Explanation:
    problem: SetupProblem
    #: a fixed first sentence: it also marks the explanation inside a longer message
    headline: str
    #: what it means and what to do, in plain words
    advice: str

    @property
    def message(self) -> str:
        return f"{self.headline} {self.advice}"


EXPLANATIONS = {
    SetupProblem.APP_NOT_READY: Explanation(
        SetupProblem.APP_NOT_READY,
        "Your app on Schwab's developer portal is not ready for use yet.",
        'Schwab answers with an error page ("Whitelabel Error Page", "We are unable to complete '
        'your request" or "Access Denied") until the app\'s status is "Ready For Use"; '
        '"Approved - Pending" is not enough. Check the status under Dashboard, Apps on '
        "developer.schwab.com, wait until it says Ready For Use (this can take days), then log in "
        "again. Nothing was changed.",
    ),
    SetupProblem.CALLBACK_MISMATCH: Explanation(
        SetupProblem.CALLBACK_MISMATCH,
        "The callback URL does not match the one registered for your app.",
        "Schwab sends the login back only to the callback URL entered for the app on "
        "developer.schwab.com, and it must match character for character (https, 127.0.0.1, the "
        "port, the trailing slash, lower case). Copy the callback URL from this account's "
        "settings into the app's settings on the portal (or the other way round), then log in "
        "again. Nothing was changed.",
    ),
    SetupProblem.SECRET_REJECTED: Explanation(
        SetupProblem.SECRET_REJECTED,
        "Schwab did not accept this account's app key and secret.",
        "The login itself worked, but the secret stored here is not the app's current one: it "
        "changes when it is regenerated on developer.schwab.com. Open the app under Dashboard, "
        "Apps, View Details, copy the app key and secret again, paste them in Edit account, then "
        "log in again. Nothing was changed.",
    ),
}

#: A TD Ameritrade account: its API is gone (tda-api's README: "On May 10th, 2024, Charles
#: Schwab officially turned down the TDAmeritrade service").
TDA_RETIRED = (
    "TD Ameritrade's API was retired in May 2024, when the last TD Ameritrade accounts moved to "
    "Charles Schwab: a TD Ameritrade app no longer logs in. Register an app for Schwab's Trader "
    "API on developer.schwab.com and add a Charles Schwab account instead."
)

#: Error pages Schwab shows for an app that is not Ready For Use (Schwabdev #33, schwab-py #50,
#: hzheng/pyschwab #1) and the CDN's "Access Denied" (Schwabdev #61).
_NOT_READY_PAGE = re.compile(
    r"whitelabel error page|unable to complete your request|<title>\s*access denied|^\s*access denied",
    re.IGNORECASE | re.MULTILINE,
)
#: A page that says the redirect URI is not the registered one (the sandbox's wording;
#: Schwab's own wording is unverified, docs/providers.md).
_CALLBACK_PAGE = re.compile(
    r"(redirect[_ ]ur[il]|callback(?: url)?)\b[^.\n]{0,80}\b(not match|mismatch|not registered|differs)",
    re.IGNORECASE,
)
#: tdgui.core.oauth's message for a code the token endpoint refused with this error code.
_SECRET_ERRORS = re.compile(r"rejected the login code \((invalid_client|unauthorized_client)\)")
#: tdgui.core.oauth's message for an HTML (not JSON) 401/403 answer of the token endpoint.
_NOT_READY_TOKEN = re.compile(r"answered HTTP (401|403) with something that is not JSON")

#: tdgui.core.loopback's message for a browser login whose callback never came.
_TIMED_OUT = re.compile(r"no redirect reached 127\.0\.0\.1:\d+ within")


def explain(problem: SetupProblem) -> Explanation:
    return EXPLANATIONS[problem]


def recognise_page(status: int, text: str) -> SetupProblem | None:
    """The problem an error page of the broker shows (HTTP `status`, its visible text)."""
    if status < 400:
        return None
    if _CALLBACK_PAGE.search(text):
        return SetupProblem.CALLBACK_MISMATCH
    if _NOT_READY_PAGE.search(text) or status == 401:
        return SetupProblem.APP_NOT_READY
    return None


def recognise_error(message: str) -> SetupProblem | None:
    """The problem behind a failed code exchange, from its message (as core raised it)."""
    if _SECRET_ERRORS.search(message):
        return SetupProblem.SECRET_REJECTED
    if _NOT_READY_TOKEN.search(message):
        return SetupProblem.APP_NOT_READY
    if _CALLBACK_PAGE.search(message):
        return SetupProblem.CALLBACK_MISMATCH
    return None


def problem_in(message: str) -> SetupProblem | None:
    """The problem a login's message already explains (its headline), else one it names."""
    for explanation in EXPLANATIONS.values():
        if explanation.headline in message:
            return explanation.problem
    return recognise_error(message)


def stopped_at_broker(pasted: str, authorize_url: str) -> bool:
    """True if a pasted address is the broker's authorize page itself: the login stopped there."""
    given, expected = urlsplit(pasted.strip()), urlsplit(authorize_url)
    return (
        given.scheme.lower() == expected.scheme.lower()
        and (given.hostname or "") == (expected.hostname or "")
        and given.port == expected.port
        and given.path.rstrip("/") == expected.path.rstrip("/")
    )


def stopped_at_broker_advice(*, certain: bool = True) -> str:
    """What to tell a user whose login never reached the callback (a page of the broker instead;
    not `certain`: the login only timed out, perhaps there)."""
    opening = (
        "The login stopped on Schwab's page and never reached the callback."
        if certain
        else "If the login stopped on Schwab's page and never reached the callback:"
    )
    return (
        f"{opening} If that page says "
        '"Whitelabel Error Page", "We are unable to complete your request" or "Access '
        f'Denied": {EXPLANATIONS[SetupProblem.APP_NOT_READY].message} If it sends you back to '
        f"the login page: {EXPLANATIONS[SetupProblem.CALLBACK_MISMATCH].message}"
    )


def login_hint(message: str, *, provider: str | None = None) -> str | None:
    """The plain explanation to add to a failed login's message (`provider`: the account's), or None."""
    if provider == "tdameritrade":
        return TDA_RETIRED
    if _TIMED_OUT.search(message):
        return stopped_at_broker_advice(certain=False)
    problem = problem_in(message)
    return None if problem is None else EXPLANATIONS[problem].message

"""Drive the sandbox's login and consent forms with `requests`, as a browser would (for tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import requests

from tdgui.sandbox.model import DEMO_PASSWORD, DEMO_USER

_TIMEOUT = 15.0


class SandboxDriverError(RuntimeError):
    """The sandbox did not show the page the driver expected (the message says what it saw)."""


@dataclass
class _Form:
    id: str
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    #: button id -> (name, value)
    buttons: dict[str, tuple[str, str]] = field(default_factory=dict)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: dict[str, _Form] = {}
        self.texts: dict[str, str] = {}
        self._form: _Form | None = None
        self._capture: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = _Form(attr.get("id", ""), attr.get("action", ""), attr.get("method", "get"))
            self.forms[self._form.id] = self._form
        elif tag == "input" and self._form is not None and attr.get("name"):
            if attr.get("type", "text").lower() in ("submit", "button", "image"):
                self._form.buttons[attr.get("id", "")] = (attr["name"], attr.get("value", ""))
            else:
                self._form.fields.append((attr["name"], attr.get("value", "")))
        elif tag == "button" and self._form is not None:
            self._form.buttons[attr.get("id", "")] = (attr.get("name", ""), attr.get("value", ""))
        if attr.get("id") in ("error", "message"):
            self._capture = attr["id"]
            self.texts[self._capture] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        if tag in ("p", "div", "span"):
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self.texts[self._capture] += data


def _parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


def _expect_page(response: requests.Response, what: str) -> _PageParser:
    if response.status_code != 200:
        page = _parse(response.text)
        detail = page.texts.get("message") or response.text[:200]
        raise SandboxDriverError(f"{what}: HTTP {response.status_code}: {detail.strip()}")
    return _parse(response.text)


def login_with_requests(
    authorize_url: str,
    ca_file: Path | str,
    *,
    username: str = DEMO_USER,
    password: str = DEMO_PASSWORD,
    consent: str = "allow",
) -> str:
    """Log in on the sandbox's pages and return the callback redirect URL (not followed).

    `consent` is the id of the consent button to press: "allow" or "deny". Raises
    SandboxDriverError when a page is not what a successful login shows (for a wrong
    password: the page's "Wrong user name or password").
    """
    verify = str(ca_file)
    with requests.Session() as session:
        response = session.get(authorize_url, verify=verify, allow_redirects=False, timeout=_TIMEOUT)
        if response.is_redirect and "/tdgui-login/" in authorize_url:
            # tdgui's one-time start URL (`login --browser`): a browser follows its redirect.
            start = response.headers["Location"]
            response = session.get(start, verify=verify, allow_redirects=False, timeout=_TIMEOUT)
        page = _expect_page(response, "authorize page")
        login = page.forms.get("login")
        if login is None:
            raise SandboxDriverError("authorize page has no form#login")
        data = [(n, v) for n, v in login.fields if n not in ("username", "password")]
        data += [("username", username), ("password", password)]
        response = session.post(
            urljoin(response.url, login.action),
            data=data,
            verify=verify,
            allow_redirects=False,
            timeout=_TIMEOUT,
        )
        page = _expect_page(response, "login")
        if "error" in page.texts:
            raise SandboxDriverError(page.texts["error"].strip())
        form = page.forms.get("consent")
        if form is None:
            raise SandboxDriverError("login answered without a consent form")
        if consent not in form.buttons:
            raise SandboxDriverError(f"consent page has no button #{consent}")
        data = [*form.fields, form.buttons[consent]]
        response = session.post(
            urljoin(response.url, form.action),
            data=data,
            verify=verify,
            allow_redirects=False,
            timeout=_TIMEOUT,
        )
        location = response.headers.get("Location")
        if response.status_code not in (301, 302, 303, 307) or not location:
            detail = _parse(response.text).texts.get("message") or response.text[:200]
            raise SandboxDriverError(
                f"consent answered HTTP {response.status_code} without a redirect: {detail.strip()}"
            )
        return location

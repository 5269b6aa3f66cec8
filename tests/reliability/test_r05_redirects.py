"""Row 5: bad redirects are rejected with a specific message and 0 token requests.

Each case is built from a real sandbox redirect (a live, unused code), so a check that let it
through would reach the token endpoint; the sandbox counts every token request. At the end
the genuine redirect still works (1 request), which proves the code was live throughout.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from rel_support import add_sandbox_account, ca_file
from tdgui.core.config import Config
from tdgui.core.errors import AccessDenied, RedirectError
from tdgui.core.service import TokenService
from tdgui.core.stores.memory import MemoryStore
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests


def with_query(url: str, pairs: list[tuple[str, str]], *, fragment: str = "", **parts: str) -> str:
    split = urlsplit(url)
    scheme = parts.get("scheme", split.scheme)
    netloc = parts.get("netloc", split.netloc)
    path = parts.get("path", split.path)
    return urlunsplit((scheme, netloc, path, urlencode(pairs), fragment))


def cases(redirect: str, state: str) -> list[tuple[str, str, type[Exception], str]]:
    """(label, url, error type, message pattern)."""
    pairs = parse_qsl(urlsplit(redirect).query)
    code = dict(pairs)["code"]
    no_state = [(k, v) for k, v in pairs if k != "state"]
    no_code = [(k, v) for k, v in pairs if k != "code"]
    good = redirect
    return [
        (
            "wrong state",
            with_query(good, [*no_state, ("state", state[:-2] + "xy")]),
            RedirectError,
            r"state does not match",
        ),
        ("empty state", with_query(good, [*no_state, ("state", "")]), RedirectError, r"state does not match"),
        ("missing state", with_query(good, no_state), RedirectError, r"carries no state"),
        (
            "error=access_denied",
            with_query(good, [("error", "access_denied"), ("state", state)]),
            AccessDenied,
            r"declined \(access_denied\)",
        ),
        (
            "error=server_error",
            with_query(good, [("error", "server_error"), ("state", state)]),
            RedirectError,
            r"provider refused the login: server_error",
        ),
        ("missing code", with_query(good, no_code), RedirectError, r"no authorization code"),
        ("empty code", with_query(good, [*no_code, ("code", "")]), RedirectError, r"no authorization code"),
        (
            "duplicated code",
            with_query(good, [*pairs, ("code", code)]),
            RedirectError,
            r"'code' more than once",
        ),
        (
            "duplicated state",
            with_query(good, [*pairs, ("state", state)]),
            RedirectError,
            r"'state' more than once",
        ),
        (
            "host 127.0.0.1.evil.com",
            with_query(good, pairs, netloc="127.0.0.1.evil.com:8182"),
            RedirectError,
            r"went to https://127\.0\.0\.1\.evil\.com:8182, not to the callback URL",
        ),
        (
            "host 127.0.0.2",
            with_query(good, pairs, netloc="127.0.0.2:8182"),
            RedirectError,
            r"not to the callback URL",
        ),
        (
            "host localhost",
            with_query(good, pairs, netloc="localhost:8182"),
            RedirectError,
            r"not to the callback URL",
        ),
        (
            "wrong port",
            with_query(good, pairs, netloc="127.0.0.1:8183"),
            RedirectError,
            r"127\.0\.0\.1:8183, not to the callback URL",
        ),
        (
            "default port",
            with_query(good, pairs, netloc="127.0.0.1"),
            RedirectError,
            r"127\.0\.0\.1:443, not to the callback URL",
        ),
        ("bad port", with_query(good, pairs, netloc="127.0.0.1:99999"), RedirectError, r"invalid port"),
        (
            "wrong path",
            with_query(good, pairs, path="/callback"),
            RedirectError,
            r"path '/callback' differs from the callback URL's path '/'",
        ),
        ("encoded path", with_query(good, pairs, path="/%2e/"), RedirectError, r"path '/%2e/' differs"),
        (
            "wrong scheme",
            with_query(good, pairs, scheme="http"),
            RedirectError,
            r"went to http://127\.0\.0\.1:8182, not to the callback URL",
        ),
        ("userinfo", with_query(good, pairs, netloc="user:pw@127.0.0.1:8182"), RedirectError, r"user name"),
        (
            "userinfo host trick",
            with_query(good, pairs, netloc="127.0.0.1:8182@evil.com"),
            RedirectError,
            r"user name",
        ),
        (
            "code only in fragment",
            with_query(good, [("state", state)], fragment=f"code={code}"),
            RedirectError,
            r"code is in the URL fragment",
        ),
        (
            "whole query in fragment",
            urlunsplit(("https", "127.0.0.1:8182", "/", "", urlencode(pairs))),
            RedirectError,
            r"carries no state",
        ),
        ("not a URL", "127.0.0.1:8182/?" + urlencode(pairs), RedirectError, r"not a URL"),
        ("javascript scheme", "javascript:alert(1)//?" + urlencode(pairs), RedirectError, r"not a URL"),
        ("spaces", good.replace("?", "? "), RedirectError, r"contains spaces"),
        ("empty", "", RedirectError, r"no redirect URL"),
    ]


def test_bad_redirects_rejected_without_token_requests(sandbox: SandboxServer, figure) -> None:
    add_sandbox_account(sandbox, name="r5")
    service = TokenService(Config(), store_override=MemoryStore())
    pending = service.begin_login("r5")
    redirect = login_with_requests(pending.url, ca_file())
    assert "%40" in redirect  # Schwab's code ends in @, sent as %40
    before = sandbox.stats()["token_requests"]
    rejected = []
    for label, url, error, pattern in cases(redirect, pending.state):
        with pytest.raises(error) as info:
            service.finish_login(pending, url)
        assert type(info.value) is error, f"{label}: {type(info.value).__name__}"
        assert re.search(pattern, str(info.value)), f"{label}: {info.value}"
        assert sandbox.stats()["token_requests"] == before, f"{label} reached the token endpoint"
        rejected.append(label)
    assert service.store(service.account("r5")).read("r5/tokens") is None
    tokens = service.finish_login(pending, redirect)
    assert tokens.access_token
    assert sandbox.stats()["token_requests"] - before == 1
    figure(
        f"row 5: {len(rejected)} bad redirects rejected with their own message, 0 token requests; "
        "the genuine redirect then took 1"
    )

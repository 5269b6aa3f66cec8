"""The Schwab emulator's chain over real HTTPS, driven with requests (the browser run: tests/qt/login)."""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography import x509

from tdgui.sandbox import schwab_real
from tdgui.sandbox.schwab_real import AUTH_HOST, LOGIN_HOST, OFFSITE_HOST, THIRD_HOST, SchwabEmulator
from tdgui.sandbox.schwab_real_pages import DEMO_SECURITY_CODE

CLIENT, SECRET = "EmuAppKey0123456789abcdefABCDEF0", "EmuSecret0123456"
CALLBACKS = ("https://127.0.0.1", "https://127.0.0.1:8182/")


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[SchwabEmulator]:
    server = SchwabEmulator(tmp_path / "tls", client_id=CLIENT, client_secret=SECRET, redirect_uris=CALLBACKS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Browser:
    """requests against the emulator's names: every host is its 127.0.0.1 port, told apart by Host."""

    def __init__(self, emu: SchwabEmulator) -> None:
        assert emu.tls is not None
        self.emu, self.ca = emu, str(emu.tls.ca_file)
        self.cookies: dict[str, str] = {}

    def call(self, method: str, host: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Host": host, "User-Agent": "emu-test/1", **kw.pop("headers", {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        resp = requests.request(
            method,
            f"https://127.0.0.1:{self.emu.port}{path}",
            headers=headers,
            verify=self.ca,
            allow_redirects=False,
            timeout=10,
            **kw,
        )
        cookie = resp.headers.get("Set-Cookie")
        if cookie:
            name, _, rest = cookie.partition("=")
            self.cookies[name] = rest.partition(";")[0]
        return resp

    def step(self, step: str, txn: str, **data: Any) -> dict[str, Any]:
        resp = self.call("POST", LOGIN_HOST, f"/api/{step}", data=json.dumps({"txn": txn, **data}))
        assert resp.status_code == 200
        answer: dict[str, Any] = resp.json()
        return answer


def authorize(b: Browser, redirect_uri: str = "https://127.0.0.1:8182/", state: str = "st4te") -> str:
    path = (
        f"/v1/oauth/authorize?client_id={CLIENT}&redirect_uri={redirect_uri}&response_type=code&state={state}"
    )
    resp = b.call("GET", AUTH_HOST, path)
    assert resp.status_code == 302
    location = resp.headers["Location"]
    # The login app is on another host, routed by its #fragment.
    assert location.startswith(f"https://{LOGIN_HOST}/ui/host/#/login?txn=")
    return location.rsplit("txn=", 1)[1]


def finish(b: Browser, url: str) -> str:
    assert url.startswith(f"https://{AUTH_HOST}/")
    resp = b.call("GET", AUTH_HOST, urlsplit(url).path + "?" + urlsplit(url).query)
    assert resp.status_code == 302
    return str(resp.headers["Location"])


def test_the_whole_chain_with_2fa_then_a_known_device(emu: SchwabEmulator) -> None:
    b = Browser(emu)
    txn = authorize(b)
    shell = b.call("GET", LOGIN_HOST, "/ui/host/").text
    assert "<form" not in shell and "<input" not in shell  # the form is built by the script
    assert f"https://{THIRD_HOST}/sdk.js" in shell and "/ui/app.js" in shell
    assert "createElement" in b.call("GET", LOGIN_HOST, "/ui/app.js").text
    assert f"https://{THIRD_HOST}/frame.html" in b.call("GET", THIRD_HOST, "/sdk.js").text
    assert b.step("login", txn, username="demo", password="nope") == {
        "error": "The login ID or password is not correct."
    }
    assert b.step("login", txn, username="demo", password="demo") == {"next": "2fa"}
    assert "error" in b.step("2fa", txn, code="000000")
    assert b.step("2fa", txn, code=DEMO_SECURITY_CODE) == {"next": "terms"}
    assert schwab_real.DEVICE_COOKIE in b.cookies
    assert b.step("terms", txn, accept=True) == {"next": "accounts"}
    callback = finish(b, b.step("accounts", txn, accounts=["12345678"])["url"])
    assert callback.startswith("https://127.0.0.1:8182/?code=C0.")
    query = urlsplit(callback).query
    assert re.search(r"code=C0\.[A-Za-z0-9_-]+%40&session=[0-9a-f-]{36}&state=st4te$", query), query
    code = parse_qs(query)["code"][0]
    assert code.endswith("@")
    basic = base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://127.0.0.1:8182/"}
    tokens = b.call(
        "POST", AUTH_HOST, "/v1/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"}
    )
    assert tokens.status_code == 200 and tokens.json()["token_type"] == "Bearer"
    again = b.call(
        "POST", AUTH_HOST, "/v1/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"}
    )
    assert again.status_code == 400  # a code is single-use
    # The same browser (its device cookie) again: no security code this time.
    txn2 = authorize(b)
    assert b.step("login", txn2, username="demo", password="demo") == {"next": "terms"}
    # A new browser (no cookie) is asked again.
    fresh = Browser(emu)
    assert fresh.step("login", authorize(fresh), username="demo", password="demo") == {"next": "2fa"}
    assert all(ua == "emu-test/1" for _, _, ua in emu.log.user_agents)


def test_callback_without_a_port_and_deny(emu: SchwabEmulator) -> None:
    b = Browser(emu)
    txn = authorize(b, redirect_uri="https://127.0.0.1", state="s")
    b.step("login", txn, username="demo", password="demo")
    b.step("2fa", txn, code=DEMO_SECURITY_CODE)
    denied = finish(b, b.step("terms", txn, accept=False)["url"])
    assert denied == "https://127.0.0.1/?error=access_denied&state=s"
    assert emu.log.codes_issued == 0


@pytest.mark.parametrize(
    "query",
    [
        "client_id=someone-else&redirect_uri=https://127.0.0.1:8182/&response_type=code",
        f"client_id={CLIENT}&redirect_uri=https://evil.test/&response_type=code",
        f"client_id={CLIENT}&redirect_uri=https://127.0.0.1:8182/&response_type=token",
    ],
)
def test_bad_requests_get_an_error_page_not_the_callback(emu: SchwabEmulator, query: str) -> None:
    resp = Browser(emu).call("GET", AUTH_HOST, "/v1/oauth/authorize?" + query)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert "<p id='error'>" in resp.text


def test_offsite_mode_sends_the_top_page_off_schwab(tmp_path: Path) -> None:
    emu = SchwabEmulator(
        tmp_path / "tls",
        client_id=CLIENT,
        client_secret=SECRET,
        redirect_uris=CALLBACKS,
        offsite_after_login=True,
    ).start()
    try:
        b = Browser(emu)
        answer = b.step("login", authorize(b), username="demo", password="demo")
        assert answer == {"url": f"https://{OFFSITE_HOST}/verify"}
        assert b.call("GET", "unknown.example", "/").status_code == 421
    finally:
        emu.stop()


def test_one_leaf_covers_every_name(emu: SchwabEmulator) -> None:
    assert emu.tls is not None
    cert = x509.load_pem_x509_certificate(emu.tls.cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(schwab_real.HOSTS) <= set(names.get_values_for_type(x509.DNSName))
    for host in schwab_real.HOSTS:
        ctx = ssl.create_default_context(cafile=str(emu.tls.ca_file))
        with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:  # verifies the name
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert "MAP api.schwabapi.com 127.0.0.1:" in emu.resolver_rules()

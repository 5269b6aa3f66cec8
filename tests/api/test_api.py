"""The Python API against the sandbox: pyTD's `api` and caches, `session`, `get_token`, `Accounts`."""

from __future__ import annotations

import dataclasses
import http.server
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

import tdgui
from helpers.sandbox import add_sandbox_account, config_dir, log_in, start_sandbox
from tdgui.api import Accounts, api
from tdgui.cache import DiskCache, MemCache, SQLCache, TokenCache
from tdgui.core.errors import ConfigError, LoginRequired, UsageError
from tdgui.core.providers import SANDBOX_CALLBACK_URL, SANDBOX_SCHWAB_CLIENT_ID, SANDBOX_TDA_CLIENT_ID
from tdgui.core.schedule import AccountState
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests

KEY = SANDBOX_SCHWAB_CLIENT_ID


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    server = start_sandbox()
    # Accounts that api() adds by itself carry no sandbox URL: they follow TD_SANDBOX_URL.
    monkeypatch.setenv("TD_SANDBOX_URL", server.base_url)
    yield server
    server.stop()


def ca() -> Path:
    return config_dir() / "sandbox" / "ca.pem"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_browser() -> Callable[[str], None]:
    """Stands in for the system browser: logs in on the sandbox's pages, then delivers the
    redirect to the loopback listener (which presents the sandbox-CA-signed 127.0.0.1 cert)."""

    def open_browser(url: str) -> None:
        def run() -> None:
            redirect = login_with_requests(url, ca())
            requests.get(redirect, verify=str(ca()), timeout=30)

        threading.Thread(target=run, daemon=True).start()

    return open_browser


def manual_login(a: api) -> None:
    accounts = Accounts(a.service)
    pending = accounts.login_url(a.account_name)
    accounts.finish_login(pending, login_with_requests(pending.url, ca()))


# ------------------------------------------------------------------------------ api() and env


def test_store_tokens_env(server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TD_STORE_TOKENS", "False")
    a = api(KEY, SANDBOX_CALLBACK_URL, provider="sandbox", store_tokens=True)
    assert a.store_tokens is False and isinstance(a.cache, MemCache)
    # A disk cache is replaced by memory: nothing may reach the disk.
    disk = DiskCache(config_dir().parent / "disk")
    b = api(KEY, SANDBOX_CALLBACK_URL, provider="sandbox", cache=disk)
    assert isinstance(b.cache, MemCache) and b.account_name == a.account_name
    manual_login(b)
    assert b.access_valid and not (config_dir().parent / "disk").exists()

    monkeypatch.setenv("TD_STORE_TOKENS", "True")
    c = api(KEY, SANDBOX_CALLBACK_URL, provider="sandbox", store_tokens=False)
    assert c.store_tokens is True and c.cache is None  # the variable wins (as documented)
    assert c.service.account(c.account_name).store == "keyring"

    accounts_before = (config_dir() / "accounts.json").read_bytes()
    for junk in ("maybe", "", "0"):
        monkeypatch.setenv("TD_STORE_TOKENS", junk)
        with pytest.raises(ConfigError, match="TD_STORE_TOKENS"):
            api(KEY, "https://127.0.0.1:9999/", provider="sandbox")
    assert (config_dir() / "accounts.json").read_bytes() == accounts_before  # nothing added

    monkeypatch.delenv("TD_STORE_TOKENS")
    d = api(KEY, SANDBOX_CALLBACK_URL, provider="sandbox", store_tokens=False)
    assert d.store_tokens is False and isinstance(d.cache, MemCache)


def test_consumer_key_and_callback_from_env(server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="TD_CONSUMER_KEY"):
        api(store_tokens=False)
    monkeypatch.setenv("TD_CONSUMER_KEY", SANDBOX_TDA_CLIENT_ID + "@AMER.OAUTHAP")
    with pytest.raises(UsageError, match="TD_CALLBACK_URL"):
        api(store_tokens=False)
    monkeypatch.setenv("TD_CALLBACK_URL", SANDBOX_CALLBACK_URL)
    a = api(store_tokens=False, provider="sandbox")
    account = a.service.account(a.account_name)
    assert account.flavor == "tdameritrade" and account.client_id == SANDBOX_TDA_CLIENT_ID
    assert a.consumer_key == SANDBOX_TDA_CLIENT_ID and a.callback_url == SANDBOX_CALLBACK_URL
    # The same key + callback finds the same account, with or without the suffix.
    assert api(SANDBOX_TDA_CLIENT_ID, SANDBOX_CALLBACK_URL, store_tokens=False).account_name == a.account_name
    assert not a.auth_valid
    manual_login(a)
    assert a.auth_valid and a.access_valid and a.refresh_valid
    before = a.access_token
    a.refresh_auth()
    assert a.access_token != before and server.stats()["refresh_requests"] == 1
    with pytest.raises(UsageError, match="cache must be"):
        api(store_tokens=False, cache="memory")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="no account named"):
        api(account="nope")


CACHES: dict[str, Callable[[Path], TokenCache]] = {
    "disk": lambda root: DiskCache(root / "cache"),
    "sql": lambda root: SQLCache(root / "cache" / "tokens.sqlite3"),
}


@pytest.mark.parametrize("kind", ["disk", "sql"])
def test_persistent_caches_round_trip(server: SandboxServer, tmp_path: Path, kind: str) -> None:
    port = free_port()
    callback = f"https://127.0.0.1:{port}/"
    a = api(KEY, callback, provider="sandbox", cache=CACHES[kind](tmp_path))
    assert not a.auth_valid
    a.login(timeout=30, open_browser=fake_browser())  # the RFC 8252 loopback login, in-process
    assert a.access_valid and a.refresh_valid and a.auth_valid
    token = a.access_token
    # Another api (another script) with a cache on the same location sees the same tokens.
    b = api(KEY, callback, provider="sandbox", cache=CACHES[kind](tmp_path))
    assert b.account_name == a.account_name and b.access_valid and b.access_token == token
    b.refresh_auth()
    assert a.access_token == b.access_token != token
    assert server.stats()["refresh_requests"] == 1
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    # Not in the account's own store: the cache was used instead.
    assert TokenService().store(a.service.account(a.account_name)).read(f"{a.account_name}/tokens") is None
    assert a.cache is not None
    a.cache.clear(a.account_name)
    assert not b.auth_valid


def test_memcache_round_trip(server: SandboxServer) -> None:
    shared = MemCache()
    a = api(KEY, SANDBOX_CALLBACK_URL, provider="sandbox", cache=shared)
    manual_login(a)
    b = api(KEY, SANDBOX_CALLBACK_URL, provider="sandbox", cache=shared)
    assert b.access_valid and b.access_token == a.access_token
    other = api(KEY, SANDBOX_CALLBACK_URL, provider="sandbox", cache=MemCache())
    assert not other.auth_valid  # memory is per cache object
    shared.clear(a.account_name)
    assert not a.auth_valid
    with pytest.raises(LoginRequired):
        a.refresh_auth()


# ------------------------------------------------------------------------------ session()


class _Always401(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.headers.get("Authorization", ""))
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_session_sends_a_fresh_bearer_and_retries_once_after_401(server: SandboxServer) -> None:
    add_sandbox_account(server, store="file")
    service = TokenService()
    log_in(service, "demo")
    url = server.base_url + "/v1/userinfo"
    s = tdgui.session("demo")  # through the package's lazy attribute
    answer = s.get(url, timeout=10)
    assert answer.status_code == 200 and answer.json()["sub"] == "demo"
    assert server.stats()["refresh_requests"] == 0

    # The stored access token is garbage but looks valid: 401 → one refresh → one retry.
    account = service.account("demo")
    tokens = service.read_tokens(account)
    assert tokens is not None
    service.store(account).write("demo/tokens", dataclasses.replace(tokens, access_token="garbage").to_json())
    calls_before = server.stats()["api_requests"]
    answer = s.get(url, timeout=10)
    assert answer.status_code == 200
    assert server.stats()["refresh_requests"] == 1
    assert server.stats()["api_requests"] - calls_before == 2
    assert tdgui.get_token("demo") not in ("garbage", tokens.access_token)

    # A new login elsewhere (Schwab: earlier tokens die): the token is read at send time.
    log_in(TokenService(), "demo")
    assert s.get(url, timeout=10).status_code == 200
    assert server.stats()["refresh_requests"] == 1

    # A server that always says 401: exactly one refresh and one retry, then the 401 is returned.
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Always401)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        answer = s.get(f"http://127.0.0.1:{httpd.server_address[1]}/", timeout=10)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert answer.status_code == 401
    assert len(_Always401.hits) == 2 and all(h.startswith("Bearer ") for h in _Always401.hits)
    assert _Always401.hits[0] != _Always401.hits[1]  # the retry carried the refreshed token
    assert server.stats()["refresh_requests"] == 2

    with pytest.raises(UsageError, match="no account named"):
        tdgui.session("nope")


def test_session_raises_login_required_when_the_grant_is_gone(server: SandboxServer) -> None:
    add_sandbox_account(server, store="file")
    service = TokenService()
    log_in(service, "demo")
    s = Accounts().session("demo")
    server.set_fault("invalid_grant", count=1)
    account = service.account("demo")
    tokens = service.read_tokens(account)
    assert tokens is not None
    service.store(account).write("demo/tokens", dataclasses.replace(tokens, access_token="garbage").to_json())
    with pytest.raises(LoginRequired):
        s.get(server.base_url + "/v1/userinfo", timeout=10)
    assert service.status("demo").state is AccountState.LOGIN_REQUIRED


# ------------------------------------------------------------------------------ get_token, Accounts


def test_package_level_names_in_a_fresh_interpreter() -> None:
    """`tdgui.api(...)`, `tdgui.get_token` etc. resolve lazily (and `tdgui.api` stays callable
    after the submodule of the same name is imported)."""
    code = (
        "import sys, tdgui\n"
        "assert 'requests' not in sys.modules\n"
        "names = (tdgui.get_token, tdgui.session, tdgui.Accounts, tdgui.api)\n"
        "import tdgui.api\n"
        "a = tdgui.api(consumer_key='K@AMER.OAUTHAP', callback_url='https://127.0.0.1:8182/',"
        " store_tokens=False)\n"
        "assert type(a).__name__ == 'api' and a.store_tokens is False\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_accounts_api_does_what_the_cli_does(server: SandboxServer, tmp_path: Path) -> None:
    accounts = Accounts()
    accounts.add_sandbox("acc", "tdameritrade", server.base_url, store="sql")
    assert [a.name for a in accounts.list()] == ["acc"]
    with pytest.raises(UsageError, match="already exists"):
        accounts.add_sandbox("acc", "schwab", server.base_url, store="file")
    assert accounts.status("acc").state is AccountState.LOGIN_REQUIRED
    with pytest.raises(LoginRequired):
        accounts.token("acc")

    pending = accounts.login_url("acc")
    tokens = accounts.finish_login(pending, login_with_requests(pending.url, ca()))
    assert accounts.status("acc").state is AccountState.VALID
    assert accounts.token("acc") == tokens.access_token == tdgui.get_token("acc")
    refreshed = accounts.refresh("acc", force=True)
    assert refreshed.access_token != tokens.access_token
    assert accounts.refresh("acc").access_token == refreshed.access_token  # not due: no request
    assert server.stats()["refresh_requests"] == 1
    out = tmp_path / "token.json"
    accounts.export("acc", "tda-api", out, keep_synced=True)
    assert accounts.get("acc").exports[0].path == str(out.resolve())
    assert [s.name for s in accounts.statuses()] == ["acc"]

    # The browser login, with a listener on the account's own loopback port.
    port = free_port()
    accounts.add_sandbox(
        "web", "schwab", server.base_url, store="file", callback_url=f"https://127.0.0.1:{port}/"
    )
    web = accounts.login("web", open_browser=fake_browser(), timeout=30)
    assert accounts.token("web") == web.access_token

    accounts.logout("acc")
    with pytest.raises(LoginRequired):
        accounts.token("acc")
    accounts.remove("acc")
    accounts.remove("web")
    assert accounts.list() == []
    with pytest.raises(UsageError):
        accounts.remove("acc")

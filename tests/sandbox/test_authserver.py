"""The sandbox's OAuth endpoints over real HTTPS on 127.0.0.1, per flavor, its CA pinned by requests."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tdgui.core.providers import (
    SANDBOX_CALLBACK_URL,
    SANDBOX_SCHWAB_CLIENT_ID,
    SANDBOX_SCHWAB_CLIENT_SECRET,
    SANDBOX_TDA_CLIENT_ID,
)
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import SandboxDriverError, login_with_requests

from .support import (
    TDA_ID,
    FakeClock,
    assert_oauth_error,
    get,
    pkce_pair,
    query,
    schwab_login,
    schwab_refresh,
    schwab_token,
    schwab_tokens,
    tda_token,
    tda_tokens,
    userinfo,
)

# --------------------------------------------------------------------------- Schwab flavor


def test_schwab_full_flow_pkce_exchange_refresh(server: SandboxServer) -> None:
    verifier, challenge = pkce_pair()
    url = server.authorize_url("schwab", state="s-123", code_challenge=challenge)
    page = requests.get(url, verify=server.certs.ca_file, timeout=5)
    assert page.status_code == 200
    assert "id='login'" in page.text and "name='username'" in page.text
    assert "name='password'" in page.text and "id='submit'" in page.text

    location = login_with_requests(url, server.certs.ca_file)
    assert location.startswith(SANDBOX_CALLBACK_URL + "?code=C0.")
    raw_code = urlsplit(location).query.split("&")[0].split("=", 1)[1]
    assert raw_code.endswith("%40") and "@" not in location
    params = query(location)
    assert params["code"].endswith("@")
    assert params["state"] == "s-123"
    assert len(params["session"]) == 36

    r = schwab_token(
        server,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": SANDBOX_CALLBACK_URL,
            "code_verifier": verifier,
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert set(body) == {
        "expires_in",
        "token_type",
        "scope",
        "refresh_token",
        "access_token",
        "id_token",
    }
    assert body["expires_in"] == 1800 and body["token_type"] == "Bearer" and body["scope"] == "api"
    assert body["id_token"].count(".") == 2
    assert userinfo(server, body["access_token"]) == 200
    accounts = get(
        server,
        "/trader/v1/accounts/accountNumbers",
        headers={"Authorization": "Bearer " + body["access_token"]},
    )
    assert accounts.status_code == 200 and accounts.json()[0]["accountNumber"]

    r = schwab_refresh(server, body["refresh_token"])
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["refresh_token"] == body["refresh_token"]  # no rotation: same refresh token
    assert again["access_token"] != body["access_token"]
    assert userinfo(server, again["access_token"]) == 200
    assert userinfo(server, "nope") == 401
    assert get(server, "/v1/userinfo").status_code == 401


def test_no_state_means_no_state_in_redirect(server: SandboxServer) -> None:
    location = login_with_requests(server.authorize_url("schwab"), server.certs.ca_file)
    assert "state=" not in location
    assert set(query(location)) == {"code", "session"}


def test_wrong_password_shows_form_again(server: SandboxServer) -> None:
    url = server.authorize_url("schwab", state="x")
    page = requests.get(url, verify=server.certs.ca_file, timeout=5)
    hidden = dict(
        (k, v[0])
        for k, v in parse_qs(urlsplit(url).query).items()
        if k in ("response_type", "client_id", "redirect_uri", "state")
    )
    r = requests.post(
        url.split("?")[0],
        data={**hidden, "username": "demo", "password": "wrong"},
        verify=server.certs.ca_file,
        allow_redirects=False,
        timeout=5,
    )
    assert page.status_code == r.status_code == 200
    assert "id='error'" in r.text and "Wrong user name or password" in r.text
    assert "id='login'" in r.text
    with pytest.raises(SandboxDriverError, match="Wrong user name or password"):
        login_with_requests(url, server.certs.ca_file, password="nope")


def test_deny_redirects_with_access_denied(server: SandboxServer) -> None:
    for flavor in ("schwab", "tdameritrade"):
        url = server.authorize_url(flavor, state="keep-me")
        location = login_with_requests(url, server.certs.ca_file, consent="deny")
        params = query(location)
        assert params["error"] == "access_denied"
        assert params["error_description"]
        assert params["state"] == "keep-me"
        assert "code" not in params


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_id": "someone-else"}, "Unknown client_id"),
        ({"client_id": ""}, "no client_id"),
        ({"redirect_uri": "https://localhost:8182/"}, "redirect_uri must be an https URL"),
        ({"redirect_uri": "http://127.0.0.1:8182/"}, "redirect_uri must be an https URL"),
        ({"redirect_uri": "https://evil.example/"}, "redirect_uri must be an https URL"),
        ({"response_type": "token"}, "response_type"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "code_challenge"),
    ],
)
def test_bad_authorize_request_is_a_page_not_a_redirect(
    server: SandboxServer, change: dict[str, str], message: str
) -> None:
    params = {
        "response_type": "code",
        "client_id": SANDBOX_SCHWAB_CLIENT_ID,
        "redirect_uri": SANDBOX_CALLBACK_URL,
        "state": "s",
        **change,
    }
    r = requests.get(
        server.base_url + "/v1/oauth/authorize",
        params=params,
        verify=server.certs.ca_file,
        allow_redirects=False,
        timeout=5,
    )
    assert r.status_code == 400
    assert "Location" not in r.headers
    assert message in r.text


def test_code_is_one_time(server: SandboxServer) -> None:
    code = schwab_login(server)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": SANDBOX_CALLBACK_URL}
    assert schwab_token(server, data).status_code == 200
    assert_oauth_error(schwab_token(server, data), 400, "invalid_grant")


def test_code_expires(server: SandboxServer, clock: FakeClock) -> None:
    code = schwab_login(server)
    clock.t += 61
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": SANDBOX_CALLBACK_URL}
    r = schwab_token(server, data)
    assert_oauth_error(r, 400, "invalid_grant")
    assert "expired" in r.json()["error_description"]


def test_code_bound_to_redirect_uri(server: SandboxServer) -> None:
    code = schwab_login(server)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": SANDBOX_CALLBACK_URL.rstrip("/"),
    }
    assert_oauth_error(schwab_token(server, data), 400, "invalid_grant")


@pytest.mark.parametrize("verifier", ["wrong", "missing", "without-challenge"])
def test_pkce_is_enforced(server: SandboxServer, verifier: str) -> None:
    good, challenge = pkce_pair()
    code = schwab_login(server, challenge=None if verifier == "without-challenge" else challenge)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": SANDBOX_CALLBACK_URL}
    if verifier == "wrong":
        data["code_verifier"] = pkce_pair()[0]
    elif verifier == "without-challenge":
        data["code_verifier"] = good
    assert_oauth_error(schwab_token(server, data), 400, "invalid_grant")


def test_schwab_token_needs_basic_auth(server: SandboxServer) -> None:
    code = schwab_login(server)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": SANDBOX_CALLBACK_URL}
    assert_oauth_error(schwab_token(server, data, auth=None), 401, "invalid_client")
    r = schwab_token(server, data, auth=(SANDBOX_SCHWAB_CLIENT_ID, "bad"))
    assert_oauth_error(r, 401, "invalid_client")
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    # The failed client authentication did not burn the code.
    assert schwab_token(server, data).status_code == 200


def test_schwab_refresh_dies_seven_days_after_login(server: SandboxServer, clock: FakeClock) -> None:
    tokens = schwab_tokens(server)
    clock.t += 6 * 86400
    assert schwab_refresh(server, tokens["refresh_token"]).status_code == 200
    clock.t += 86400  # refreshing did not extend it
    r = schwab_refresh(server, tokens["refresh_token"])
    assert_oauth_error(r, 400, "refresh_token_authentication_error")


def test_access_token_expires(server: SandboxServer, clock: FakeClock) -> None:
    tokens = schwab_tokens(server)
    clock.t += 1801
    assert userinfo(server, tokens["access_token"]) == 401


def test_schwab_new_login_invalidates_earlier_tokens(server: SandboxServer) -> None:
    old = schwab_tokens(server)
    new = schwab_tokens(server)
    assert userinfo(server, old["access_token"]) == 401
    assert userinfo(server, new["access_token"]) == 200
    r = schwab_refresh(server, old["refresh_token"])
    assert_oauth_error(r, 400, "refresh_token_authentication_error")
    assert schwab_refresh(server, new["refresh_token"]).status_code == 200
    assert server.stats()["superseded_grants"] == 1


# --------------------------------------------------------------------------- TD Ameritrade flavor


def test_tda_full_flow_and_refresh_with_and_without_offline(server: SandboxServer) -> None:
    url = server.authorize_url("tdameritrade", state="t1")
    assert "%40AMER.OAUTHAP" in url
    location = login_with_requests(url, server.certs.ca_file)
    raw_code = urlsplit(location).query.split("&")[0].split("=", 1)[1]
    assert "%2B" in raw_code and "%2F" in raw_code and raw_code.endswith("%3D")
    assert "session=" not in location
    params = query(location)
    assert params["state"] == "t1"
    assert "+" in params["code"] and "/" in params["code"]

    data = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "client_id": TDA_ID,
        "redirect_uri": SANDBOX_CALLBACK_URL,
        "access_type": "offline",
    }
    r = tda_token(server, data)
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert set(tokens) == {
        "access_token",
        "refresh_token",
        "scope",
        "expires_in",
        "refresh_token_expires_in",
        "token_type",
    }
    assert tokens["expires_in"] == 1800 and tokens["refresh_token_expires_in"] == 7776000
    assert userinfo(server, tokens["access_token"]) == 200

    plain = tda_token(
        server,
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": TDA_ID},
    )
    assert plain.status_code == 200, plain.text
    assert "refresh_token" not in plain.json() and plain.json()["access_token"]

    renewed = tda_token(
        server,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": TDA_ID,
            "access_type": "offline",
        },
    )
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["refresh_token_expires_in"] == 7776000


def test_tda_errors(server: SandboxServer, clock: FakeClock) -> None:
    tokens = tda_tokens(server)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert_oauth_error(tda_token(server, {**refresh, "client_id": "WRONG"}), 401, "invalid_client")
    assert_oauth_error(tda_token(server, refresh), 401, "invalid_client")
    r = tda_token(server, {**refresh, "client_id": TDA_ID, "refresh_token": "unknown"})
    assert_oauth_error(r, 400, "invalid_grant")
    clock.t += 7776000
    assert_oauth_error(tda_token(server, {**refresh, "client_id": TDA_ID}), 400, "invalid_grant")


def test_tda_client_id_needs_suffix(server: SandboxServer) -> None:
    url = server.authorize_url("tdameritrade", client_id=SANDBOX_TDA_CLIENT_ID)
    r = requests.get(url, verify=server.certs.ca_file, allow_redirects=False, timeout=5)
    assert r.status_code == 400
    assert "@AMER.OAUTHAP" in r.text


def test_flavor_restriction(shared_dir: Path) -> None:
    with SandboxServer(shared_dir, flavor="schwab") as srv:
        r = get(srv, "/auth")
        assert r.status_code == 404 and "only the schwab flavor" in r.text
        assert tda_token(srv, {"grant_type": "refresh_token"}).status_code == 404
        assert schwab_tokens(srv)["access_token"]


# --------------------------------------------------------------------------- rotation


def test_rotation_and_reuse_revokes_the_grant(rotating: SandboxServer) -> None:
    first = schwab_tokens(rotating)
    r = schwab_refresh(rotating, first["refresh_token"])
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert userinfo(rotating, second["access_token"]) == 200

    assert_oauth_error(schwab_refresh(rotating, first["refresh_token"]), 400, "invalid_grant")
    # Reuse detection revoked the whole grant: its newest tokens are dead too.
    assert_oauth_error(schwab_refresh(rotating, second["refresh_token"]), 400, "invalid_grant")
    assert userinfo(rotating, second["access_token"]) == 401
    assert userinfo(rotating, first["access_token"]) == 401
    assert rotating.stats()["revoked_grants"] == 1


def test_concurrent_refreshes(server: SandboxServer, rotating: SandboxServer) -> None:
    for srv, expect_ok in ((server, 8), (rotating, 1)):
        token = schwab_tokens(srv)["refresh_token"]
        barrier = threading.Barrier(8)

        def refresh(_: int, srv: SandboxServer = srv, token: str = token) -> int:
            barrier.wait()
            return schwab_refresh(srv, token).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(refresh, range(8)))
        assert codes.count(200) == expect_ok, codes
        assert codes.count(400) == 8 - expect_ok
        assert srv.stats()["refresh_requests"] == 8
    assert rotating.stats()["revoked_grants"] == 1


# --------------------------------------------------------------------------- stats, logs, pages


def test_logs_hold_no_secrets(server: SandboxServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tdgui.sandbox")
    verifier, challenge = pkce_pair()
    code = schwab_login(server, state="secret-state-value", challenge=challenge)
    r = schwab_token(
        server,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": SANDBOX_CALLBACK_URL,
            "code_verifier": verifier,
        },
    )
    tokens = r.json()
    schwab_refresh(server, tokens["refresh_token"])
    userinfo(server, tokens["access_token"])
    tda = tda_tokens(server)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("tdgui.sandbox"))
    assert "POST /v1/oauth/token grant_type=authorization_code" in text
    assert "GET /v1/oauth/authorize" in text
    secrets_ = [
        code,
        code[3:-1],
        verifier,
        challenge,
        "secret-state-value",
        SANDBOX_SCHWAB_CLIENT_SECRET,
        tokens["access_token"][3:-1],
        tokens["refresh_token"][:-1],
        tokens["id_token"],
        tda["access_token"][:40],
        tda["refresh_token"][:40],
    ]
    for value in secrets_:
        assert value not in text
    assert "?" not in text


def test_test_pages(server: SandboxServer) -> None:
    r = get(server, "/_test/redirect-away")
    assert r.status_code == 302 and r.headers["Location"] == "https://example.invalid/phish"
    r = get(server, "/_test/popup")
    assert r.status_code == 200 and 'window.open("https://example.invalid/popup")' in r.text
    assert get(server, "/nowhere").status_code == 404

"""Helpers of the sandbox tests: requests against a SandboxServer's real endpoints."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from tdgui.core.providers import (
    SANDBOX_CALLBACK_URL,
    SANDBOX_SCHWAB_CLIENT_ID,
    SANDBOX_SCHWAB_CLIENT_SECRET,
    SANDBOX_TDA_CLIENT_ID,
)
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests

TDA_ID = SANDBOX_TDA_CLIENT_ID + "@AMER.OAUTHAP"
BASIC = (SANDBOX_SCHWAB_CLIENT_ID, SANDBOX_SCHWAB_CLIENT_SECRET)
REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def subprocess_env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get(srv: SandboxServer, path: str, **kw: Any) -> requests.Response:
    kw.setdefault("allow_redirects", False)
    return requests.get(srv.base_url + path, verify=srv.certs.ca_file, timeout=5, **kw)


def schwab_token(srv: SandboxServer, data: dict[str, str], **kw: Any) -> requests.Response:
    kw.setdefault("auth", BASIC)
    kw.setdefault("timeout", 5)
    return requests.post(srv.base_url + "/v1/oauth/token", data=data, verify=srv.certs.ca_file, **kw)


def tda_token(srv: SandboxServer, data: dict[str, str], **kw: Any) -> requests.Response:
    return requests.post(
        srv.base_url + "/v1/oauth2/token", data=data, verify=srv.certs.ca_file, timeout=5, **kw
    )


def schwab_login(srv: SandboxServer, *, state: str | None = "st4te", challenge: str | None = None) -> str:
    url = srv.authorize_url("schwab", state=state, code_challenge=challenge)
    return query(login_with_requests(url, srv.certs.ca_file))["code"]


def schwab_tokens(srv: SandboxServer, **kw: Any) -> dict[str, Any]:
    code = schwab_login(srv, **kw)
    r = schwab_token(
        srv,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": SANDBOX_CALLBACK_URL},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def tda_tokens(srv: SandboxServer) -> dict[str, Any]:
    location = login_with_requests(srv.authorize_url("tdameritrade"), srv.certs.ca_file)
    r = tda_token(
        srv,
        {
            "grant_type": "authorization_code",
            "code": query(location)["code"],
            "client_id": TDA_ID,
            "redirect_uri": SANDBOX_CALLBACK_URL,
            "access_type": "offline",
        },
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def schwab_refresh(srv: SandboxServer, refresh_token: str) -> requests.Response:
    return schwab_token(srv, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def userinfo(srv: SandboxServer, access: str) -> int:
    return get(srv, "/v1/userinfo", headers={"Authorization": f"Bearer {access}"}).status_code


def assert_oauth_error(r: requests.Response, status: int, error: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"] == error
    assert "error_description" in r.json() or error == "invalid_client"
    assert r.headers["Cache-Control"] == "no-store"


def encoding_der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def control(
    srv: SandboxServer, path: str, body: dict[str, Any] | None = None, *, secret: str | None = None
) -> requests.Response:
    """POST to the control API with the run's secret (or `secret`, to try a wrong one)."""
    headers = srv.control_headers if secret is None else {"X-Sandbox-Secret": secret}
    return requests.post(
        srv.base_url + path, json=body or {}, headers=headers, verify=srv.certs.ca_file, timeout=5
    )

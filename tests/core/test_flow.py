"""Login protocol: authorization URL, state/PKCE generation and exact redirect checking."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tdgui.core import flow, providers
from tdgui.core.errors import AccessDenied, RedirectError

CALLBACK = "https://127.0.0.1:8182/"


def pending(provider: providers.Provider | None = None, callback: str = CALLBACK) -> flow.PendingLogin:
    provider = provider or providers.sandbox("schwab", "https://127.0.0.1:9999", None)
    return flow.begin_login("acct", provider, "KEY", callback, 0.0)


def test_authorization_url_for_schwab_has_the_documented_parameters() -> None:
    login = flow.begin_login("a", providers.schwab(), "APPKEY", CALLBACK, 0.0)
    parts = urlsplit(login.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://api.schwabapi.com/v1/oauth/authorize"
    query = parse_qs(parts.query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["APPKEY"]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["state"] == [login.state]
    assert "code_challenge" not in query  # Schwab documents no PKCE
    assert login.code_verifier is None


def test_authorization_url_for_tdameritrade_carries_the_oauthap_suffix() -> None:
    login = flow.begin_login("a", providers.tdameritrade(), "KEY", "http://localhost:8080", 0.0)
    assert "client_id=KEY%40AMER.OAUTHAP" in login.url
    assert login.url.startswith("https://auth.tdameritrade.com/auth?")


def test_pkce_s256_challenge_matches_the_verifier() -> None:
    login = pending()
    query = parse_qs(urlsplit(login.url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert login.code_verifier is not None
    assert re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", login.code_verifier)
    digest = hashlib.sha256(login.code_verifier.encode()).digest()
    assert query["code_challenge"] == [base64.urlsafe_b64encode(digest).rstrip(b"=").decode()]


def test_state_and_verifier_are_long_and_unique() -> None:
    states = {flow.new_state() for _ in range(20_000)}
    assert len(states) == 20_000
    assert all(len(base64.urlsafe_b64decode(s + "=")) >= 16 for s in list(states)[:100])
    verifiers = {flow.new_code_verifier() for _ in range(2_000)}
    assert len(verifiers) == 2_000


def test_good_redirect_gives_the_code_decoded_once() -> None:
    login = pending()
    url = f"{CALLBACK}?code=C0.abc%40&session=xyz&state={login.state}"
    assert flow.parse_redirect(login, url) == "C0.abc@"


def test_default_port_is_equivalent() -> None:
    login = pending(callback="https://127.0.0.1/cb")
    assert flow.parse_redirect(login, f"https://127.0.0.1:443/cb?code=x&state={login.state}") == "x"


@pytest.mark.parametrize(
    ("make_url", "message"),
    [
        (lambda s: f"{CALLBACK}?code=x&state=WRONG", "state does not match"),
        (lambda s: f"{CALLBACK}?code=x", "no state"),
        (lambda s: f"{CALLBACK}?error=server_error&state={s}", "refused the login"),
        (lambda s: f"{CALLBACK}?state={s}", "no authorization code"),
        (lambda s: f"{CALLBACK}?code=x&code=y&state={s}", "'code' more than once"),
        (lambda s: f"{CALLBACK}?code=x&state={s}&state={s}", "'state' more than once"),
        (lambda s: f"https://127.0.0.1.evil.com:8182/?code=x&state={s}", "not to the callback"),
        (lambda s: f"https://127.0.0.1:8183/?code=x&state={s}", "not to the callback"),
        (lambda s: f"https://127.0.0.1:8182/other?code=x&state={s}", "path"),
        (lambda s: f"http://127.0.0.1:8182/?code=x&state={s}", "not to the callback"),
        (lambda s: f"https://user@127.0.0.1:8182/?code=x&state={s}", "user name"),
        (lambda s: f"https://evil.com@127.0.0.1:8182/?code=x&state={s}", "user name"),
        (lambda s: f"{CALLBACK}?state={s}#code=x", "fragment"),
        (lambda s: "", "no redirect URL"),
        (lambda s: "not a url", "spaces"),
        (lambda s: "C0.abc", "not a URL"),
        (lambda s: f"https://127.0.0.1:99999/?code=x&state={s}", "invalid port"),
    ],
)
def test_bad_redirects_are_rejected_with_a_specific_message(make_url, message: str) -> None:
    login = pending()
    with pytest.raises(RedirectError, match=message):
        flow.parse_redirect(login, make_url(login.state))


def test_access_denied_is_its_own_error() -> None:
    login = pending()
    with pytest.raises(AccessDenied):
        flow.parse_redirect(login, f"{CALLBACK}?error=access_denied&state={login.state}")


def test_matches_callback_is_exact() -> None:
    assert flow.matches_callback("https://127.0.0.1:8182/?code=1", CALLBACK)
    assert not flow.matches_callback("https://127.0.0.1:8182/x", CALLBACK)
    assert not flow.matches_callback("https://localhost:8182/", CALLBACK)


def test_pending_login_repr_hides_the_verifier() -> None:
    login = pending()
    assert login.code_verifier and login.code_verifier not in repr(login)
    assert login.state not in repr(login)

"""Exported token files load in the real schwab-py and tda-api (`client_from_token_file`)."""

from __future__ import annotations

import json
import stat
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.sandbox import add_sandbox_account, log_in
from tdgui.core.errors import LoginRequired, UsageError
from tdgui.core.export import render
from tdgui.core.service import TokenService
from tdgui.core.tokens import TokenSet
from tdgui.sandbox import SandboxServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # authlib's httpx deprecation notice on import
    import schwab.auth
    import tda.auth

APP_KEY = "AppKey0123456789"
APP_SECRET = "AppSecret01"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    # One sandbox for the module (start-up time); each test copies its CA into its own config
    # dir, where tdgui clients look for it.
    from tdgui.sandbox import sandbox_state_dir

    state = sandbox_state_dir(tmp_path_factory.mktemp("sandbox-config"))
    server = SandboxServer(state).start()
    yield server
    server.stop()


def logged_in(server: SandboxServer, flavor: str) -> tuple[TokenService, TokenSet]:
    """An account on the module's sandbox, logged in, tokens in the file store."""
    import shutil

    from helpers.sandbox import config_dir

    # Clients pin <config>/sandbox/ca.pem: copy the module sandbox's CA into this test's dir.
    target = config_dir() / "sandbox"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.certs.ca_file, target / "ca.pem")
    add_sandbox_account(server, flavor=flavor, store="file")
    service = TokenService()
    tokens = log_in(service, "demo")
    assert isinstance(tokens, TokenSet)
    return service, tokens


def load_schwab(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return schwab.auth.client_from_token_file(str(path), APP_KEY, APP_SECRET)


def load_tda(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tda.auth.client_from_token_file(str(path), APP_KEY)


@pytest.mark.parametrize("flavor", ["schwab", "tdameritrade"])
@pytest.mark.parametrize("fmt", ["schwab-py", "tda-api"])
def test_schwab_py_and_tda_api_load_our_file(
    server: SandboxServer, tmp_path: Path, flavor: str, fmt: str
) -> None:
    service, tokens = logged_in(server, flavor)
    path = tmp_path / "out" / f"{fmt}.json"
    service.export("demo", fmt, path, keep_synced=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic, no debris

    for client in (load_schwab(path), load_tda(path)):
        held = client.session.token
        assert held["access_token"] == tokens.access_token
        assert held["refresh_token"] == tokens.refresh_token
        assert int(held["expires_at"]) == int(tokens.access_expires_at)
        assert not held.is_expired()  # authlib will not refresh a fresh token on first use
    # schwab-py's own bookkeeping: the age counts from our login, not from the export.
    assert abs(load_schwab(path).token_age() - (time.time() - tokens.login_at)) <= 2


def test_keep_synced_file_follows_refreshes_and_still_loads(server: SandboxServer, tmp_path: Path) -> None:
    service, first = logged_in(server, "schwab")
    schwab_file, tda_file = tmp_path / "schwab.json", tmp_path / "tda.json"
    service.export("demo", "schwab-py", schwab_file, keep_synced=True)
    service.export("demo", "tda-api", tda_file, keep_synced=True)
    refreshed = service.refresh("demo", force=True)
    assert refreshed.access_token != first.access_token
    assert load_schwab(schwab_file).session.token["access_token"] == refreshed.access_token
    assert load_tda(tda_file).session.token["access_token"] == refreshed.access_token
    body = json.loads(schwab_file.read_text())
    assert body["creation_timestamp"] == int(first.login_at)  # the login time, not the refresh
    # Another process (a fresh service) refreshing rewrites the files as well.
    again = TokenService().refresh("demo", force=True)
    assert json.loads(tda_file.read_text())["token"]["access_token"] == again.access_token


def test_plain_json_format(server: SandboxServer, tmp_path: Path) -> None:
    service, tokens = logged_in(server, "tdameritrade")
    path = tmp_path / "plain.json"
    service.export("demo", "json", path, keep_synced=False)
    body = json.loads(path.read_text())
    assert body == {
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "access_expires_at": tokens.access_expires_at,
        "refresh_token": tokens.refresh_token,
        "refresh_expires_at": tokens.refresh_expires_at,
        "login_at": tokens.login_at,
        "scope": tokens.scope,
    }


def test_export_refusals(server: SandboxServer, tmp_path: Path) -> None:
    service, tokens = logged_in(server, "schwab")
    with pytest.raises(UsageError):
        render(tokens, "pickle")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot write"):
        service.export("demo", "schwab-py", blocker / "token.json", keep_synced=True)
    assert service.account("demo").exports == ()  # a failed export is not kept in sync
    service.logout("demo")
    with pytest.raises(LoginRequired):
        service.export("demo", "schwab-py", tmp_path / "t.json", keep_synced=False)
    assert not (tmp_path / "t.json").exists()


def test_a_kept_file_that_could_not_be_written_is_tried_again(server: SandboxServer, tmp_path: Path) -> None:
    """A refresh that could not rewrite one kept file leaves the "files hold these tokens"
    marker behind, so the next read writes it instead of leaving it with a rotated-out token."""
    service, _ = logged_in(server, "schwab")
    kept = tmp_path / "schwab.json"
    service.export("demo", "schwab-py", kept, keep_synced=True)
    kept.unlink()
    kept.mkdir()  # something in the way: the refresh's rewrite of the file fails
    refreshed = service.refresh("demo", force=True)
    kept.rmdir()
    TokenService().get_token("demo")  # the next read catches the file up
    assert load_schwab(kept).session.token["access_token"] == refreshed.access_token


def test_catching_up_kept_files_does_not_wait_out_another_refresh(
    server: SandboxServer, tmp_path: Path
) -> None:
    """`status` finding the kept files behind while another process holds the refresh lock
    answers at once (that refresh rewrites them; a later read catches up otherwise)."""
    import threading
    import time

    from helpers.sandbox import config_dir
    from tdgui.core import fsutil

    service, _ = logged_in(server, "schwab")
    kept = tmp_path / "schwab.json"
    service.export("demo", "schwab-py", kept, keep_synced=True)
    (config_dir() / "synced" / "demo.json").unlink()  # the files' tokens are unknown: behind
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with fsutil.kernel_lock(config_dir() / "locks" / "demo.lock", 5, root=config_dir()):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert holding.wait(10)
    try:
        started = time.monotonic()
        assert TokenService().status("demo").state.value == "valid"
        took = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)
    assert took < 5, f"status waited {took:.1f} s for another process's refresh lock"
    TokenService().status("demo")  # the lock is free again: the files catch up now
    assert (config_dir() / "synced" / "demo.json").exists()

"""Account changes in core: edits move or drop tokens, removal beats a finishing login, no debris."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.sandbox import add_sandbox_account, config_dir, log_in, start_sandbox
from tdgui.core.accounts import AccountDraft, AccountManager
from tdgui.core.config import Account, Config
from tdgui.core.errors import LoginFailed, LoginRequired, UsageError
from tdgui.core.service import TokenService
from tdgui.core.stores.file import FileStore
from tdgui.core.stores.sql import SQLStore
from tdgui.sandbox import SandboxServer

CALLBACK = "https://127.0.0.1:8182/"


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    server = start_sandbox()
    yield server
    server.stop()


def manager() -> AccountManager:
    return AccountManager(TokenService(Config()))


def schwab(name: str = "sch", store: str = "file", **changes: str) -> Account:
    return dataclasses.replace(
        AccountDraft(name, "schwab", "APPKEY", CALLBACK, store).to_account(), **changes
    )


def test_a_store_change_moves_tokens_and_secret(server: SandboxServer) -> None:
    """Issue 14 #1 / 11 #7: Edit → Token store keeps the tokens (they move), nothing stays behind."""
    add_sandbox_account(server, store="file")
    service = TokenService(Config())
    log_in(service, "demo")
    before = service.read_tokens(service.account("demo"))
    account = dataclasses.replace(service.account("demo"), store="sql")
    result = AccountManager(service).edit("demo", account)
    assert result.moved and not result.dropped
    assert service.read_tokens(service.account("demo")) == before
    assert FileStore(config_dir() / "tokens").read("demo/tokens") is None
    assert SQLStore(config_dir() / "tokens.sqlite3").read("demo/tokens") is not None
    assert service.refresh("demo", force=True).access_token != before.access_token  # type: ignore[union-attr]

    accounts = manager()
    accounts.add(schwab(), "s3cret-one")
    accounts.edit("sch", schwab(store="sql"))
    assert SQLStore(config_dir() / "tokens.sqlite3").read("sch/secret") == "s3cret-one"
    assert FileStore(config_dir() / "tokens").read("sch/secret") is None  # no plaintext left over


def test_an_edit_that_points_elsewhere_drops_tokens_and_wants_the_secret_again(server: SandboxServer) -> None:
    """Issue 11 #7: a new app key or endpoint never gets the old refresh token or app secret."""
    accounts = manager()
    accounts.add(schwab(), "s3cret-one")
    store = FileStore(config_dir() / "tokens")
    store.write("sch/tokens", '{"not": "read"}')
    with pytest.raises(UsageError, match="enter the app secret again"):
        accounts.edit("sch", schwab(client_id="OTHERKEY"))
    assert store.read("sch/tokens") is not None and Config().account("sch").client_id == "APPKEY"
    result = accounts.edit("sch", schwab(client_id="OTHERKEY"), "s3cret-two")
    assert result.dropped and store.read("sch/tokens") is None
    assert store.read("sch/secret") == "s3cret-two"
    with pytest.raises(UsageError, match="cannot be renamed"):
        accounts.edit("sch", schwab(name="other"))


def test_removal_during_a_login_keeps_the_tokens_out(server: SandboxServer) -> None:
    """Issue 11 #8: remove while the user is on the login page; the login's tokens go nowhere,
    and a new account of the same name (another provider) starts with nothing."""
    add_sandbox_account(server, store="file")
    service = TokenService(Config())
    pending = service.begin_login("demo")
    from tdgui.sandbox.driver import login_with_requests

    redirect = login_with_requests(pending.url, config_dir() / "sandbox" / "ca.pem")
    AccountManager(service).remove("demo")
    tda = AccountDraft("demo", "sandbox", store="file", flavor="tdameritrade", sandbox_url=server.base_url)
    AccountManager(service).add(tda.to_account())
    with pytest.raises(LoginFailed, match="changed or removed during the login"):
        service.finish_login(pending, redirect)
    with pytest.raises(LoginRequired, match="no tokens stored"):
        service.get_token("demo")


def test_a_new_account_never_inherits_debris(server: SandboxServer) -> None:
    store = FileStore(config_dir() / "tokens")
    store.write("ghost/tokens", '{"left": "behind"}')
    (config_dir() / "status").mkdir(parents=True, exist_ok=True)
    (config_dir() / "status" / "ghost.json").write_text('{"login_required": true}')
    add = AccountDraft("ghost", "sandbox", store="file", sandbox_url=server.base_url).to_account()
    manager().add(add)
    assert store.read("ghost/tokens") is None
    assert not (config_dir() / "status" / "ghost.json").exists()


def test_logout_and_remove_delete_exported_token_files(server: SandboxServer, tmp_path: Path) -> None:
    """Issue 11 #8: an exported file holds a working refresh token; logout/remove delete it."""
    add_sandbox_account(server, store="file")
    service = TokenService(Config())
    log_in(service, "demo")
    target = tmp_path / "token.json"
    service.export("demo", "schwab-py", target, keep_synced=True)
    assert target.exists()
    accounts = AccountManager(service)
    assert accounts.logout("demo") == [target] and not target.exists()
    log_in(service, "demo")
    assert target.exists()  # kept in sync: the next login writes it again
    assert accounts.remove("demo") == [target] and not target.exists()


def test_remove_deletes_a_file_exported_while_it_waited_for_the_lock(
    server: SandboxServer, tmp_path: Path
) -> None:
    """`tdgui export --keep-synced` held the refresh lock as remove began: remove waits, then
    deletes that file too (it read the account before the lock, and left the file behind)."""
    add_sandbox_account(server, store="file")
    service = TokenService(Config())
    log_in(service, "demo")
    target = tmp_path / "token.json"
    tokens = service.read_tokens(service.account("demo"))
    assert tokens is not None
    with ThreadPoolExecutor(1) as pool:
        with service.refresh_lock("demo"):  # what `tdgui export` holds while it writes
            removing = pool.submit(AccountManager(TokenService(Config())).remove, "demo")
            time.sleep(0.5)  # remove is waiting for the lock by now
            assert not removing.done()
            service.exports.export("demo", tokens, "schwab-py", target, keep_synced=True)
        assert removing.result(timeout=30) == [target]
    assert not target.exists()


def test_concurrent_adds_keep_the_winners_secret() -> None:
    """Issue 11 #8: two `accounts add NAME --client-secret-stdin` at once; the loser's rollback
    must not delete the winner's secret (it was 27/30 runs)."""
    env = dict(os.environ)
    runs = 8
    for run in range(runs):
        name = f"race{run}"
        args = ["accounts", "add", name, "--provider", "schwab", "--client-id", "K"]
        args += ["--callback-url", CALLBACK, "--store", "file", "--client-secret-stdin"]

        def add(secret: str, args: list[str] = args) -> tuple[int, str]:
            proc = subprocess.run(
                [sys.executable, "-m", "tdgui", *args],
                input=secret + "\n",
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            return proc.returncode, secret

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(add, [f"secret-a-{run}", f"secret-b-{run}"]))
        winners = [secret for code, secret in results if code == 0]
        assert len(winners) == 1, results
        assert sorted(code for code, _ in results) == [0, 2]
        assert FileStore(config_dir() / "tokens").read(f"{name}/secret") == winners[0]

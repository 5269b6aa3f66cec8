"""Helpers shared by tests: a sandbox on a free port and accounts pointing at it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tdgui.core.config import Account, Config, sandbox_account
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer, sandbox_state_dir
from tdgui.sandbox.driver import login_with_requests


def config_dir() -> Path:
    return Path(os.environ["TD_CONFIG_DIR"])


def free_port() -> int:
    """A port the OS has just handed out on 127.0.0.1, for a listener the code under test binds
    itself (a callback URL); never a fixed one, so no test skips and suites can run in parallel."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_callback_url() -> str:
    """The sandbox demo app's callback URL (https://127.0.0.1:PORT/) on a free port."""
    return f"https://127.0.0.1:{free_port()}/"


def start_sandbox(**options: object) -> SandboxServer:
    """A sandbox whose CA lives in the test's config dir, so tdgui clients pin it."""
    return SandboxServer(sandbox_state_dir(config_dir()), **options).start()  # type: ignore[arg-type]


def add_sandbox_account(
    server: SandboxServer, name: str = "demo", flavor: str = "schwab", store: str = "memory"
) -> Account:
    base = sandbox_account(name, flavor, server.base_url)
    account = Account(**{**base.to_dict(), "store": store, "scopes": (), "exports": ()})
    Config().add_account(account)
    return account


def log_in(service: TokenService, name: str, consent: str = "allow") -> object:
    """A complete login: authorization URL → forms submitted with requests → redirect → tokens."""
    pending = service.begin_login(name)
    ca = config_dir() / "sandbox" / "ca.pem"
    redirect = login_with_requests(pending.url, ca, consent=consent)
    return service.finish_login(pending, redirect)

"""The "Try the sandbox" demo across app restarts: its server comes back, and so do its grants.

The demo's sandbox runs inside the app (tdgui.qt.shell.start_sandbox), so it used to die with
the app: after a restart the `sandbox` account pointed at a port nobody listened on, and Refresh
said "check the network connection" (issue 14, defect 5). Now, when the app starts with the demo
account and nothing answers at its address, the app starts the sandbox again (on the same port
when it is free), and the sandbox's grants, saved when the app quit, are loaded back, so the
account's tokens keep working as they would with a real broker.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tdgui.core.config import Account
from tdgui.core.fsutil import atomic_write

log = logging.getLogger(__name__)

#: The demo account "Try the sandbox" creates (tdgui.qt.shell.SANDBOX_ACCOUNT).
DEMO_ACCOUNT = "sandbox"
#: The demo sandbox's grants and refresh tokens between two runs of the app (0600).
GRANTS_FILE = "demo-grants.json"


def is_demo(account: Account | None) -> bool:
    return account is not None and account.name == DEMO_ACCOUNT and account.provider == "sandbox"


def answers(url: str, timeout: float = 0.5) -> bool:
    """Worker thread: something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            return True
    except OSError:
        return False


def needs_restart(account: Account | None) -> bool:
    """Worker thread: the demo account exists and its sandbox is not running."""
    url = account.sandbox_url if account is not None else None
    return is_demo(account) and bool(url) and not answers(url or "")


def restart(config_dir: Path, account: Account) -> object:
    """Worker thread: the demo sandbox again, on the account's port if free, with its saved grants."""
    from tdgui.core.errors import UsageError
    from tdgui.sandbox import SandboxServer, sandbox_state_dir

    state = sandbox_state_dir(config_dir)
    port = urlsplit(account.sandbox_url or "").port or 0
    try:
        server = SandboxServer(state, port=port)
        load_grants(server, state)
        server.start()
    except UsageError:  # the port is taken by something else now: any free one (re-pointed)
        server = SandboxServer(state, port=0)
        load_grants(server, state)
        server.start()
    return server


def _state_of(server: object) -> Any:
    # The sandbox keeps its grants in memory only (tdgui.sandbox.model.State); the demo is the
    # one user that wants them to outlive a process, so it reads and fills them here.
    return getattr(server, "_state", None)


def save_grants(server: object) -> None:
    """At quit: the sandbox's grants and refresh tokens, for the next run of the app."""
    state = _state_of(server)
    state_dir = getattr(server, "state_dir", None)
    if state is None or state_dir is None:
        return
    with state.lock:
        body = {
            "grants": {key: dataclasses.asdict(value) for key, value in state.grants.items()},
            "refresh": {key: dataclasses.asdict(value) for key, value in state.refresh.items()},
        }
    try:
        atomic_write(Path(state_dir) / GRANTS_FILE, json.dumps(body))
    except OSError as exc:
        log.warning("could not save the demo sandbox's grants: %s", exc)


def load_grants(server: object, state_dir: Path) -> int:
    """Before serving: the grants saved at the last quit (none if there is no file); how many."""
    from tdgui.sandbox.model import Grant, Refresh

    state = _state_of(server)
    path = state_dir / GRANTS_FILE
    if state is None or not path.is_file():
        return 0
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        grants = {key: Grant(**value) for key, value in body["grants"].items()}
        refresh = {key: Refresh(**value) for key, value in body["refresh"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the demo sandbox's saved grants (%s): the demo asks for a login", exc)
        return 0
    with state.lock:
        state.grants.update(grants)
        state.refresh.update(refresh)
    return len(grants)

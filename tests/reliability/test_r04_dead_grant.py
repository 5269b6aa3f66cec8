"""Row 4: invalid_grant, invalid_client, refresh_token_authentication_error.

Must hold: state "login required" after exactly 1 request (no retry, and the scheduler does
not plan another refresh); every other file (other accounts' tokens and status, accounts.json
with its settings, this account's own token record) unchanged byte for byte.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rel_support import add_sandbox_account, log_in, make_due
from tdgui.core.config import Config, Settings
from tdgui.core.errors import LoginRequired
from tdgui.core.schedule import AccountState
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("fault", ["invalid_grant", "invalid_client", "refresh_token_authentication_error"])
@pytest.mark.parametrize("how", ["refresh", "get_token"])
def test_dead_grant_is_login_required_after_one_request(
    sandbox: SandboxServer, fault: str, how: str, figure
) -> None:
    add_sandbox_account(sandbox, name="dead", store="file")
    add_sandbox_account(sandbox, name="other", flavor="tdameritrade", store="sql")
    config = Config()
    config.save_settings(Settings(start_minimized=True, refresh_lead_seconds=240, notifications=False))
    service = TokenService(config)
    log_in(service, "dead")
    log_in(service, "other")
    make_due(service, "dead", seconds_left=-10)  # expired access token: nothing to fall back on
    before = snapshot(config.directory)
    sandbox.set_fault(fault, count=5)
    requests_before = sandbox.stats()["token_requests"]
    with pytest.raises(LoginRequired):
        getattr(service, how)("dead")
    sent = sandbox.stats()["token_requests"] - requests_before
    assert sent == 1, f"{sent} requests"
    status = service.status("dead")
    assert status.state is AccountState.LOGIN_REQUIRED
    assert (
        next(p for p in service.plans() if p.name == "dead").refresh_at is None
    )  # the GUI scheduler will not try again
    plan = {p.name: p for p in service.plans()}["dead"]
    assert plan.login_required and plan.refresh_at is None
    assert service.status("other").state is AccountState.VALID
    after = snapshot(config.directory)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == ["status/dead.json"], changed
    assert Config().settings() == Settings(
        start_minimized=True, refresh_lead_seconds=240, notifications=False
    )
    sandbox.clear_faults()
    figure(
        f"row 4 ({fault}, {how}): login required after {sent} request; {len(before) - 1} other files "
        "unchanged (other account, accounts.json + settings, own token record)"
    )

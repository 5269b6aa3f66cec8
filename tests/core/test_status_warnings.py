"""The status record carries what `status` must say: odd provider answers, lost answers, cut-off refreshes.

Against a rotating hostile provider (tests/helpers/hostile_provider.py) over real HTTPS:
a refresh answer with a bad lifetime is stored and `status` reports the fallback (a warning,
severity warn, `--json` field `warnings`); a refresh whose answer is lost after sending is
recorded as "outcome unknown", and the later invalid_grant explains itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.hostile_provider import Answer, HostileProvider, add_account, seed_tokens, start_for_config
from tdgui.core import oauth
from tdgui.core.config import Config
from tdgui.core.errors import LoginRequired
from tdgui.core.records import RefreshRecord, StatusRecords
from tdgui.core.service import TokenService
from tdgui.core.status import Severity


@pytest.fixture
def provider(isolated_config: Path) -> Iterator[HostileProvider]:
    server = start_for_config(isolated_config)
    try:
        yield server
    finally:
        server.stop()


def _status_json(name: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "TD_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-m", "tdgui", "status", name, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    return body[0] if isinstance(body, list) else body


def test_a_bad_lifetime_is_reported_by_status(provider: HostileProvider) -> None:
    add_account(provider)
    service = TokenService(Config())
    seed_tokens(service, provider)
    provider.script(lambda seen: Answer(200, provider.rotate(seen.form, expires_in=-5)))
    tokens = service.refresh("acct", force=True)
    assert tokens.warnings, "the TokenSet should say what was odd"
    status = service.status("acct")
    assert any("invalid expires_in" in w for w in status.warnings), status.warnings
    assert status.severity is Severity.WARN
    assert status.last_refresh_ok is True and status.last_error is None
    shown = _status_json("acct")
    assert any("invalid expires_in" in w for w in shown["warnings"])
    # A good answer later clears the warning.
    service.refresh("acct", force=True)
    assert service.status("acct").warnings == ()


def test_a_lost_answer_is_recorded_as_outcome_unknown(provider: HostileProvider) -> None:
    add_account(provider)
    service = TokenService(Config())
    seed_tokens(service, provider, rotated=True)

    def processed_then_lost(seen: Any) -> Answer:
        provider.rotate(seen.form)  # the provider acted: the stored refresh token is now dead
        return Answer(502, "<html>Bad Gateway</html>")

    provider.script(processed_then_lost)
    with pytest.raises(oauth.RefreshOutcomeUnknown):
        service.refresh("acct", force=True)
    record = service.refresh_record("acct")
    assert record.outcome_unknown and record.refresh_started_at is None
    status = service.status("acct")
    assert any("lost after it was sent" in w for w in status.warnings), status.warnings
    assert status.severity is not Severity.OK
    # The next try sends the (rotated-out) token: the provider revokes, and the message says why.
    with pytest.raises(LoginRequired) as caught:
        service.refresh("acct", force=True)
    assert "lost after it was sent" in str(caught.value)
    assert service.refresh_record("acct").login_required


def test_records_round_trip_and_damaged_warnings_read_as_empty(isolated_config: Path) -> None:
    records = StatusRecords(isolated_config)
    record = RefreshRecord(last_refresh_ok=True, warnings=("a", "b"), outcome_unknown=True)
    records.save("x", record)
    assert records.read("x") == record
    path = records.path("x")
    body = json.loads(path.read_text())
    body["warnings"] = ["ok", 5]
    path.write_text(json.dumps(body))
    assert records.read("x") == RefreshRecord()

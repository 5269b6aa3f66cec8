"""A Schwab token record is one keyring entry: `id_token` is not stored (nothing reads it), so a
refresh answer is stored with a single D-Bus call (issue 11: the keyring's SIGKILL window)."""

from __future__ import annotations

import secrets
import time

from tdgui.core import export
from tdgui.core.providers import schwab
from tdgui.core.stores.keyring.chunks import fits_one_entry
from tdgui.core.tokens import TokenSet


def _schwab_answer() -> dict[str, object]:
    # Lengths above what Schwab sends (access ~80, refresh ~110, id_token ~1 KB JWT).
    return {
        "expires_in": 1800,
        "token_type": "Bearer",
        "scope": "api",
        "refresh_token": secrets.token_urlsafe(120)[:160] + "@",
        "access_token": "I0." + secrets.token_urlsafe(120)[:150] + "@",
        "id_token": ".".join(secrets.token_urlsafe(600) for _ in range(3)),
    }


def test_a_schwab_record_fits_one_keyring_entry() -> None:
    now = time.time()
    tokens = TokenSet.from_response(_schwab_answer(), schwab(), now)
    record = tokens.to_json()
    assert "id_token" not in record
    assert fits_one_entry(record), f"{len(record)} characters: chunked, several D-Bus calls"
    assert not tokens.warnings  # dropping id_token is normal, not something to warn about


def test_exports_still_have_what_schwab_py_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    tokens = TokenSet.from_response(_schwab_answer(), schwab(), time.time())
    path = tmp_path / "token.json"
    export.write_export(tokens, "schwab-py", path)
    body = json.loads(path.read_text())
    assert {"access_token", "refresh_token", "expires_at", "token_type"} <= set(body["token"])
    assert "creation_timestamp" in body

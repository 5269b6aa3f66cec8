"""Row 31 (issue 11 #12): validating patterns match the whole input (`fullmatch`, not `$`).

`re.match(r"^...$")` accepts a trailing newline, so `tdgui accounts add $'demo\\n'` was
accepted; afterwards `status` failed for every account and the account could not be removed.
Must hold: every name with a trailing newline (or other line break) is refused with exit 2 by
the CLI, by a hand-edited accounts.json (a clear error, not a broken status) and by every
store's key check; nothing is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rel_support import config_dir, run
from tdgui.core.errors import UsageError
from tdgui.core.stores.file import FileStore
from tdgui.core.stores.sql import SQLStore

BAD_NAMES = ["demo\n", "demo\r\n", "demo\n\n"]


def tdgui(*args: str) -> tuple[int, str, str]:
    result = run([sys.executable, "-m", "tdgui", *args], timeout=60)
    return result.returncode, result.stdout, result.stderr


def test_names_with_line_breaks_are_refused(tmp_path: Path, figure) -> None:
    code, _, err = tdgui("accounts", "add", "good", "--provider", "sandbox", "--store", "file")
    assert code == 0, err
    refused = 0
    for name in BAD_NAMES:
        code, _, err = tdgui("accounts", "add", name, "--provider", "sandbox", "--store", "file")
        assert code == 2, f"{name!r} accepted: {err}"
        assert "invalid account name" in err
        refused += 1
    code, out, err = tdgui("accounts", "list", "--json")
    assert code == 0 and [a["name"] for a in json.loads(out)] == ["good"], err
    code, out, err = tdgui("status", "--json")
    assert code == 0 and [s["name"] for s in json.loads(out)] == ["good"], err

    # A hand-edited accounts.json with such a name: a clear config error (exit 2).
    path = config_dir() / "accounts.json"
    body = json.loads(path.read_text())
    body["accounts"][0]["name"] = "good\n"
    path.write_text(json.dumps(body))
    code, _, err = tdgui("status")
    assert code == 2 and "invalid account name" in err, err

    # Every store's key check: no record for a key with a line break.
    stores = [FileStore(tmp_path / "files"), SQLStore(tmp_path / "db" / "t.sqlite3")]
    for store in stores:
        for name in BAD_NAMES:
            with pytest.raises(UsageError):
                store.write(f"{name}/tokens", "x")
            with pytest.raises(UsageError):
                store.write(f"good/tokens{name[4:]}", "x")
    assert not (tmp_path / "files").exists() or list((tmp_path / "files").iterdir()) == []
    figure(
        f"row 31: {refused} account names with a trailing line break refused by `accounts add` "
        f"(exit 2), by accounts.json (exit 2) and by {len(stores)} stores' key checks "
        f"({len(stores) * len(BAD_NAMES) * 2} keys); status of the others unaffected"
    )

"""Row 30 (issue 11 #5): `tdgui export` never writes through a symlink.

Another local user plants symlinks in a shared sticky directory (owned by uid 65534, as an
attacker's would be): at the export target, pointing at the user's own `accounts.json` or at
another account's token file, and as a directory on the way to the target. Must hold: the
export is refused with a clear error (exit 2), the link's target is byte-identical afterwards,
nothing is registered for `--keep-synced`, and a later refresh writes nothing there either.
An export through the user's *own* symlinked folder still works, and is recorded as given
(links not resolved).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from rel_support import add_sandbox_account, config_dir, log_in, run
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer

ATTACKER = 65534


def tdgui(*args: str) -> tuple[int, str]:
    result = run([sys.executable, "-m", "tdgui", *args], timeout=60)
    return result.returncode, result.stderr


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plant(link: Path, target: Path) -> None:
    link.symlink_to(target)
    os.lchown(link, ATTACKER, ATTACKER)


def test_export_refuses_planted_links(sandbox: SandboxServer, tmp_path: Path, figure) -> None:
    service = TokenService()
    for name in ("other", "main"):  # a new Schwab login invalidates older grants: main last
        add_sandbox_account(sandbox, name, store="file")
        log_in(service, name)
    config = config_dir()
    victims = {
        "accounts.json": config / "accounts.json",
        "other's token file": config / "tokens" / "other.tokens.json",
    }
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    before = {label: sha(path) for label, path in victims.items()}

    refused = []
    for i, (label, victim) in enumerate(victims.items()):
        link = shared / f"token{i}.json"
        plant(link, victim)
        code, err = tdgui("export", "main", "--format", "schwab-py", "--output", str(link), "--keep-synced")
        assert code == 2, err
        assert "symbolic link" in err, err
        assert link.is_symlink(), "the planted link was replaced instead of refused"
        refused.append(label)
    # A planted link as a directory on the way: shared/dir -> the config dir.
    plant(shared / "dir", config)
    through = str(shared / "dir" / "accounts.json")
    code, err = tdgui("export", "main", "--format", "json", "--output", through, "--keep-synced")
    assert code == 2 and "symbolic link" in err, err
    refused.append("accounts.json through a linked directory")

    # Nothing was registered, so a refresh (which rewrites synced exports) touches nothing.
    assert TokenService().account("main").exports == ()
    code, err = tdgui("refresh", "main", "--force")
    assert code == 0, err
    after = {label: sha(path) for label, path in victims.items()}
    assert after == before, "an export wrote through a planted symlink"

    # The user's own link to a folder of theirs: works, and is recorded unresolved.
    real = tmp_path / "real-folder"
    real.mkdir()
    own = tmp_path / "my-link"
    own.symlink_to(real)
    target = own / "token.json"
    code, err = tdgui("export", "main", "--format", "schwab-py", "--output", str(target), "--keep-synced")
    assert code == 0, err
    assert json.loads((real / "token.json").read_text())["token"]["access_token"]
    assert [e.path for e in TokenService().account("main").exports] == [str(target)]
    figure(
        f"row 30: {len(refused)} planted symlinks (at the target, and as a directory on the way) "
        f"refused with exit 2: {', '.join(refused)}; victims byte-identical after a refresh; "
        "own linked folder exported and recorded unresolved"
    )

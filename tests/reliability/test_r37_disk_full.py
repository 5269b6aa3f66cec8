"""Row 37 (issue 11 #9): a full disk during a rotating refresh (file store) is loud, never a torn record.

The config dir (tokens, status, locks) and the log dir are a 1 MiB tmpfs in a private mount
namespace (`unshare -m`, as root), filled up to the last block; then `tdgui refresh --force`
runs against a rotating sandbox (`tdgui sandbox --rotate`: the provider rotates the refresh
token, so the new one had to be stored). Must hold: exit 5 with one line on stderr that says
the disk is full and the refresh was not sent; the provider got no refresh request (tdgui writes
the "refresh in flight" record first, and a disk that cannot take it cannot take the tokens
either); the token file is byte-identical (never truncated or empty), no temp file is left, and
the grant still works afterwards (outside the namespace, where the disk has room).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from rel_support import add_sandbox_account, config_dir, log_in
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer

#: Runs inside the namespace: $1 config dir, $2 log dir, $3 saved copy; then the command.
INSIDE = r"""
set -e
config=$1 logs=$2 saved=$3; shift 3
mount -t tmpfs -o size=1m,mode=0700 tmpfs "$config"
cp -a "$saved/." "$config/"
mkdir -p "$logs" && mount -t tmpfs -o size=64k,mode=0700 tmpfs "$logs"
dd if=/dev/zero of="$config/filler" bs=4k 2>/dev/null || true
dd if=/dev/zero of="$logs/filler" bs=1k 2>/dev/null || true
set +e
"$@" 2>"$config/../stderr.txt"
echo "exit=$?" > "$config/../result.txt"
sha256sum < "$config/tokens/r37.tokens.json" >> "$config/../result.txt"
ls -A "$config/tokens" >> "$config/../result.txt"
"""


def test_disk_full_during_rotating_refresh(rotating_sandbox: SandboxServer, tmp_path: Path, figure) -> None:
    service = TokenService()
    add_sandbox_account(rotating_sandbox, "r37", store="file")
    log_in(service, "r37")
    config = config_dir()
    token_file = config / "tokens" / "r37.tokens.json"
    before = hashlib.sha256(token_file.read_bytes()).hexdigest()
    saved = tmp_path / "saved-config"
    subprocess.run(["cp", "-a", str(config), str(saved)], check=True)
    logs = Path(os.environ["TD_LOG_DIR"])
    refreshes = rotating_sandbox.stats()["refresh_requests"]
    refresh = [sys.executable, "-m", "tdgui", "refresh", "r37", "--force"]
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", INSIDE, "sh", str(config), str(logs), str(saved), *refresh],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = (config.parent / "result.txt").read_text().splitlines()
    stderr = (config.parent / "stderr.txt").read_text()
    assert rotating_sandbox.stats()["refresh_requests"] == refreshes, (
        "a refresh was sent although its result could not be stored"
    )
    code = lines[0]
    digest = lines[1].split()[0]
    entries = lines[2:]
    assert code == "exit=5", (code, stderr)
    assert "disk is full" in stderr and "refresh was not sent" in stderr, stderr
    assert stderr.count("\n") == 1, f"not one line on stderr:\n{stderr}"
    assert digest == before, "the token file changed (truncated or torn) on a full disk"
    assert entries == ["r37.tokens.json"], f"debris left in tokens/: {entries}"
    # Outside the namespace the config dir is the real one: the grant was never touched.
    assert TokenService().refresh("r37", force=True).access_token
    figure(
        "row 37: file store on a full 1 MiB tmpfs (config + logs), rotating `refresh --force`: "
        "exit 5, one stderr line saying the disk is full and the refresh was not sent; 0 requests "
        "reached the provider, token file byte-identical, 0 temp files left, grant alive afterwards"
    )

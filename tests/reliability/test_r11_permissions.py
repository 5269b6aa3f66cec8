"""Row 11: umask 000, pre-existing 0644 files and 0755 directories.

Every CLI command runs with umask 000; before each one, everything already on disk is loosened
(directories 0755, files 0644: "a pre-existing 0644 token file or 0755 config dir"). Must hold:
after the command, every file it wrote is 0600 and every directory from there up to the config
dir (or log dir) is 0700: config dir, accounts.json, status/, locks/, tokens/, the SQLite file
(+ -wal/-shm), the log file (also after rotation), exported token files.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from rel_support import ca_file, config_dir, worker_cmd
from tdgui.sandbox import SandboxServer
from tdgui.sandbox.driver import login_with_requests


def umask0() -> None:
    os.umask(0)


def tree(root: Path) -> dict[Path, tuple[int, int, int]]:
    return {
        p: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()
    }


def loosen(*roots: Path) -> None:
    for root in roots:
        if not root.exists():
            continue
        os.chmod(root, 0o755)
        for path in root.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)


def check_written(before: dict[Path, tuple[int, int, int]], root: Path, label: str) -> list[str]:
    """Modes of what changed under `root` since `before`: files 0600, their dirs up to root 0700."""
    problems = []
    written = [p for p, sig in tree(root).items() if before.get(p) != sig]
    dirs = {root} if written else set()
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode != 0o600:
            problems.append(f"{label}: {path.relative_to(root)} is {mode:o}")
        parent = path.parent
        while parent != root and root in parent.parents:
            dirs.add(parent)
            parent = parent.parent
    for directory in dirs:
        mode = stat.S_IMODE(directory.stat().st_mode)
        if mode != 0o700:
            problems.append(f"{label}: dir {directory.relative_to(root.parent)} is {mode:o}")
    return problems


def test_private_modes_under_umask_000(sandbox: SandboxServer, tmp_path: Path, figure) -> None:
    config = config_dir()
    logs = Path(os.environ["TD_LOG_DIR"])
    exports = tmp_path / "user-folder"
    exports.mkdir(mode=0o755)
    export_file = exports / "exported-token.json"
    export_file.write_text("{}")  # a pre-existing token file of the user's, 0644
    os.chmod(export_file, 0o644)
    ca = str(ca_file())
    problems: list[str] = []
    files_checked: set[Path] = set()

    def step(label: str, args: list[str], *, login: bool = False) -> None:
        loosen(config, logs)
        os.chmod(export_file, 0o644)
        before = {**tree(config), **tree(logs), **tree(exports)}
        cmd = [sys.executable, "-m", "tdgui", *args]
        if login:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=umask0,
            )
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            _, err = proc.communicate(login_with_requests(url, Path(ca)) + "\n", timeout=60)
            assert proc.returncode == 0, err
        else:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, preexec_fn=umask0)
            assert result.returncode == 0, f"{label}: {result.stderr}"
        for root in (config, logs):
            problems.extend(check_written(before, root, label))
            files_checked.update(p for p, sig in tree(root).items() if before.get(p) != sig)
        if export_file.stat().st_ino != before[export_file][0]:
            files_checked.add(export_file)
            mode = stat.S_IMODE(export_file.stat().st_mode)
            if mode != 0o600:
                problems.append(f"{label}: export file is {mode:o}")

    base = sandbox.base_url
    step(
        "accounts add (file)",
        ["accounts", "add", "f11", "--provider", "sandbox", "--sandbox-url", base, "--store", "file"],
    )
    step(
        "accounts add (sql)",
        [
            "accounts",
            "add",
            "q11",
            "--provider",
            "sandbox",
            "--sandbox-url",
            base,
            "--flavor",
            "tdameritrade",
            "--store",
            "sql",
        ],
    )
    step("login (file)", ["login", "f11", "--manual"], login=True)
    step("login (sql)", ["login", "q11", "--manual"], login=True)
    step("refresh (file)", ["refresh", "f11", "--force"])
    step("refresh (sql)", ["refresh", "q11", "--force"])
    step("export", ["export", "f11", "--format", "schwab-py", "--output", str(export_file), "--keep-synced"])
    step("refresh + synced export", ["refresh", "f11", "--force"])
    step("status", ["status"])
    step("logout", ["logout", "q11"])
    # The log file after rotation (RotatingFileHandler opens a new file itself).
    loosen(logs)
    rotated = subprocess.run(
        worker_cmd("log_rotation"), capture_output=True, text=True, timeout=60, preexec_fn=umask0
    )
    assert rotated.returncode == 0, rotated.stderr
    modes = json.loads(rotated.stdout)
    problems += [
        f"log rotation: {name} is {mode}"
        for name, mode in modes.items()
        if mode != ("0o700" if name == "." else "0o600")
    ]
    kinds = sorted({p.name for p in files_checked})
    figure(
        f"row 11: umask 000, everything loosened to 0755/0644 before each of 10 commands + a log "
        f"rotation: {len(files_checked)} written files checked ({', '.join(kinds)}), "
        f"{len(problems)} not 0600/0700"
    )
    assert problems == [], "\n".join(problems)

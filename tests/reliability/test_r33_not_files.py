"""Row 33 (issue 11 #14): local files that are not files, and directories that cannot be used.

A FIFO or a link to /dev/zero where accounts.json, a status record, a token file or the SQLite
database should be; a directory where a lock file should be; a read-only config dir (a
read-only bind mount in a private mount namespace, so it binds root too); a file where
status/ should be. Must hold for every case: the command ends within its timeout (no hang),
memory stays bounded, the exit code is the documented one (2 config, 5 store) with a one-line
error, never 1 "unexpected error"; and `tdgui token` with a valid stored access token still
prints it when only the lock or status dir is unusable, but never prints an expired one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rel_support import add_sandbox_account, config_dir, log_in, make_due
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer

TIMEOUT = 15.0
TDGUI = [sys.executable, "-m", "tdgui"]
#: Peak RSS of one tdgui child: far below what reading /dev/zero for 15 s would reach.
RSS_LIMIT_KB = 300_000


#: Runs the command as its child and writes the child's peak RSS (KB) to $R33_RSS: the test
#: process's own RUSAGE_CHILDREN would include every earlier test's children.
MEASURE = (
    "import os, resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "open(os.environ['R33_RSS'], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)
PEAKS: list[int] = []


def tdgui(*args: str, wrap: list[str] | None = None) -> tuple[int | None, str, str, float]:
    """(exit code or None on a hang, stdout, stderr, seconds); records the child's peak RSS."""
    rss = Path(os.environ["TD_CONFIG_DIR"]).parent / "rss.txt"
    started = time.monotonic()
    proc = subprocess.Popen(
        [*(wrap or []), sys.executable, "-c", MEASURE, *TDGUI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "R33_RSS": str(rss)},
        start_new_session=True,  # a hung child is killed with its wrapper
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out, err, time.monotonic() - started
    PEAKS.append(int(rss.read_text()))
    return proc.returncode, out, err, time.monotonic() - started


def read_only(directory: Path) -> list[str]:
    """Run a command with `directory` bind-mounted read-only (private mount namespace)."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(directory)]


def replace_with(path: Path, kind: str) -> Callable[[], None]:
    """Put a FIFO / a /dev/zero link / a directory / a file at `path`; returns the undo."""
    saved = path.with_name(path.name + ".saved")
    if path.exists() or path.is_symlink():
        path.rename(saved)
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "dir":
        path.mkdir()
    elif kind == "file":
        path.write_text("not a directory")

    def undo() -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        if saved.exists() or saved.is_symlink():
            saved.rename(path)

    return undo


def test_not_files_and_unusable_dirs(sandbox: SandboxServer, figure) -> None:
    service = TokenService()
    add_sandbox_account(sandbox, "q33", flavor="tdameritrade", store="sql")
    log_in(service, "q33")
    add_sandbox_account(sandbox, "f33", store="file")
    tokens = log_in(service, "f33")
    access = tokens.access_token  # type: ignore[attr-defined]
    config = config_dir()
    cases: list[tuple[str, Path, str, list[str], set[int]]] = [
        ("accounts.json is a FIFO", config / "accounts.json", "fifo", ["status"], {2}),
        ("accounts.json links to /dev/zero", config / "accounts.json", "zero", ["accounts", "list"], {2}),
        ("status record is a FIFO", config / "status" / "f33.json", "fifo", ["status", "f33"], {0}),
        ("status record links to /dev/zero", config / "status" / "f33.json", "zero", ["status", "f33"], {0}),
        ("token file is a FIFO", config / "tokens" / "f33.tokens.json", "fifo", ["token", "f33"], {5}),
        (
            "token file links to /dev/zero",
            config / "tokens" / "f33.tokens.json",
            "zero",
            ["token", "f33"],
            {5},
        ),
        ("SQLite database is a FIFO", config / "tokens.sqlite3", "fifo", ["token", "q33"], {5}),
        (
            "lock path is a directory",
            config / "locks" / "f33.lock",
            "dir",
            ["refresh", "f33", "--force"],
            {5},
        ),
    ]
    seen = []
    for label, path, kind, args, codes in cases:
        undo = replace_with(path, kind)
        try:
            code, out, err, took = tdgui(*args)
        finally:
            undo()
        assert code is not None, f"{label}: `tdgui {' '.join(args)}` hung ({took:.0f} s)"
        assert code in codes, f"{label}: exit {code}: {err}"
        assert "unexpected error" not in err and err.count("\n") <= 1, f"{label}: {err}"
        if code:
            assert access not in out, label
        seen.append((label, code, took))
    peak_kb = max(PEAKS)
    assert peak_kb < RSS_LIMIT_KB, f"a child peaked at {peak_kb} KB"

    # The lock unusable but the stored access token still valid (due for refresh): served.
    unusable = {
        "lock path is a directory": (config / "locks" / "f33.lock", "dir", None),
        "status/ is a file": (config / "status", "file", None),
        "config dir read-only": (config, None, read_only(config)),
    }
    for label, (path, kind, wrap) in unusable.items():
        make_due(service, "f33", seconds_left=120)
        stored = service.read_tokens(service.account("f33"))
        assert stored is not None
        undo = replace_with(path, kind) if kind else (lambda: None)
        try:
            code, out, err, took = tdgui("token", "f33", wrap=wrap)
            assert code == 0, f"{label}: exit {code}: {err}"
            if kind == "file":  # only status/ unusable: the refresh works, the new token is printed
                assert out.strip() and out.strip() != stored.access_token, label
            else:  # no lock: no refresh, the still-valid stored token is served
                assert out.strip() == stored.access_token, label
            if kind != "file":  # status/ unusable: the refresh itself works
                code, out, err, _ = tdgui("refresh", "f33", "--force", wrap=wrap)
                assert code == 5 and "lock" in err and "unexpected" not in err, f"{label}: {code} {err}"
            code, _, err, _ = tdgui("accounts", "add", "n33", "--provider", "sandbox", wrap=wrap)
            assert code in (0, 2, 5) and "unexpected" not in err, f"{label}: accounts add -> {code}: {err}"
            if code == 0:
                TokenService().config.remove_account("n33")
        finally:
            undo()
        seen.append((label, code, took))
    # ... but an expired access token is never printed, lock or no lock.
    make_due(service, "f33", seconds_left=-5)
    undo = replace_with(config / "locks" / "f33.lock", "dir")
    try:
        code, out, err, _ = tdgui("token", "f33")
    finally:
        undo()
    assert code == 5 and out == "", (code, err)
    slowest = max(took for _, _, took in seen)
    figure(
        f"row 33: {len(cases)} non-files (FIFO, /dev/zero link, dir as lock) and "
        f"{len(unusable)} unusable dirs: 0 hangs, slowest {slowest:.1f} s, peak child RSS "
        f"{peak_kb // 1024} MB, exit codes 0/2/5 only; `token` with a valid access token served "
        "when lock or status dir unusable, an expired one never printed"
    )

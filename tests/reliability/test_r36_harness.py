"""Row 36 (issue 11 #18): scripts/with-keyring.sh leaves nothing behind.

It used to `exec dbus-run-session`, so its cleanup trap never ran: every run left a temp home
with a keyring whose password is known. Must hold, for a normal run, a failing command and a
run stopped by SIGTERM / SIGINT / SIGHUP: the command's exit code is the script's (128+N for a
signal), the temp home is gone, and no process of the run (the command, dbus-daemon,
gnome-keyring-daemon) is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.signals import with_default_signals
from rel_support import wait_for

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "with-keyring.sh"
KEYRING_ROUND_TRIP = (
    "import keyring, os; keyring.set_password('r36', 'u', 'v'); "
    "assert keyring.get_password('r36', 'u') == 'v'; print(os.environ['HOME'], flush=True)"
)


def leftovers(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith("tdgui-test-home."))


def processes_of(tmpdir: Path) -> list[str]:
    """Processes whose environment or command line mentions the run's temp dir."""
    needle = str(tmpdir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes() or needle in (entry / "cmdline").read_bytes():
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name} {cmdline}")
        except OSError:
            continue
    return found


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    return tmpdir, {**os.environ, "TMPDIR": str(tmpdir)}


def test_runs_clean_up_and_keep_the_exit_code(tmpdir_env: tuple[Path, dict[str, str]], figure) -> None:
    tmpdir, env = tmpdir_env
    ok = subprocess.run(
        [str(SCRIPT), sys.executable, "-c", KEYRING_ROUND_TRIP],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(str(tmpdir)), ok.stdout  # HOME was the run's temp home
    failed = subprocess.run([str(SCRIPT), "sh", "-c", "exit 7"], env=env, capture_output=True, timeout=60)
    assert failed.returncode == 7
    assert leftovers(tmpdir) == [], "a run left its temp home (and keyring) behind"
    assert wait_for(lambda: processes_of(tmpdir) == [], timeout=10), processes_of(tmpdir)

    stopped = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        proc = subprocess.Popen(
            with_default_signals([str(SCRIPT), "sh", "-c", "echo started; exec sleep 60"]),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        proc.send_signal(sig)
        code = proc.wait(timeout=20)
        assert code == 128 + sig, f"{sig.name}: exit {code}"
        assert leftovers(tmpdir) == [], f"{sig.name}: the temp home was left behind"
        assert wait_for(lambda: processes_of(tmpdir) == [], timeout=10), f"{sig.name}: {processes_of(tmpdir)}"
        stopped.append(sig.name)
    figure(
        "row 36: with-keyring.sh: a keyring round trip (exit 0), a failing command (exit 7) and "
        f"runs stopped by {', '.join(stopped)} (exit 128+N): 0 temp homes, 0 processes left"
    )

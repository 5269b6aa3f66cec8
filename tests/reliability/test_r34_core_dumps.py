"""Row 34 (issue 11 #15): no tdgui process that holds secrets can leave a core dump.

A real `tdgui login NAME --manual` (it holds the PKCE verifier and state while it waits for
the redirect) is started with an unlimited core limit, the way a desktop session may start
it, and without any capability (setpriv: uid 0 but no CAP_SYS_PTRACE, so the kernel's
same-user rules apply as for an ordinary user). Must hold while it waits: /proc/PID/limits
shows a core limit of 0 (soft and hard), and the process is not dumpable: another process of
the same user without CAP_SYS_PTRACE cannot open its /proc/PID/environ (ptrace access mode
read, refused for non-dumpable tasks). A plain Python process started the same way is the
control (unlimited, readable). A script importing the Python API gets a soft core limit of 0
and stays debuggable (dumpable).
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

#: uid 0 without any capability: same-user ptrace rules, as for an ordinary user.
NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]


def unlimited_cores() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def core_limits(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            soft, hard = line.split()[4:6]
            return soft, hard
    raise AssertionError("no core limit line")


def observe(cmd: list[str], ready: str) -> tuple[tuple[str, str], bool]:
    """Start `cmd`; once it printed a line starting with `ready`: (core limits, memory readable)."""
    proc = subprocess.Popen(
        [*NO_CAPS, *cmd],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=unlimited_cores,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(ready), (line, proc.stderr.read() if proc.stderr else "")
        probe = subprocess.run(
            [*NO_CAPS, "head", "-c", "1", f"/proc/{proc.pid}/environ"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        return core_limits(proc.pid), probe.returncode == 0
    finally:
        proc.kill()
        proc.communicate()


def test_tdgui_processes_are_not_dumpable(figure) -> None:
    added = subprocess.run(
        [sys.executable, "-m", "tdgui", "accounts", "add", "d34", "--provider", "sandbox", "--store", "file"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    sleeper = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"]
    control = observe(sleeper, "ready")
    assert control == (("unlimited", "unlimited"), True), control  # the observation works
    limits, readable = observe([sys.executable, "-m", "tdgui", "login", "d34", "--manual"], "https://")
    assert limits == ("0", "0"), limits
    assert not readable, "the tdgui process is dumpable: a same-user process read its /proc/PID/environ"

    api = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, tdgui.api; from tdgui.core.hardening import is_dumpable; "
            "print(resource.getrlimit(resource.RLIMIT_CORE)[0], is_dumpable())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=unlimited_cores,
        check=False,
    )
    assert api.returncode == 0 and api.stdout.split() == ["0", "True"], (api.stdout, api.stderr)
    figure(
        "row 34: `tdgui login --manual` started with unlimited cores: core limit "
        f"{limits[0]}/{limits[1]} (soft/hard), not dumpable (a same-user process without "
        "CAP_SYS_PTRACE cannot read its /proc/PID/environ); the control process: unlimited, "
        "readable; the Python API: soft limit 0, still debuggable"
    )

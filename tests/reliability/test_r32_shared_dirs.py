"""Row 32 (issue 11 #13): tdgui never changes the mode of a directory it did not create.

Run as root (as the issue found it), `TD_CONFIG_DIR` or `TD_LOG_DIR` pointing at a shared
directory: sticky and world-writable like /tmp, world-writable, or another user's. Must hold,
for read-only (`status`, `accounts list`) and writing commands (`accounts add`) alike: the
directory's mode and owner are unchanged, the command fails with a clear one-line error
(exit 2, naming the directory), and nothing is created in it. A directory of the user's own
that tdgui did not make (0755, other files in it) keeps its mode too; missing directories
are created 0700 at every level.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from rel_support import run

SHARED = {
    "sticky 1777 (like /tmp)": (0o1777, None),
    "world-writable 0777": (0o777, None),
    "another user's 0755": (0o755, 65534),
}
COMMANDS = [
    ["status"],
    ["accounts", "list"],
    ["accounts", "add", "x32", "--provider", "sandbox", "--store", "file"],
]


def tdgui(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = run([sys.executable, "-m", "tdgui", *args], env=env, timeout=60)
    return result.returncode, result.stderr


def signature(path: Path) -> tuple[int, int, list[str]]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode) | (st.st_mode & stat.S_ISVTX), st.st_uid, sorted(os.listdir(path))


def test_shared_dirs_are_refused_and_left_alone(tmp_path: Path, figure) -> None:
    checked = 0
    for label, (mode, owner) in SHARED.items():
        for which in ("TD_CONFIG_DIR", "TD_LOG_DIR"):
            shared = tmp_path / f"{which}-{mode:o}-{owner}"
            shared.mkdir()
            os.chmod(shared, mode)
            if owner is not None:
                os.chown(shared, owner, owner)
            env = {
                **os.environ,
                "TD_CONFIG_DIR": str(tmp_path / "own-config"),
                "TD_LOG_DIR": str(tmp_path / "own-logs"),
            }
            env[which] = str(shared)
            before = signature(shared)
            for args in COMMANDS:
                code, err = tdgui(args, env)
                assert signature(shared) == before, f"{label} {which}: {args} changed {shared}"
                assert code == 2, f"{label} {which}: {args} -> {code}: {err}"
                assert str(shared) in err and err.count("\n") == 1, err
                checked += 1

    # Directories of the user's own that tdgui did not create (like /etc or /var/log as root):
    # used, but their mode is kept.
    own = tmp_path / "projects"
    own_log = tmp_path / "var" / "log"
    for directory, other in ((own, "notes.txt"), (own_log, "syslog")):
        directory.mkdir(parents=True)
        os.chmod(directory, 0o755)
        (directory / other).write_text("not tdgui's")
    env = {**os.environ, "TD_CONFIG_DIR": str(own), "TD_LOG_DIR": str(own_log)}
    code, err = tdgui(COMMANDS[2], env)
    assert code == 0, err
    assert (own_log / "tdgui.log").exists()
    assert stat.S_IMODE(own.stat().st_mode) == 0o755
    assert stat.S_IMODE(own_log.stat().st_mode) == 0o755
    assert stat.S_IMODE((own / "accounts.json").stat().st_mode) == 0o600

    # Missing directories: every level created 0700, whatever the umask.
    deep = tmp_path / "new" / "deeper" / "config"
    env = {**os.environ, "TD_CONFIG_DIR": str(deep), "TD_LOG_DIR": str(tmp_path / "new" / "logs")}
    result = run(
        [
            sys.executable,
            "-c",
            "import os, runpy, sys; os.umask(0); sys.argv=['tdgui', *sys.argv[1:]]; "
            "runpy.run_module('tdgui', run_name='__main__')",
            *COMMANDS[2],
        ],
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for level in (tmp_path / "new", deep.parent, deep, tmp_path / "new" / "logs"):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level
    figure(
        f"row 32: as root, {checked} commands (read-only and writing) with TD_CONFIG_DIR or "
        f"TD_LOG_DIR on {len(SHARED)} kinds of shared directory: 0 modes changed, every one "
        "refused with exit 2 naming the directory; own non-tdgui dirs (a config dir, a log dir) "
        "kept 0755; new dirs 0700"
    )

"""Qt is a default dependency; where it is missing `tdgui` says how to install it in one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]

#: Runs tdgui with PySide6 made unimportable, as on a `pip install --no-deps` server.
BLOCKER = """
import importlib.abc, sys
class NoQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("PySide6", "shiboken6"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoQt())
for cached in [m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6")]:
    del sys.modules[cached]
from tdgui.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_pyside6_is_a_default_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("PySide6") for dep in project["dependencies"])


@pytest.mark.parametrize("argv", [[], ["gui"], ["--self-test"], ["--minimized"]])
def test_without_qt_one_line_with_the_install_command(argv: list[str], tmp_path: Path) -> None:
    env = dict(os.environ, TD_CONFIG_DIR=str(tmp_path / "config"), TD_LOG_DIR=str(tmp_path / "logs"))
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, *argv], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "unexpected error" not in lines[0]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pin = next(dep for dep in project["dependencies"] if dep.startswith("PySide6"))
    assert f"{sys.executable} -m pip install {pin}" in lines[0]
    assert result.stdout == ""


def test_cli_commands_still_work_without_qt(tmp_path: Path) -> None:
    env = dict(os.environ, TD_CONFIG_DIR=str(tmp_path / "config"), TD_LOG_DIR=str(tmp_path / "logs"))
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, "accounts", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "no accounts yet" in result.stdout

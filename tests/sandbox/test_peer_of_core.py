"""The sandbox is a peer of core: nothing in tdgui/core imports tdgui.sandbox (nor qt, cli, PySide6)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "tdgui" / "core"
FORBIDDEN = ("tdgui.sandbox", "tdgui.qt", "tdgui.cli", "PySide6")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_core_never_imports_the_sandbox_qt_or_cli() -> None:
    crossing = [
        f"{path.relative_to(CORE.parent.parent)}:{line}: {module}"
        for path in sorted(CORE.rglob("*.py"))
        for line, module in imported_modules(path)
        if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN)
    ]
    assert crossing == []


def test_loading_core_loads_no_sandbox() -> None:
    """Also at run time: importing every core module (and a sandbox account's profile and
    browser login) must not pull the sandbox in through a side door."""
    code = (
        "import importlib, pkgutil, sys, tdgui.core as c;"
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(c.__path__, 'tdgui.core.')];"
        "from pathlib import Path; from tdgui.core.config import sandbox_account;"
        "p = sandbox_account('x').resolve_provider(Path('/nonexistent')); p.pinned_sha256();"
        "print(sorted(m for m in sys.modules if m.startswith(('tdgui.sandbox', 'tdgui.qt', 'tdgui.cli'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

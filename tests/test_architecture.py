"""The house rules a tool can check: every module says what it is for and logs under its own name."""

from __future__ import annotations

import ast
from pathlib import Path

TDGUI = Path(__file__).resolve().parents[1] / "tdgui"


def modules() -> list[Path]:
    return sorted(TDGUI.rglob("*.py"))


def test_every_module_has_a_one_line_docstring() -> None:
    missing = [
        str(path.relative_to(TDGUI))
        for path in modules()
        if not (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip()
    ]
    assert not missing, missing


def _logger_name_ok(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "__name__"
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        return isinstance(first, ast.FormattedValue) and _logger_name_ok(first.value)
    return False


def test_loggers_are_named_after_their_module() -> None:
    """`getLogger(__name__)`: a log line says where it came from, and renaming a module moves it."""
    bad = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and node.args
                and not _logger_name_ok(node.args[0])
            ):
                bad.append(f"{path.relative_to(TDGUI)}:{node.lineno}")
    assert not bad, bad

"""Reliability rows (docs/reliability.md): shared fixtures and the figures summary.

Every test prints its figure ("row N: ...") and records it here; the terminal summary lists
them all, so `make soak` ends with the table docs/reliability.md quotes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rel_support import SOAK, start_sandbox_for_test
from tdgui.sandbox import SandboxServer

_FIGURES: list[str] = []


@pytest.fixture
def figure() -> Callable[[str], None]:
    """Print a figure line and keep it for the end-of-run summary."""

    def record(text: str) -> None:
        print(text)
        _FIGURES.append(text)

    return record


@pytest.fixture
def sandbox(isolated_config: Path) -> Iterator[SandboxServer]:
    server = start_sandbox_for_test()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rotating_sandbox(isolated_config: Path) -> Iterator[SandboxServer]:
    server = start_sandbox_for_test(rotate=True)
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak variants run far longer than pyproject's 300 s per-test timeout; outside `make
    soak` (TD_SOAK=1) the soak-only tests are deselected, never counted as skipped passes."""
    if SOAK:
        for item in items:
            if "reliability" in item.nodeid:
                item.add_marker(pytest.mark.timeout(3600))
        return
    dropped = [item for item in items if item.get_closest_marker("soak") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item.get_closest_marker("soak") is None]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    mode = "soak (TD_SOAK=1)" if SOAK else "default (short)"
    terminalreporter.section(f"reliability figures, {mode} run")
    for line in sorted(_FIGURES, key=_row_key):
        terminalreporter.write_line(line)


def _row_key(line: str) -> tuple[int, str]:
    match = re.match(r"row (\d+)", line)
    return (int(match.group(1)) if match else 99, line)

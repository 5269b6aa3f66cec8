"""Fixtures of the sandbox tests: servers on OS-chosen ports with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tdgui.sandbox import SandboxServer, sandbox_state_dir

from .support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state_dir(isolated_config: Path) -> Path:
    return sandbox_state_dir(isolated_config)


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CA for the module's servers: certificates are made once, not per test."""
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture
def server(shared_dir: Path, clock: FakeClock) -> Iterator[SandboxServer]:
    with SandboxServer(shared_dir, clock=clock) as srv:
        yield srv


@pytest.fixture
def rotating(shared_dir: Path, clock: FakeClock) -> Iterator[SandboxServer]:
    with SandboxServer(shared_dir, clock=clock, rotate=True) as srv:
        yield srv

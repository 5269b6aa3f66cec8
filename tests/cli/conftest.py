"""Fixtures of the CLI tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _runner_not_hardened(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tdgui.cli.main` called in this process must not make pytest itself non-dumpable with a
    hard core limit of 0: that cannot be undone, and later tests start children with cores on.
    (Every real `tdgui` process these tests start is hardened; tests/reliability row 34.)"""
    import tdgui.core.hardening

    monkeypatch.setattr(tdgui.core.hardening, "disable_core_dumps", lambda **_kw: None)

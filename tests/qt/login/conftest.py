"""Fixtures of the login tests: every login a test started is shut down with the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _logins_shut_down() -> Iterator[None]:
    from qt.login.helpers import shut_down_started_logins

    yield
    shut_down_started_logins()

"""Time comes from a clock object so tests can move it; wall time is epoch seconds."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time, epoch seconds."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ManualClock:
    """A clock tests move by hand; `sleep` advances it instead of waiting."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.current = start

    def now(self) -> float:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.current += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.current += seconds


SYSTEM_CLOCK = SystemClock()

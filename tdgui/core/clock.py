"""Time comes from a clock object so tests can move it; wall time is epoch seconds."""

from __future__ import annotations

import time
from pathlib import Path
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

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_reference() -> tuple[str, float] | None:
    """(boot id, seconds since boot counting suspend): a clock no one can set, for this boot only.

    Linux's CLOCK_BOOTTIME keeps running through suspend and ignores changes of the wall clock,
    so the time between two readings in the same boot is the real time that passed. None where
    the platform has no such clock (then tdgui can only trust the wall clock).
    """
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:
        return None
    try:
        boot_id = _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return None
    return boot_id, time.clock_gettime(boottime)

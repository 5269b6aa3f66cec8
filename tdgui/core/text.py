"""Times and durations as people read them: one formatter for the CLI, the desktop app and messages."""

from __future__ import annotations

import datetime as _dt
import math

#: Beyond this a provider's answer was nonsense; say so instead of overflowing (year 9999 limits).
_LAST_SHOWABLE = 253_402_300_799.0


def fmt_time(epoch: float | None) -> str:
    """Local absolute time, e.g. '2025-03-01 14:05:09'; '-' when unknown."""
    if epoch is None:
        return "-"
    if not math.isfinite(epoch) or not 0 <= epoch <= _LAST_SHOWABLE:
        return "never"
    try:
        return _dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "never"


def fmt_duration(seconds: float) -> str:
    """A countdown: '6d 23h', '4h 05m', '12m 09s', '45 s'; zero or less reads 'expired'."""
    if not math.isfinite(seconds):
        return "expired" if seconds < 0 else "forever"
    if seconds <= 0:
        return "expired"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs} s"


def fmt_until(at: float | None, now: float) -> str:
    """'2025-03-01 14:05:09 (in 4h 05m)', '... (expired)', or '-' when unknown (CLI status lines)."""
    if at is None:
        return "-"
    left = at - now
    return f"{fmt_time(at)} (expired)" if left <= 0 else f"{fmt_time(at)} (in {fmt_duration(left)})"

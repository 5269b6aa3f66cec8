"""Small text formatters for times and durations shown in the UI."""

from __future__ import annotations

import datetime as _dt


def fmt_time(epoch: float | None) -> str:
    """Local absolute time, e.g. '2025-03-01 14:05:09'; '-' when unknown."""
    if epoch is None:
        return "-"
    return _dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float) -> str:
    """A countdown: '6d 23h', '4h 05m', '12m 09s', '45 s'; negative values read 'expired'."""
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

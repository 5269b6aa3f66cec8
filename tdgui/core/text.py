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


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def fmt_when(epoch: float | None) -> str:
    """Local day and time as people say it, e.g. 'Tue 9 Dec 20:11'; '-' when unknown.

    English names on purpose, not strftime's %a/%b: those follow the C locale of the process,
    and every other word the app shows is English.
    """
    if epoch is None:
        return "-"
    if not math.isfinite(epoch) or not 0 <= epoch <= _LAST_SHOWABLE:
        return "never"
    try:
        at = _dt.datetime.fromtimestamp(epoch)
    except (OverflowError, OSError, ValueError):
        return "never"
    return f"{_DAYS[at.weekday()]} {at.day} {_MONTHS[at.month - 1]} {at.hour:02d}:{at.minute:02d}"


def next_login_text(refresh_expires_at: float | None, *, needed_now: bool) -> str:
    """'Next login needed: Tue 9 Dec 20:11' (window and tray), 'now', or 'not known'."""
    if needed_now:
        return "Next login needed: now"
    if refresh_expires_at is None:
        return "Next login needed: not known (the provider states no end)"
    return f"Next login needed: {fmt_when(refresh_expires_at)}"


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

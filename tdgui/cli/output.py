"""What the command line prints for people: status blocks and one-line results (stderr)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from tdgui.core.text import fmt_time, fmt_until

if TYPE_CHECKING:  # only a type here: `tdgui token` and `refresh` need not import the status module
    from tdgui.core.status import AccountStatus


def say(message: str) -> None:
    """A result or progress line for the person at the terminal: stderr, so stdout stays data."""
    print(message, file=sys.stderr, flush=True)


def print_status(status: AccountStatus) -> None:
    now = time.time()
    print(f"{status.name}: {status.state.value}")
    print(f"  provider        {status.provider}   store {status.store}")
    print(f"  access token    {fmt_until(status.access_expires_at, now)}")
    print(f"  refresh token   {fmt_until(status.refresh_expires_at, now)}")
    last = "-"
    if status.last_refresh_at:
        last = fmt_time(status.last_refresh_at) + (" ok" if status.last_refresh_ok else " failed")
    print(f"  last refresh    {last}")
    if status.last_error:
        print(f"  last error      {status.last_error}")
    for warning in status.warnings:
        if warning != status.last_error:
            print(f"  warning         {warning}")


def valid_until(at: float) -> str:
    return fmt_until(at, time.time())


def open_browser_announcing(url: str) -> None:
    """The system browser for a login, with the URL on stderr in case none opens."""
    from tdgui.core.loopback import open_browser_telling

    open_browser_telling(url, say)

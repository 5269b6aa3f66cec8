"""Remember this device: what stays in an account's device dir between logins (cookies only). No Qt.

The login child and the app both prune: the child before it opens the profile, the app once
the child has exited (Chromium writes its last files, e.g. `Network Persistent State`, while
the process goes down, after anything the child itself could do).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

#: What a remembered device keeps: Chromium's cookie database and its journal.
DEVICE_KEEP = frozenset({"Cookies", "Cookies-journal"})


def prune_device_dir(path: Path) -> None:
    """Leave only the cookie files in a remembered device's dir (no local storage, cache,
    visited links or HSTS state of the broker's pages). A symlink is removed, never followed."""
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if entry.name in DEVICE_KEEP and entry.is_file() and not entry.is_symlink():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)

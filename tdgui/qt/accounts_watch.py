"""Accounts added, edited or removed by the CLI (another process) show up in the running window."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer

log = logging.getLogger(__name__)

#: Changes closer together than this are one reload (an edit is a temp write plus a rename).
SETTLE_MS = 150


class AccountsWatch(QObject):
    """Calls `changed` when accounts.json is replaced, created or deleted (issue 14, defect 12).

    Config writes are atomic renames (tdgui.core.fsutil.atomic_write): the watched file is
    replaced by a new inode, and a watch on the file alone stops firing after the first rename.
    So the directory is watched (a rename in it changes it), and each change is confirmed by
    comparing the file's identity (inode, size, mtime), so status records and locks written
    next to it do not reload anything. Before the first account the directory may not exist:
    then its nearest existing parent is watched until it appears.
    """

    def __init__(self, path: Path, changed: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self._changed = changed
        self._watcher = QFileSystemWatcher(self)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self._check)
        self._watcher.directoryChanged.connect(self._poke)
        self._watcher.fileChanged.connect(self._poke)
        self._seen = self._identity()
        self._arm()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _arm(self) -> None:
        """Watch the file's directory (or, while it is missing, the nearest existing parent)."""
        target = self.path.parent
        while not target.is_dir() and target != target.parent:
            target = target.parent
        wanted = {str(target)} | ({str(self.path)} if self.path.is_file() else set())
        current = set(self._watcher.directories()) | set(self._watcher.files())
        stale = sorted(current - wanted)
        if stale:
            self._watcher.removePaths(stale)
        missing = sorted(wanted - current)
        if missing:
            self._watcher.addPaths(missing)

    def _poke(self, _path: str) -> None:
        self._timer.start()

    def _check(self) -> None:
        self._arm()
        identity = self._identity()
        if identity == self._seen:
            return
        self._seen = identity
        log.debug("%s changed on disk: reloading the accounts", self.path)
        self._changed()

    def close(self) -> None:
        self._timer.stop()
        paths = self._watcher.directories() + self._watcher.files()
        if paths:
            self._watcher.removePaths(paths)

"""Private files: 0700 directories, 0600 files, atomic writes (temp file + fsync + rename)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) and force it to 0700 whatever the umask or earlier mode."""
    # mkdir(parents=True) creates the missing parents with the umask's mode (0777 under
    # umask 000), so create each missing level ourselves and force it to 0700.
    missing = []
    level = path
    while not level.exists():
        missing.append(level)
        if level.parent == level:
            break
        level = level.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True, mode=DIR_MODE)
        if os.name == "posix":
            os.chmod(directory, DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(20, "not a directory", str(path))
    if os.name == "posix":
        os.chmod(path, DIR_MODE)
    return path


def atomic_write(path: Path, data: bytes | str, *, own_dir: bool = True) -> None:
    """Replace `path` with `data` so a reader sees the old or the new content, never a mix.

    `own_dir=False` is for files in the user's folders (exports): the folder is created 0700
    if missing but an existing one keeps its mode.
    """
    if own_dir or not path.parent.exists():
        private_dir(path.parent)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 regardless of umask; fchmod again in case of odd platforms.
        if os.name == "posix":
            os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name == "posix":
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

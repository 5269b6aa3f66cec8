"""FileStore: one private file per record (0600 in a 0700 directory), replaced atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

from tdgui.core import fsutil, paths
from tdgui.core.errors import StoredDataError, StoreUnavailable
from tdgui.core.stores._common import encode_value, refuse_shared_dir
from tdgui.core.stores.base import TokenStore, check_key

# A temp file of atomic_write older than this is debris of a writer that was killed between
# mkstemp and rename; younger ones may belong to a writer still running in another process.
_STALE_TEMP_SECONDS = 60.0


class FileStore(TokenStore):
    """Records as plain files: not encrypted, protected by file permissions only (explicit opt-in)."""

    kind = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def default(cls) -> FileStore:
        """The store `--store file` uses: `<config dir>/tokens`."""
        return cls(paths.config_dir() / "tokens")

    def path_for(self, key: str) -> Path:
        """`ACCOUNT/tokens` -> `ACCOUNT.tokens.json`, `ACCOUNT/secret` -> `ACCOUNT.secret`.

        The suffixes (".tokens.json", ".secret", ".record" for a bare key) are none a suffix of
        another, so the mapping is one to one; names start with [A-Za-z0-9] (check_key), so
        they never collide with the dot-prefixed temp files of atomic_write.
        """
        check_key(key)
        account, _, part = key.partition("/")
        suffix = {"tokens": ".tokens.json", "secret": ".secret", "": ".record"}[part]
        return self.directory / f"{account}{suffix}"

    def read(self, key: str) -> str | None:
        path = self.path_for(key)
        try:
            # Bytes, not read_text(): universal-newline translation would turn "\r\n" into "\n".
            # Bounded and non-blocking: a FIFO or a link to /dev/zero planted here must not
            # hang `tdgui token` or eat memory (issue 11 #14).
            raw = fsutil.read_private_bytes(path, fsutil.RECORD_LIMIT)
        except FileNotFoundError:
            return None
        except (fsutil.NotRegularFile, fsutil.FileTooLarge) as exc:
            raise StoredDataError(
                f"token file {exc.strerror} (damaged or planted?): remove it and log in again"
            ) from None
        except OSError as exc:
            raise self._unavailable("read", path, exc) from exc
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise StoredDataError(
                f"token file {path} is not valid UTF-8 (corrupt?): delete it and log in again"
            ) from None

    def write(self, key: str, value: str) -> None:
        path = self.path_for(key)
        raw = encode_value(value)
        refuse_shared_dir(self.directory)
        try:
            # atomic_write forces 0700 on the directory and creates the file 0600 by mkstemp
            # + rename, so a pre-existing 0644 file or 0755 directory is fixed on every write,
            # whatever the umask.
            fsutil.atomic_write(path, raw)
        except OSError as exc:
            raise self._unavailable("write", path, exc) from exc
        self._remove_temp_debris(path, older_than=_STALE_TEMP_SECONDS)

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            path.unlink(missing_ok=True)
            _fsync_dir(self.directory)
        except OSError as exc:
            raise self._unavailable("delete", path, exc) from exc
        # A delete means "no copy of this secret is left here": include a killed writer's temps.
        self._remove_temp_debris(path, older_than=0.0)

    def describe(self) -> str:
        return f"files in {self.directory} (not encrypted: protected only by file permissions 0600)"

    def check_available(self) -> None:
        """The directory can be created (0700) and written to."""
        refuse_shared_dir(self.directory)
        try:
            fsutil.private_dir(self.directory)
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable", str(self.directory))
        except OSError as exc:
            raise self._unavailable("use", self.directory, exc) from exc

    def _remove_temp_debris(self, path: Path, *, older_than: float) -> None:
        """Remove temp files atomic_write left for `path` when its writer was SIGKILLed."""
        now = time.time()
        with contextlib.suppress(OSError):
            for temp in self.directory.glob(f".{path.name}.*.tmp"):
                with contextlib.suppress(OSError):
                    if now - temp.stat().st_mtime >= older_than:
                        temp.unlink()

    @staticmethod
    def _unavailable(action: str, path: Path, exc: OSError) -> StoreUnavailable:
        reason = exc.strerror or type(exc).__name__
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # Issue 11 #9: say plainly that nothing was stored. atomic_write wrote a temp file
            # and renames only after fsync succeeded, so the old record is still whole.
            return StoreUnavailable(
                f"cannot {action} token file {path}: the disk is full ({reason}); the file "
                "was left as it was, so any new tokens were NOT saved. Free some space; if "
                "the provider rotated the refresh token, log in again"
            )
        return StoreUnavailable(
            f"cannot {action} token file {path}: {reason}. "
            "Check that the directory exists, is yours and is writable (mode 0700), "
            "or choose another store with --store"
        )


def _fsync_dir(directory: Path) -> None:
    """Make a rename/unlink durable: the directory entry lives in the directory (POSIX)."""
    if os.name != "posix" or not directory.exists():
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

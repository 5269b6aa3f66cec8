"""Private files: 0700 directories, 0600 files, atomic writes that never follow a link, bounded reads."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from tdgui.core.errors import ConfigError, StoreUnavailable

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600

#: Bounds for files tdgui reads back (issue 11 #14: a symlink to /dev/zero grew memory without
#: bound). Far above anything tdgui writes: accounts.json is a few KB, a token record well
#: under the 1 MiB a token response may have, a status record a few hundred bytes.
CONFIG_LIMIT = 4 * 1024 * 1024
RECORD_LIMIT = 4 * 1024 * 1024
STATUS_LIMIT = 1024 * 1024

#: What tdgui puts in the directories it manages (see _tdgui_made).
_OWN_ENTRIES = frozenset(
    {
        "accounts.json",
        ".accounts.lock",
        "tokens.sqlite3",
        "status",
        "locks",
        "tokens",
        "sandbox",
        "logs",
        "run",
        "synced",  # core/export.py: which tokens the kept export files hold
    }
)
_OWN_PREFIXES = ("tdgui.log", "instance-")
_OWN_SUFFIXES = (".json", ".secret", ".record", ".lock", ".pem", ".tmp", "-wal", "-shm", "-journal")
#: The platform dirs' leaf (~/.config/tdgui). Not status/locks/log...: TD_LOG_DIR=/var/log or
#: /run as root must not be tightened for its name; those are judged by what they hold.
_OWN_DIR_NAMES = frozenset({"tdgui"})


class SharedDirectoryError(ConfigError):
    """A directory tdgui was pointed at is shared (sticky, world-writable or another user's)."""


class LockUnavailable(StoreUnavailable):
    """The per-account lock file cannot be created or opened (read-only dir, not a file...)."""


class NotRegularFile(OSError):
    """What should be a regular file is a FIFO, a device, a directory or a socket."""


class FileTooLarge(OSError):
    """A file is larger than tdgui ever writes: broken or planted, not read."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def shared_reason(st: os.stat_result) -> str | None:
    """Why a directory with this stat is not private to the current user, or None."""
    if os.name != "posix":
        return None
    if st.st_mode & stat.S_ISVTX:
        return "a shared directory (sticky bit, like /tmp)"
    if st.st_mode & stat.S_IWOTH:
        return "writable by every user"
    if st.st_uid != os.geteuid():
        return f"owned by another user (uid {st.st_uid})"
    return None


def check_not_shared(path: Path, *, what: str = "directory") -> None:
    """SharedDirectoryError if `path` (an existing directory) is shared with other users."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    reason = shared_reason(st)
    if reason:
        raise SharedDirectoryError(
            f"{what} {path} is {reason}: tdgui keeps tokens and settings only in a private "
            "directory of your own (it does not change the mode of a directory it did not "
            "create); point TD_CONFIG_DIR / TD_LOG_DIR at a new directory"
        )


def _tdgui_made(path: Path) -> bool:
    """True for a directory tdgui created: a name tdgui gives, or holding only tdgui's files.

    Issue 11 #13: tdgui must not chmod a directory it did not create (TD_CONFIG_DIR=/etc as
    root would make /etc 0700), while row 11 wants a loosened (0755) config dir tightened.
    """
    if path.name in _OWN_DIR_NAMES:
        return True
    try:
        with os.scandir(path) as entries:
            for count, entry in enumerate(entries):
                name = entry.name
                if not (
                    name in _OWN_ENTRIES or name.startswith(_OWN_PREFIXES) or name.endswith(_OWN_SUFFIXES)
                ):
                    return False
                if count >= 1000:
                    return False
    except OSError:
        return False
    return True


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) 0700; tighten an existing one only if tdgui made it.

    A shared directory (sticky, world-writable, another user's) is refused with
    SharedDirectoryError and never chmodded (issue 11 #13).
    """
    # mkdir(parents=True) creates the missing parents with the umask's mode (0777 under
    # umask 000), so create each missing level ourselves and force it to 0700.
    missing = []
    level = path
    while not os.path.lexists(level):
        missing.append(level)
        if level.parent == level:
            break
        level = level.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=DIR_MODE)
            if os.name == "posix":
                os.chmod(directory, DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(20, "not a directory", str(path))
    check_not_shared(path)
    if os.name == "posix" and path not in missing:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode != DIR_MODE and _tdgui_made(path):
            os.chmod(path, DIR_MODE)
    return path


def check_link_components(directory: Path) -> None:
    """OSError(ELOOP) if a symlink owned by another user (not root) is on the way to `directory`.

    The kernel's fs.protected_symlinks does this for sticky directories, but it may be off
    (it is on this CI machine): a link planted in /tmp must not redirect a write (issue 11 #5).
    """
    if os.name != "posix":
        return
    me = os.geteuid()
    current = Path(directory.anchor or "/")
    for part in directory.parts[1:]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in (me, 0):
            raise OSError(
                errno.ELOOP, f"{current} is a symbolic link owned by another user (uid {st.st_uid})"
            )


def atomic_write(path: Path, data: bytes | str, *, own_dir: bool = True) -> None:
    """Replace `path` with `data` so a reader sees the old or the new content, never a mix.

    Never writes through a link: the data goes to a new 0600 temp file (O_EXCL|O_NOFOLLOW) in
    the target's directory, renamed over the target relative to one directory fd; a target
    that is a symlink (or not a regular file) is refused with OSError (issue 11 #5). Refusing,
    not replacing the link: a user's own link (a token file kept in a synced folder) would be
    broken silently, and a planted one deserves a clear error rather than a quiet rename.

    `own_dir=False` is for files in the user's folders (exports): the folder is created 0700
    if missing but an existing one keeps its mode.
    """
    if own_dir or not path.parent.exists():
        private_dir(path.parent)
    raw = data.encode() if isinstance(data, str) else data
    if os.name != "posix":
        _atomic_write_portable(path, raw)
        return
    check_link_components(path.parent)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        name = path.name
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(
                    errno.EEXIST if stat.S_ISLNK(st.st_mode) else errno.EINVAL,
                    f"{path} is {_kind(st.st_mode)}; tdgui does not write through links or over "
                    "special files: remove it or choose another path",
                )
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, FILE_MODE, dir_fd=dir_fd)
        try:
            os.fchmod(fd, FILE_MODE)  # the umask may have removed bits, never added: be explicit
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            # rename(2) replaces the directory entry itself: a link swapped in after the check
            # above is replaced, never followed.
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _atomic_write_portable(path: Path, raw: bytes) -> None:
    """Windows: no dir fds; mkstemp + os.replace (which also replaces, not follows, a link)."""
    import tempfile

    if path.is_symlink():
        raise NotRegularFile(errno.EEXIST, f"{path} is a symbolic link; tdgui does not write through links")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_private_bytes(path: Path, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of regular file `path`, at most `limit`; never blocks, never reads unbounded.

    O_NONBLOCK: opening a FIFO for reading would wait for a writer forever (issue 11 #14);
    fstat then refuses anything but a regular file (FIFO, /dev/zero through a link...) with
    NotRegularFile, and more than `limit` bytes with FileTooLarge. FileNotFoundError as usual.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"{path} is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise FileTooLarge(errno.EFBIG, f"{path} is larger than {limit} bytes")
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        raw = b"".join(chunks)
        if len(raw) > limit:  # grew after fstat
            raise FileTooLarge(errno.EFBIG, f"{path} is larger than {limit} bytes")
        return raw
    finally:
        os.close(fd)


def read_private_text(path: Path, limit: int, *, follow_symlinks: bool = True) -> str:
    """read_private_bytes decoded as UTF-8 (UnicodeDecodeError if it is not)."""
    return read_private_bytes(path, limit, follow_symlinks=follow_symlinks).decode("utf-8")


@contextlib.contextmanager
def kernel_lock(path: Path, timeout: float, *, root: Path | None = None) -> Iterator[None]:
    """An flock-style lock file `path` (0600 in a 0700 dir), released by the kernel if we die.

    `root`: a directory above the lock's (the config dir) that is kept 0700 too.

    Anything that keeps the lock from being taken (read-only or foreign directory, the lock
    path a directory or a FIFO) is LockUnavailable (exit 5), not an "unexpected error";
    filelock.Timeout passes through. Errors of the locked block pass through untouched.
    """
    from filelock import FileLock, Timeout

    try:
        if root is not None:
            private_dir(root)
        private_dir(path.parent)
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(errno.EINVAL, f"{path} is {_kind(st.st_mode)}, not a lock file")
        lock = FileLock(str(path), timeout=timeout, mode=FILE_MODE)
        lock.acquire()
    except Timeout:
        raise
    except (OSError, ConfigError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LockUnavailable(
            f"cannot take the lock {path}: {reason}. Check that the config dir and its locks/ "
            "directory are yours and writable"
        ) from exc
    try:
        yield
    finally:
        lock.release()

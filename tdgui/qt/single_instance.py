"""One app per user and config dir: a second launch asks the first to show its window, then exits.

The socket lives in the user's private runtime dir, never in /tmp, and both ends check the
other's uid (issue 11 #16: another local user squatted the predictable /tmp socket and so kept
the app from starting, and could have told it to show its window).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import logging
import os
import socket as pysocket
import stat
import struct
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from tdgui.core import fsutil

log = logging.getLogger(__name__)
MESSAGE = b"activate\n"
#: sun_path is 108 bytes on Linux, 104 on macOS (with the terminating NUL).
_MAX_SOCKET_PATH = 100


def instance_key(config_dir: Path) -> str:
    """The server name: a socket path in a private 0700 directory (a pipe name on Windows)."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = "user"
    digest = hashlib.sha256(f"{user}\0{config_dir.resolve()}".encode()).hexdigest()[:20]
    if os.name != "posix":
        return f"tdgui-{digest}"  # a named pipe; UserAccessOption limits it to this user
    for directory in _runtime_dirs(config_dir):
        path = directory / f"instance-{digest}"
        if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
            continue
        try:
            if directory.is_symlink():  # only for the /tmp fallback: its name is predictable
                raise OSError(f"{directory} is a symbolic link")
            fsutil.private_dir(directory)
        except (OSError, fsutil.SharedDirectoryError) as exc:
            log.warning("no single-instance socket in %s: %s", directory, exc)
            continue
        return str(path)
    # Nowhere private: a name no other user can predict, so at worst a second launch opens a
    # second window instead of being blocked by a squatter.
    return str(Path(tempfile.gettempdir()) / f"tdgui-{digest}-{os.urandom(8).hex()}")


def _runtime_dirs(config_dir: Path) -> list[Path]:
    """$XDG_RUNTIME_DIR/tdgui if that dir is really the user's (0700, ours), then the config dir.

    Not platformdirs.user_runtime_dir on Linux: without XDG_RUNTIME_DIR it falls back to
    /tmp/runtime-UID, a name another user can create first.
    """
    found = []
    if sys.platform.startswith("linux"):
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        if runtime:
            with contextlib.suppress(OSError):
                st = os.stat(runtime)
                if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077:
                    found.append(Path(runtime) / "tdgui")
    else:
        import platformdirs

        found.append(Path(platformdirs.user_runtime_dir("tdgui", appauthor=False)))
    found.append(config_dir / "run")
    # Last: a short path (a long config dir overflows sun_path), private like ssh-agent's: a
    # directory of ours, 0700, not a link; another user's (squatted) is refused above.
    found.append(Path(tempfile.gettempdir()) / f"tdgui-{os.geteuid()}")
    return found


def peer_uid(descriptor: int) -> int | None:
    """The uid of the process at the other end of a connected Unix socket (Linux SO_PEERCRED).

    None where the kernel does not say (other systems: the 0700 directory is the guard there).
    """
    if not sys.platform.startswith("linux") or descriptor < 0:
        return None
    dup = pysocket.fromfd(descriptor, pysocket.AF_UNIX, pysocket.SOCK_STREAM)  # dup(): Qt keeps its fd
    try:
        creds = dup.getsockopt(pysocket.SOL_SOCKET, pysocket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    finally:
        dup.close()
    return int(struct.unpack("3i", creds)[1])


def _same_user(socket: QLocalSocket) -> bool:
    uid = peer_uid(int(socket.socketDescriptor()))
    return uid is None or uid == os.geteuid()


class SingleInstance(QObject):
    """The first instance listens on a QLocalServer; later ones connect and send 'activate'."""

    activated = Signal()

    def __init__(self, key: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.server: QLocalServer | None = None

    def notify_running(self, timeout_ms: int = 500) -> bool:
        """True if another instance of this user answered (and was told to activate)."""
        socket = QLocalSocket()  # no parent, no deleteLater: Python owns and frees it
        socket.connectToServer(self.key)
        if not socket.waitForConnected(timeout_ms):
            socket.abort()
            return False
        if not _same_user(socket):
            # Someone else's socket at our name: not our app. Tell it nothing.
            log.warning("ignoring a single-instance socket of another user at %s", self.key)
            socket.abort()
            return False
        socket.write(MESSAGE)
        socket.flush()
        socket.waitForBytesWritten(timeout_ms)
        socket.disconnectFromServer()
        return True

    def listen(self) -> bool:
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.key):
            if self.notify_running():
                return False  # lost a race against a launch at the same moment
            # A stale socket left by a crash, or a squatter's (only root can put one in our
            # 0700 dir): remove it and take the name.
            QLocalServer.removeServer(self.key)
            if not server.listen(self.key):
                log.warning("single-instance server failed: %s", server.errorString())
                return False
        server.newConnection.connect(self._on_connection)
        self.server = server
        return True

    @Slot()
    def _on_connection(self) -> None:
        server = self.server
        if server is None:
            return
        while server.hasPendingConnections():
            socket = server.nextPendingConnection()
            if not _same_user(socket):
                log.warning("ignored a single-instance connection from another user")
                socket.abort()
                continue
            socket.readyRead.connect(self._on_ready_read)
            if socket.bytesAvailable():
                self._read(socket)

    @Slot()
    def _on_ready_read(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket):
            self._read(socket)

    def _read(self, socket: QLocalSocket) -> None:
        data = bytes(socket.readAll().data())
        if data.strip() == MESSAGE.strip():
            self.activated.emit()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

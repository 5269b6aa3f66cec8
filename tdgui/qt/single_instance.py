"""One app per user and config dir: a second launch asks the first to show its window, then exits."""

from __future__ import annotations

import getpass
import hashlib
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger("tdgui.qt.instance")
MESSAGE = b"activate\n"


def instance_key(config_dir: Path) -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = "user"
    digest = hashlib.sha256(f"{user}\0{config_dir.resolve()}".encode()).hexdigest()[:20]
    return f"tdgui-{digest}"


class SingleInstance(QObject):
    """The first instance listens on a QLocalServer; later ones connect and send 'activate'."""

    activated = Signal()

    def __init__(self, key: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.server: QLocalServer | None = None

    def notify_running(self, timeout_ms: int = 500) -> bool:
        """True if another instance answered (and was told to activate)."""
        socket = QLocalSocket()  # no parent, no deleteLater: Python owns and frees it
        socket.connectToServer(self.key)
        if not socket.waitForConnected(timeout_ms):
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
            QLocalServer.removeServer(self.key)  # a stale socket left by a crash
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

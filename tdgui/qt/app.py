"""`run_gui()`: builds the QApplication, the single-instance guard, the main window, tray and scheduler."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("tdgui.qt.app")


def prepare_environment() -> None:
    """Before Qt starts. Chromium refuses to run as root with its sandbox (it just exits), so only
    for root is the sandbox switched off, and said so; a normal user keeps Chromium's sandbox."""
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not os.environ.get("QTWEBENGINE_DISABLE_SANDBOX"):
        os.environ["QTWEBENGINE_DISABLE_SANDBOX"] = "1"
        log.warning("running as root: Chromium's sandbox is disabled for the login view")


def _qt_message_handler(mode: object, context: object, message: str) -> None:
    from PySide6.QtCore import QtMsgType

    level = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }.get(mode, logging.WARNING)  # type: ignore[call-overload]
    logging.getLogger("tdgui.qt.qt").log(level, "%s", message)


def run_gui(*, minimized: bool = False) -> int:
    """The desktop app. A second launch activates the first one and returns 0."""
    # No Qt WebEngine in this process: the login view runs in a child (tdgui.qt.login.parent)
    # that takes Chromium's memory with it when it exits. The child inherits this environment.
    prepare_environment()
    from PySide6.QtCore import QCoreApplication, QEvent, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication, QMessageBox

    from tdgui.core.config import Config, Settings
    from tdgui.core.errors import TdguiError
    from tdgui.core.service import TokenService
    from tdgui.qt.single_instance import SingleInstance, instance_key

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    config = Config()
    guard = SingleInstance(instance_key(config.directory))
    if guard.notify_running():
        print("tdgui is already running; its window was brought to the front.")
        return 0
    guard.listen()
    app.setApplicationName("tdgui")
    app.setApplicationDisplayName("tdgui")
    app.setDesktopFileName("tdgui")
    app.setQuitOnLastWindowClosed(False)  # the shell decides: tray keeps running, no tray quits
    qInstallMessageHandler(_qt_message_handler)  # Qt's warnings go to the log, visible

    try:
        settings = config.settings()
    except TdguiError as exc:
        QMessageBox.warning(None, "tdgui", f"{exc}\n\nStarting with default settings.")
        settings = Settings()
    service = TokenService(config, lead=float(settings.refresh_lead_seconds))
    from tdgui.qt.shell import Shell

    shell = Shell(service, settings)
    guard.activated.connect(shell.show_window)
    shell.start(show=not (minimized or settings.start_minimized))
    code = app.exec()
    shell.shutdown()
    guard.close()
    # Run the pending deleteLater()s (login processes, dialogs) before Qt goes down.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return int(code)

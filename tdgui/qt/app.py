"""The desktop app's entry: the QApplication, the single-instance guard, and the shell built from core."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tdgui.core.config import Settings
    from tdgui.core.root import Core
    from tdgui.qt.shell import Shell

log = logging.getLogger(__name__)


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
    logging.getLogger(f"{__name__}.messages").log(level, "%s", message)


def build_shell(core: Core, settings: Settings, **options: Any) -> Shell:
    """The running app's objects, wired once: used by `tdgui` and by `tdgui --self-test` alike."""
    from tdgui.core.ops import ChildOps
    from tdgui.qt.shell import Shell

    service = core.service
    service.lead = float(settings.refresh_lead_seconds)
    # The app lives for days: token operations run in child processes, and status comes from the
    # status records, so this process never loads the network stack or the keyring.
    service.status_from_records_only = True
    ops = ChildOps(core.env, clock=service.clock, lead=lambda: service.lead)
    return Shell(service, settings, ops=ops, **options)


def run_gui(core: Core, *, minimized: bool = False) -> int:
    """The desktop app. A second launch activates the first one and returns 0."""
    # No Qt WebEngine in this process: the login view runs in a child (tdgui.qt.login.parent)
    # that takes Chromium's memory with it when it exits. The child inherits this environment.
    from tdgui.qt.headless import InterruptQuit, display_problem

    problem = display_problem()
    if problem is not None:  # Qt would abort ("could not connect to display") or show nothing
        print(problem, file=sys.stderr)
        return 2
    prepare_environment()
    from PySide6.QtCore import QCoreApplication, QEvent, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication, QMessageBox

    from tdgui.core.config import Settings
    from tdgui.core.errors import TdguiError
    from tdgui.qt.gui_gc import GuiThreadCollector
    from tdgui.qt.single_instance import SingleInstance, instance_key

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    GuiThreadCollector(app)
    config = core.config
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
    shell = build_shell(core, settings)
    guard.activated.connect(shell.show_window)
    shell.start(show=not (minimized or settings.start_minimized))
    interrupt = InterruptQuit(shell.quit)  # Ctrl-C, logout, `kill`: quit cleanly (headless.QUIT_SIGNALS)
    code = app.exec()
    interrupt.close()
    shell.shutdown()
    guard.close()
    # Run the pending deleteLater()s (login processes, dialogs) before Qt goes down.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return int(code)

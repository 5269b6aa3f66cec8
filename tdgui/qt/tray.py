"""The tray icon: state-coloured, with open / refresh all / log in to <account> / quit."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from tdgui.core.status import Severity
from tdgui.qt.controller import Controller
from tdgui.qt.icons import tray_icon

SEVERITY_TOOLTIP = {
    None: "no accounts yet",
    Severity.OK: "all tokens valid",
    Severity.WARN: "a login is needed soon",
    Severity.ERROR: "login required",
}


class Tray(QObject):
    """Owns the QSystemTrayIcon and its menu; actions are plain QActions (tests trigger them)."""

    open_requested = Signal()
    quit_requested = Signal()
    login_requested = Signal(str)

    def __init__(self, controller: Controller, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.level = "none"
        self.last_notice_account: str | None = None
        self.icon = QSystemTrayIcon(tray_icon("none"), self)
        self.menu = QMenu()
        self.action_open = QAction("Open tdgui", self)
        self.action_refresh_all = QAction("Refresh all", self)
        self.action_quit = QAction("Quit", self)
        self.login_actions: dict[str, QAction] = {}
        self.action_open.triggered.connect(self.open_requested)
        self.action_refresh_all.triggered.connect(controller.refresh_all)
        self.action_quit.triggered.connect(self.quit_requested)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_activated)
        self.icon.messageClicked.connect(self._on_message_clicked)
        controller.statuses_changed.connect(self.update)
        self.update()

    @staticmethod
    def available() -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    @Slot()
    def update(self) -> None:
        severity = self.controller.severity()
        self.level = severity.value if severity else "none"
        self.icon.setIcon(tray_icon(self.level))
        self.icon.setToolTip(f"tdgui: {SEVERITY_TOOLTIP[severity]}")
        self._rebuild_menu()

    def _rebuild_menu(self) -> None:
        names = self.controller.names
        if list(self.login_actions) == names and not self.menu.isEmpty():
            return
        self.menu.clear()
        for action in self.login_actions.values():
            action.deleteLater()
        self.login_actions = {}
        self.menu.addAction(self.action_open)
        self.menu.addAction(self.action_refresh_all)
        if names:
            self.menu.addSeparator()
        for name in names:
            action = QAction(f"Log in to {name}", self)
            action.triggered.connect(lambda _checked=False, n=name: self.login_requested.emit(n))
            self.login_actions[name] = action
            self.menu.addAction(action)
        self.menu.addSeparator()
        self.menu.addAction(self.action_quit)

    def notify(self, account: str | None, title: str, text: str) -> None:
        self.last_notice_account = account
        self.icon.showMessage(title, text, QSystemTrayIcon.MessageIcon.Warning, 15_000)

    @Slot(QSystemTrayIcon.ActivationReason)
    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.open_requested.emit()

    @Slot()
    def _on_message_clicked(self) -> None:
        if self.last_notice_account is not None:
            self.login_requested.emit(self.last_notice_account)
        else:
            self.open_requested.emit()

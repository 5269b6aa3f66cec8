"""The tray icon: state-coloured, with open / refresh all / log in to <account> / quit."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from tdgui.core.schedule import AccountState
from tdgui.core.status import AccountStatus, Severity
from tdgui.core.text import fmt_duration, fmt_when, next_login_text
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
        #: the warnings not yet acted on, one per account (issue 14, defect 3: never collapsed)
        self.notices: dict[str, str] = {}
        #: the last balloon shown (title, text): what the user saw, for the window and tests
        self.last_message: tuple[str, str] | None = None
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
        statuses = self.controller.statuses
        for name in [n for n in self.notices if _settled(statuses.get(n))]:
            del self.notices[name]  # logged in again, or removed: its warning is over
        # Per account: its state and the time left (issue 14, defect 11).
        lines = [f"tdgui: {SEVERITY_TOOLTIP[severity]}"]
        now = self.controller.service.clock.now()
        soonest = next_login(statuses)
        if soonest is not None:
            lines.append(soonest)
        lines += [f"{name}: {account_summary(status, now)}" for name, status in statuses.items()]
        self.icon.setToolTip("\n".join(lines))
        self._rebuild_menu()
        for name, action in self.login_actions.items():
            status = statuses.get(name)
            text = (
                f"Log in to {name}"
                if status is None
                else f"Log in to {name} ({account_summary(status, now)})"
            )
            action.setText(text)

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
        """A balloon for this warning; with warnings of several accounts pending, one balloon
        lists each of them (a new balloon replaces the shown one, so sending one per account
        would show only the last)."""
        if account is not None:
            self.notices[account] = text
            if len(self.notices) > 1:
                title = f"tdgui: {len(self.notices)} accounts need a login"
                text = "\n".join(self.notices.values())
                account = None  # a click opens the window, where each account has its row
        self.last_notice_account = account
        self.last_message = (title, text)
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


def next_login(statuses: dict[str, AccountStatus]) -> str | None:
    """The first login any account needs: 'Next login needed: Tue 9 Dec 20:11 (alpha)'."""
    due = [
        (0.0 if s.state is AccountState.LOGIN_REQUIRED else s.refresh_expires_at or 0.0, name, s)
        for name, s in statuses.items()
        if s.state is AccountState.LOGIN_REQUIRED or s.refresh_expires_at is not None
    ]
    if not due:
        return None
    _, name, status = min(due, key=lambda item: item[0])
    required = status.state is AccountState.LOGIN_REQUIRED
    return f"{next_login_text(status.refresh_expires_at, needed_now=required)} ({name})"


def _settled(status: AccountStatus | None) -> bool:
    return status is None or status.state in (AccountState.VALID, AccountState.REFRESH_SOON)


def account_summary(status: AccountStatus, now: float) -> str:
    """One account's state for the tray: what it needs and until when."""
    if status.state in (AccountState.LOGIN_REQUIRED, AccountState.ERROR):
        return "login required" if status.state is AccountState.LOGIN_REQUIRED else "error"
    if status.refresh_expires_at is None:
        return "valid"
    left = status.refresh_expires_at - now
    head = "log in soon" if status.state is AccountState.LOGIN_SOON else "valid"
    return f"{head}, next login by {fmt_when(status.refresh_expires_at)} ({fmt_duration(left)} left)"

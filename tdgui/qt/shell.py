"""The running app: controller, main window, tray, scheduler and dialogs wired together in one place."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QApplication, QDialog

from tdgui.core.background import WarnPolicy
from tdgui.core.config import Settings, sandbox_account
from tdgui.core.ops import TokenOps
from tdgui.core.service import TokenService
from tdgui.qt import autostart, demo
from tdgui.qt.accounts_watch import AccountsWatch
from tdgui.qt.controller import Controller, error_text
from tdgui.qt.dialogs import AboutDialog, SettingsDialog
from tdgui.qt.main_window import MainWindow
from tdgui.qt.notifications import ACTION_LOGIN, DesktopNotifier
from tdgui.qt.scheduler import KIND_EXPIRED, RefreshScheduler
from tdgui.qt.tray import Tray
from tdgui.qt.worker import run_in_background, wait_for_idle

log = logging.getLogger(__name__)

SANDBOX_ACCOUNT = "sandbox"


def start_sandbox(config_dir: Path) -> object:
    """Worker thread: the in-process sandbox on its default port, or on a free one if that is taken."""
    from tdgui.core.errors import UsageError
    from tdgui.core.providers import SANDBOX_DEFAULT_PORT
    from tdgui.sandbox import SandboxServer, sandbox_state_dir

    state = sandbox_state_dir(config_dir)
    try:
        return SandboxServer(state, port=SANDBOX_DEFAULT_PORT).start()
    except UsageError:
        return SandboxServer(state, port=0).start()


class Shell(QObject):
    """Owns everything the desktop app runs; `quit_app` is injectable so tests can observe a quit."""

    quitting = Signal()
    settings_saved = Signal(object)
    #: the demo sandbox was started again at this URL after an app restart (issue 14, defect 5)
    demo_restarted = Signal(str)

    def __init__(
        self,
        service: TokenService,
        settings: Settings,
        *,
        use_tray: bool | None = None,
        open_add_on_first_run: bool = True,
        quit_app: Callable[[], None] | None = None,
        login_timeout: float | None = None,
        ops: TokenOps | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.settings = settings
        self.controller = Controller(service, ops=ops, parent=self)
        if login_timeout is not None:
            self.controller.login_timeout = login_timeout
        self.window = MainWindow(self.controller, open_add_on_first_run=open_add_on_first_run)
        self.scheduler = RefreshScheduler(self.controller, parent=self)
        self.scheduler.notifications_enabled = settings.notifications
        self.scheduler.warn_policy = WarnPolicy.from_settings(settings)
        self.tray = Tray(self.controller, parent=self)
        #: freedesktop notifications with a "Log in now" action where a daemon runs (issue 14)
        self.desktop = DesktopNotifier(parent=self)
        #: each notified account's login time then: a later login ends its notification
        self._notified_login: dict[str, float | None] = {}
        self.use_tray = Tray.available() if use_tray is None else use_tray
        self.window.hide_on_close = self.use_tray
        self.window.apply_settings(settings)
        self.sandbox_server: object | None = None
        self.accounts_watch: AccountsWatch | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.about_dialog: AboutDialog | None = None
        self._quit_app = quit_app or QApplication.quit
        self._open_login_after_save: str | None = None
        self._shut_down = False
        self.tray_hint_shown = False

        window, tray, controller, scheduler = self.window, self.tray, self.controller, self.scheduler
        window.quit_requested.connect(self.quit)
        window.settings_requested.connect(self.open_settings)
        window.about_requested.connect(self.open_about)
        window.sandbox_requested.connect(self.try_sandbox)
        window.hidden_to_tray.connect(self._on_hidden_to_tray)
        tray.open_requested.connect(self.show_window)
        tray.quit_requested.connect(self.quit)
        tray.login_requested.connect(self.open_login)
        scheduler.refreshed.connect(self._on_background_refresh)
        scheduler.notification.connect(self.notify)
        controller.account_saved.connect(self._on_account_saved)
        self.desktop.action_invoked.connect(self._on_desktop_action)
        self.desktop.failed.connect(self._on_desktop_failed)
        controller.statuses_changed.connect(self._withdraw_settled)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, *, show: bool = True) -> None:
        self.controller.reload()
        self.restart_demo_sandbox()
        # `tdgui accounts add` in a terminal shows up here without a Refresh (issue 14, #12).
        self.accounts_watch = AccountsWatch(self.service.config.path, self.controller.reload, self)
        self.scheduler.start()
        if self.use_tray:
            self.tray.show()
        if show or not self.use_tray:
            self.show_window()

    @Slot()
    def show_window(self) -> None:
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()

    @Slot(str)
    def open_login(self, name: str) -> None:
        self.controller.open_login(name)

    @Slot()
    def quit(self) -> None:
        self.shutdown()
        self.quitting.emit()
        self._quit_app()

    def shutdown(self) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        if self.accounts_watch is not None:
            self.accounts_watch.close()
        self.scheduler.stop()
        self.desktop.close()
        self.controller.close_logins()
        self.controller.stop_rechecks()
        self.tray.hide()
        self.window.hide_on_close = False
        self.window.hide()
        server = self.sandbox_server
        if server is not None and hasattr(server, "stop"):
            demo.save_grants(server)  # the demo's tokens work again after a restart (defect 5)
            server.stop()
        self.sandbox_server = None
        wait_for_idle(5_000)

    @Slot()
    def _on_hidden_to_tray(self) -> None:
        """Closing the window leaves the app running: say so once (issue 14, defect 11)."""
        if self.tray_hint_shown:
            return
        self.tray_hint_shown = True
        self.tray.notify(
            None,
            "tdgui is still running",
            "It keeps your tokens fresh from the tray. Open it or quit from the tray icon's menu.",
        )

    # -- background refresh and notifications ----------------------------------------------
    @Slot(str, bool, str)
    def _on_background_refresh(self, name: str, ok: bool, message: str) -> None:
        if self._shut_down:
            return  # a refresh that ended after the quit: no window to tell
        if not ok:
            log.info("background refresh of %s failed", name)
            self.window.statusBar().showMessage(f"{name}: {message}", 60_000)
        self.controller.reload()

    @Slot(str, str, str)
    def notify(self, name: str, kind: str, text: str) -> None:
        """Tray message when there is a tray; always the in-window banner (one click opens the login)."""
        title = "tdgui: login required" if kind == KIND_EXPIRED else "tdgui: log in again soon"
        self.window.show_notice(name, text)
        # The desktop's notification daemon first; where there is none (or it fails to
        # answer), _on_desktop_failed shows the tray balloon instead.
        status = self.controller.statuses.get(name)
        self._notified_login[name] = None if status is None else status.login_at
        self.desktop.notify(name, title, text, urgent=kind == KIND_EXPIRED)

    @Slot(str, str, str)
    def _on_desktop_failed(self, name: str, title: str, text: str) -> None:
        if self.use_tray:
            self.tray.notify(name, title, text)  # the daemon refused it: the balloon then

    @Slot(str, str)
    def _on_desktop_action(self, name: str, action: str) -> None:
        """'Log in now' opens that account's login; a click on the notification, the window."""
        self.show_window()
        self.window.select(name)
        if action == ACTION_LOGIN:
            self.open_login(name)

    @Slot()
    def _withdraw_settled(self) -> None:
        """An account logged in again (a new login time) or removed: its notification is over."""
        statuses = self.controller.statuses
        # Every account warned, not only those the daemon has answered for: a login that ends
        # while the warning is still on its way withdraws it once the bus thread has shown it.
        for name, warned_login in list(self._notified_login.items()):
            status = statuses.get(name)
            if status is None and not self.controller.loaded:
                continue  # warned before the first statuses arrived: nothing known yet
            if status is not None and warned_login is None:
                self._notified_login[name] = status.login_at  # the login the warning was about
            elif status is None or status.login_at != warned_login:
                del self._notified_login[name]
                self.desktop.withdraw(name)

    # -- dialogs ----------------------------------------------------------------------------
    @Slot()
    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.settings, tray_available=self.use_tray, parent=self.window)
        self.settings_dialog = dialog

        def done(code: int) -> None:
            if code == QDialog.DialogCode.Accepted:
                self.save_settings(dialog.settings())
            self.settings_dialog = None
            dialog.deleteLater()

        dialog.finished.connect(done)
        dialog.open()
        return dialog

    def save_settings(self, settings: Settings) -> None:
        config = self.service.config

        def work() -> Settings:
            config.save_settings(settings)
            autostart.set_enabled(settings.launch_at_login)
            return settings

        run_in_background(work, self._on_settings_saved, self._on_settings_failed, context=self)

    def _on_settings_saved(self, settings: Settings) -> None:
        self.settings = settings
        self.service.lead = float(settings.refresh_lead_seconds)
        self.scheduler.notifications_enabled = settings.notifications
        self.scheduler.warn_policy = WarnPolicy.from_settings(settings)
        self.window.apply_settings(settings)
        self.scheduler.reschedule()
        self.controller.reload()
        self.settings_saved.emit(settings)

    def _on_settings_failed(self, error: BaseException) -> None:
        self.window.statusBar().showMessage(f"Could not save the settings: {error_text(error)}", 15_000)

    @Slot()
    def open_about(self) -> AboutDialog:
        dialog = AboutDialog(self.service, parent=self.window)
        self.about_dialog = dialog
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    # -- sandbox ----------------------------------------------------------------------------
    @Slot()
    def try_sandbox(self) -> None:
        """Start the in-process sandbox, add (or re-point) the `sandbox` account, open its login."""
        self.window.statusBar().showMessage("Starting the sandbox...")
        self.window.try_sandbox_button.setEnabled(False)
        if self.sandbox_server is not None:
            self._on_sandbox_started(self.sandbox_server)
            return
        directory = self.service.directory
        run_in_background(
            lambda: start_sandbox(directory), self._on_sandbox_started, self._on_sandbox_failed, context=self
        )

    def _on_sandbox_started(self, server: object) -> None:
        self.sandbox_server = server
        url = str(getattr(server, "base_url", ""))
        self.window.statusBar().showMessage(f"Sandbox running at {url} (user demo, password demo)")
        self._open_login_after_save = SANDBOX_ACCOUNT
        self.controller.save_demo_account(sandbox_account(SANDBOX_ACCOUNT, "schwab", sandbox_url=url))

    def _on_sandbox_failed(self, error: BaseException) -> None:
        self.window.try_sandbox_button.setEnabled(True)
        self.window.statusBar().showMessage(f"Could not start the sandbox: {error_text(error)}", 15_000)

    @Slot(bool, str)
    def _on_account_saved(self, ok: bool, message: str) -> None:
        name, self._open_login_after_save = self._open_login_after_save, None
        self.window.try_sandbox_button.setEnabled(True)
        if ok and name is not None:
            self.open_login(name)

    # -- the demo sandbox after an app restart (issue 14, defect 5) -------------------------
    def restart_demo_sandbox(self) -> None:
        """If the demo account exists and nothing answers at its sandbox's address, start it again."""
        config, directory = self.service.config, self.service.directory

        def work() -> object | None:
            account = config.find(demo.DEMO_ACCOUNT)
            if account is None or not demo.needs_restart(account):
                return None
            return demo.restart(directory, account)

        run_in_background(work, self._on_demo_restarted, self._on_demo_restart_failed, context=self)

    def _on_demo_restarted(self, server: Any) -> None:
        if server is None:
            return
        if self._shut_down or self.sandbox_server is not None:
            server.stop()  # quit meanwhile, or "Try the sandbox" started one first
            return
        self.sandbox_server = server
        url = str(getattr(server, "base_url", ""))
        account = self.service.config.find(demo.DEMO_ACCOUNT)
        if account is not None and account.sandbox_url != url:  # its old port was taken
            self.controller.save_demo_account(dataclasses.replace(account, sandbox_url=url))
        self.window.statusBar().showMessage(f"The sandbox demo is running again at {url}", 15_000)
        self.demo_restarted.emit(url)
        self.controller.reload()

    def _on_demo_restart_failed(self, error: BaseException) -> None:
        message = f"Could not restart the sandbox demo: {error_text(error)}"
        self.window.statusBar().showMessage(message, 15_000)

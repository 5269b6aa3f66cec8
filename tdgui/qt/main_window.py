"""The main window: accounts on the left, the selected account's status on the right, a banner on top."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from tdgui.core.config import Account, Settings
from tdgui.core.login_outcome import LoginOutcome, LoginResult
from tdgui.qt.account_dialog import AccountDialog
from tdgui.qt.banner import Banner
from tdgui.qt.controller import Controller, error_text
from tdgui.qt.icons import app_icon, level_icon
from tdgui.qt.setup_help import SetupHelpOnFailure, open_setup_help
from tdgui.qt.status_view import StatusView
from tdgui.qt.token_actions import TokenActions

log = logging.getLogger(__name__)


WELCOME_TEXT = """<h2>Welcome to tdgui</h2>
<p>tdgui logs you in to your broker's trading API once, in its own login page, and then keeps
the tokens fresh from the tray, so your scripts always find a valid one
(<code>tdgui token NAME</code>, token files for schwab-py and tda-api).</p>
<ul>
<li><b>Charles Schwab</b>: the Trader API. You need an app from developer.schwab.com (app key,
secret and callback URL). Schwab asks you to log in again every 7 days; tdgui reminds you.</li>
<li><b>TD Ameritrade</b>: the legacy API (retired in 2024), for old set-ups.</li>
<li><b>Sandbox</b>: a local emulator of both brokers, to try tdgui without an account
(user <code>demo</code>, password <code>demo</code>).</li>
</ul>"""


#: The user's own choice, not a failure: shown in the normal colour (issue 14, defect 9).
NOT_ERRORS = (LoginOutcome.CANCELLED, LoginOutcome.CLOSED)


class MainWindow(QMainWindow):
    """Thin: renders the controller's cached statuses and forwards user actions to it."""

    #: the window was closed to the tray (the app still runs; the shell says so once)
    hidden_to_tray = Signal()
    quit_requested = Signal()
    settings_requested = Signal()
    about_requested = Signal()
    sandbox_requested = Signal()

    def __init__(self, controller: Controller, *, open_add_on_first_run: bool = True) -> None:
        super().__init__()
        self.controller = controller
        self.open_add_on_first_run = open_add_on_first_run
        self.hide_on_close = False
        self.account_dialog: AccountDialog | None = None
        self.confirm_box: QMessageBox | None = None
        self._messages: dict[str, tuple[str, bool]] = {}
        self._first_run_handled = False
        #: an account just added in the dialog: once it is listed, it is selected and its
        #: login is the next step (issue 14, defect 7)
        self._added: str | None = None
        self.setWindowTitle("tdgui")
        self.setWindowIcon(app_icon())
        self.resize(860, 520)

        service = controller.service
        self.accounts = QListWidget(self)
        self.accounts.setObjectName("accountList")
        self.accounts.setAccessibleName("Accounts")
        self.accounts.setMinimumWidth(180)
        self.status_view = StatusView(service.clock, service.lead, self)
        self.welcome = self._build_welcome()
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.status_view)
        self.stack.addWidget(self.welcome)
        self.banner = Banner(self)

        self.add_button = QPushButton("Add...", self)
        self.edit_button = QPushButton("Edit...", self)
        self.remove_button = QPushButton("Remove", self)
        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.accounts, 1)
        row = QHBoxLayout()
        for button in (self.add_button, self.edit_button, self.remove_button):
            row.addWidget(button)
        left_layout.addLayout(row)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(left)
        # Copy / export / script snippets under the status view (issue 14, build 3).
        self.token_actions = TokenActions(controller, self)
        right = QWidget(self)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.stack, 1)
        right_layout.addWidget(self.token_actions)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self._build_actions()

        self.accounts.currentItemChanged.connect(self._on_selection)
        self.add_button.clicked.connect(self.open_add_dialog)
        self.edit_button.clicked.connect(self.open_edit_dialog)
        self.remove_button.clicked.connect(self.confirm_remove)
        self.status_view.refresh_requested.connect(controller.refresh)
        self.status_view.login_requested.connect(self.open_login)
        self.banner.login_clicked.connect(self.open_login)
        controller.statuses_changed.connect(self._on_statuses)
        controller.refresh_started.connect(self._on_refresh_started)
        controller.refresh_finished.connect(self._on_refresh_finished)
        controller.login_finished.connect(self._on_login_finished)
        controller.account_saved.connect(self._on_account_saved)
        self.setup_help_on_failure = SetupHelpOnFailure(self, controller)
        self._on_statuses()

    # -- construction -----------------------------------------------------------------------
    def _build_welcome(self) -> QWidget:
        page = QWidget(self)
        text = QLabel(WELCOME_TEXT, page)
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        self.welcome_add_button = QPushButton("Add an account...", page)
        self.try_sandbox_button = QPushButton("Try the sandbox", page)
        self.welcome_add_button.clicked.connect(self.open_add_dialog)
        self.try_sandbox_button.clicked.connect(self.sandbox_requested)
        self.setup_help_button = QPushButton("How do I set up a Schwab app?", page)
        self.setup_help_button.clicked.connect(lambda: open_setup_help(self))
        buttons = QHBoxLayout()
        buttons.addWidget(self.welcome_add_button)
        buttons.addWidget(self.try_sandbox_button)
        buttons.addWidget(self.setup_help_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(page)
        layout.addWidget(text)
        layout.addLayout(buttons)
        layout.addStretch(1)
        return page

    def _build_actions(self) -> None:
        self.action_add = QAction("&Add account...", self)
        self.action_add.triggered.connect(self.open_add_dialog)
        self.action_login = QAction("&Log in...", self)
        self.action_login.triggered.connect(lambda: self._with_selected(self.open_login))
        self.action_refresh = QAction("&Refresh", self)
        # F5 and Ctrl+R both (StandardKey.Refresh is only one of them, per platform); Ctrl+L
        # logs in (issue 14, defect 10: full keyboard use).
        self.action_refresh.setShortcuts([QKeySequence("F5"), QKeySequence("Ctrl+R")])
        self.action_login.setShortcut(QKeySequence("Ctrl+L"))
        self.action_refresh.triggered.connect(lambda: self._with_selected(self.controller.refresh))
        self.action_refresh_all = QAction("Refresh &all", self)
        self.action_refresh_all.triggered.connect(self.controller.refresh_all)
        self.action_settings = QAction("&Settings...", self)
        self.action_settings.triggered.connect(self.settings_requested)
        self.action_about = QAction("&About tdgui", self)
        self.action_about.triggered.connect(self.about_requested)
        self.action_quit = QAction("&Quit", self)
        self.action_quit.setShortcut(QKeySequence.StandardKey.Quit)
        self.action_quit.triggered.connect(self.quit_requested)
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.action_settings)
        file_menu.addSeparator()
        file_menu.addAction(self.action_quit)
        account_menu = menu.addMenu("&Account")
        for action in (self.action_add, self.action_login, self.action_refresh, self.action_refresh_all):
            account_menu.addAction(action)
        help_menu = menu.addMenu("&Help")
        # Reachable once accounts exist too (issue 14, defect 5): the welcome page is gone then.
        self.action_try_sandbox = QAction("Try the &sandbox", self)
        self.action_try_sandbox.triggered.connect(self.sandbox_requested)
        help_menu.addAction(self.action_try_sandbox)
        help_menu.addAction(self.action_about)

    # -- selection and rendering ------------------------------------------------------------
    def selected_name(self) -> str | None:
        item = self.accounts.currentItem()
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def select(self, name: str) -> None:
        for row in range(self.accounts.count()):
            item = self.accounts.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == name:
                self.accounts.setCurrentItem(item)
                return

    def _with_selected(self, fn: object) -> None:
        name = self.selected_name()
        if name is not None and callable(fn):
            fn(name)

    @Slot()
    def _on_statuses(self) -> None:
        controller = self.controller
        selected = self.selected_name()
        self.accounts.blockSignals(True)
        self.accounts.clear()
        for name, status in controller.statuses.items():
            item = QListWidgetItem(level_icon(status.severity.value), name)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(f"{status.provider}: {status.state.value}")
            self.accounts.addItem(item)
        self.accounts.blockSignals(False)
        added, self._added = self._added, None
        if added is not None and added not in controller.statuses:
            self._added = added  # saved, not listed yet: the next reload lists it
        if controller.statuses:
            if added in controller.statuses:
                selected = added
            self.select(selected if selected in controller.statuses else next(iter(controller.statuses)))
        self._on_selection()
        empty = controller.loaded and not controller.statuses and controller.load_error is None
        self.stack.setCurrentWidget(self.welcome if empty else self.status_view)
        self.token_actions.setVisible(not empty)
        if controller.load_error:
            self.statusBar().showMessage(controller.load_error)
        has = self.selected_name() is not None
        for widget in (self.edit_button, self.remove_button):
            widget.setEnabled(has)
        self.action_login.setEnabled(has)
        self.action_refresh.setEnabled(has)
        if added is not None and added in controller.statuses:
            self._lead_to_login(added)
        if empty and not self._first_run_handled and self.isVisible():
            # First run: the welcome page itself, not an Add dialog on top of it that hides
            # "Try the sandbox" (issue 14, defect 7); the keyboard starts on its first choice.
            self._first_run_handled = True
            self.welcome_add_button.setFocus()

    @Slot()
    def _on_selection(self) -> None:
        name = self.selected_name()
        status = self.controller.statuses.get(name) if name else None
        self.status_view.set_status(status)
        self.token_actions.set_account(name)
        if name is not None:
            self.status_view.set_busy(name in self.controller.refreshing)
            message = self._messages.get(name)
            if message is not None and name not in self.controller.refreshing:
                self.status_view.show_message(message[0], error=message[1])

    @Slot(str)
    def _on_refresh_started(self, name: str) -> None:
        self._messages.pop(name, None)
        if name == self.selected_name():
            self.status_view.set_busy(True)

    @Slot(str, bool, str)
    def _on_refresh_finished(self, name: str, ok: bool, message: str) -> None:
        self._messages[name] = (message, not ok)
        current = self.statusBar().currentMessage()
        if ok and current.startswith(f"{name}: "):
            self.statusBar().clearMessage()  # an older failure of this account is over (defect 9)
        if name == self.selected_name():
            self.status_view.set_busy(False)
            self.status_view.show_message(message, error=not ok)

    @Slot(object)
    def _on_login_finished(self, result: LoginResult) -> None:
        error = not result.ok and result.outcome not in NOT_ERRORS
        self._messages[result.account] = (result.message, error)
        # The login window (its own process) is gone: the outcome is shown here. A success
        # replaces an older "Login required" / "Access was denied" (issue 14, defect 9).
        self.statusBar().showMessage(f"{result.account}: {result.message}", 30_000)
        if result.ok:
            self.select(result.account)
            self.banner.remove(result.account)
        if result.account == self.selected_name():
            self.status_view.show_message(result.message, error=error)

    @Slot(bool, str)
    def _on_account_saved(self, ok: bool, message: str) -> None:
        self.statusBar().showMessage(message, 10_000)
        if not ok:
            self._added = None
            QMessageBox.warning(self, "tdgui", message)

    def _lead_to_login(self, name: str) -> None:
        """After adding an account, its login is the next step: say so and put the focus there."""
        self.status_view.show_message(
            f"Account {name} saved. Next: log in with the button below, in the broker's own page.",
            error=False,
        )
        self._messages[name] = (self.status_view.message.text(), False)
        if self.status_view.login_button.isVisible():
            self.status_view.login_button.setDefault(True)
            self.status_view.login_button.setFocus()

    # -- actions ----------------------------------------------------------------------------
    @Slot(str)
    def open_login(self, name: str) -> None:
        self.controller.open_login(name)

    @Slot()
    def open_add_dialog(self) -> AccountDialog:
        dialog = AccountDialog(self, taken_names=tuple(self.controller.names), controller=self.controller)
        return self._open_dialog(dialog, replace=False)

    @Slot()
    def open_edit_dialog(self) -> AccountDialog | None:
        name = self.selected_name()
        if name is None:
            return None
        service = self.controller.service
        # The accounts file is small and local: reading it here does not touch the keyring.
        try:
            account = service.account(name)
        except Exception as exc:  # a damaged config is reported, not raised from a slot
            QMessageBox.warning(self, "tdgui", error_text(exc))
            return None
        dialog = AccountDialog(self, existing=account, controller=self.controller)
        return self._open_dialog(dialog, replace=True)

    def _open_dialog(self, dialog: AccountDialog, *, replace: bool) -> AccountDialog:
        self.account_dialog = dialog
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def done(code: int) -> None:
            account: Account | None = dialog.account()
            if code == QDialog.DialogCode.Accepted and account is not None:
                if replace:
                    self.controller.edit_account(account, dialog.secret_value())
                else:
                    self._added = account.name
                    self.controller.add_account(account, dialog.secret_value())
            self.account_dialog = None

        dialog.finished.connect(done)
        dialog.open()
        return dialog

    @Slot()
    def confirm_remove(self) -> QMessageBox | None:
        name = self.selected_name()
        if name is None:
            return None
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Remove account",
            f"Remove {name}? Its stored tokens and client secret are deleted too.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        # Enter must not delete an account, its tokens and its secret (issue 14, defect 10).
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setEscapeButton(QMessageBox.StandardButton.No)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.confirm_box = box

        def done(code: int) -> None:
            if code == QMessageBox.StandardButton.Yes:
                self.controller.remove_account(name)
            self.confirm_box = None

        box.finished.connect(done)
        box.open()
        return box

    def show_notice(self, account: str | None, text: str) -> None:
        self.banner.show_notice(account, text)

    def apply_settings(self, settings: Settings) -> None:
        self.status_view.lead = float(settings.refresh_lead_seconds)

    # -- window -----------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.controller.loaded and not self.controller.statuses and not self._first_run_handled:
            self._on_statuses()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.hide_on_close:
            self.hide()  # keep running in the tray
            event.ignore()
            self.hidden_to_tray.emit()
            return
        event.accept()
        self.quit_requested.emit()

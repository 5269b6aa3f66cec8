"""The app's one wiring point: service, cached statuses, refreshes, logins and account changes."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QWidget

from tdgui.core.config import Account
from tdgui.core.errors import TdguiError
from tdgui.core.login_outcome import DEFAULT_LOGIN_TIMEOUT, LoginResult
from tdgui.core.logs import SECRETS
from tdgui.core.schedule import AccountState
from tdgui.core.service import AccountStatus, TokenService
from tdgui.core.tokens import TokenSet
from tdgui.qt.format import fmt_time
from tdgui.qt.login.hooks import TestHooks
from tdgui.qt.login.parent import LoginProcess
from tdgui.qt.worker import run_in_background

log = logging.getLogger("tdgui.qt.controller")

#: Overall tray state, worst first.
LEVEL_ERROR = "error"
LEVEL_WARN = "warn"
LEVEL_OK = "ok"


def error_text(error: BaseException) -> str:
    """A message for the user: a TdguiError's own text, never a traceback or a secret."""
    if isinstance(error, TdguiError):
        return SECRETS.mask(str(error))
    return f"unexpected error ({type(error).__name__}); see the log"


def overall_level(statuses: list[AccountStatus]) -> str:
    states = {s.state for s in statuses}
    if states & {AccountState.LOGIN_REQUIRED, AccountState.ERROR}:
        return LEVEL_ERROR
    if states & {AccountState.LOGIN_SOON, AccountState.REFRESH_SOON}:
        return LEVEL_WARN
    return LEVEL_OK


class Controller(QObject):
    """Holds the TokenService; every call that touches network, keyring or disk runs in the background."""

    statuses_changed = Signal()
    accounts_changed = Signal()
    refresh_started = Signal(str)
    #: name, ok, message
    refresh_finished = Signal(str, bool, str)
    #: account name: a login (its own process) was started
    login_started = Signal(str)
    login_finished = Signal(object)
    #: ok, message (add / edit / remove account)
    account_saved = Signal(bool, str)

    def __init__(
        self,
        service: TokenService,
        *,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.login_timeout = login_timeout
        self.statuses: dict[str, AccountStatus] = {}
        self.load_error: str | None = None
        self.loaded = False
        self.refreshing: set[str] = set()
        #: one login (a child process hosting the web view) per account
        self.login_windows: dict[str, LoginProcess] = {}
        #: sandbox only (tests, self-test): the login child fills demo/demo and allows
        self.login_autofill_sandbox = False
        self._reload_running = False
        self._reload_again = False

    # -- statuses ---------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.statuses)

    def level(self) -> str:
        return overall_level(list(self.statuses.values()))

    def reload(self) -> None:
        """Re-read every account's status (keyring!) in the background; coalesces bursts."""
        if self._reload_running:
            self._reload_again = True
            return
        self._reload_running = True
        run_in_background(self.service.statuses, self._on_statuses, self._on_statuses_error, context=self)

    @Slot(object)
    def _on_statuses(self, statuses: list[AccountStatus]) -> None:
        self.statuses = {s.name: s for s in statuses}
        self.load_error = None
        self._reloaded()

    @Slot(object)
    def _on_statuses_error(self, error: BaseException) -> None:
        self.load_error = error_text(error)
        log.warning("could not read the accounts: %s", self.load_error)
        self._reloaded()

    def _reloaded(self) -> None:
        self.loaded = True
        self._reload_running = False
        self.statuses_changed.emit()
        if self._reload_again:
            self._reload_again = False
            self.reload()

    # -- refresh ----------------------------------------------------------------------------
    def refresh(self, name: str) -> None:
        """The Refresh button: refresh now (single-flight across processes in the service)."""
        if name in self.refreshing:
            return
        self.refreshing.add(name)
        self.refresh_started.emit(name)
        service = self.service
        run_in_background(
            lambda: service.refresh(name, force=True),
            lambda tokens: self._on_refreshed(name, tokens),
            lambda error: self._on_refresh_failed(name, error),
            context=self,
        )

    def refresh_all(self) -> None:
        for name in self.names:
            self.refresh(name)

    def _on_refreshed(self, name: str, tokens: TokenSet) -> None:
        self.refreshing.discard(name)
        self.refresh_finished.emit(
            name, True, f"Refreshed; access token valid until {fmt_time(tokens.access_expires_at)}."
        )
        self.reload()

    def _on_refresh_failed(self, name: str, error: BaseException) -> None:
        self.refreshing.discard(name)
        self.refresh_finished.emit(name, False, f"Refresh failed: {error_text(error)}")
        self.reload()

    # -- login ------------------------------------------------------------------------------
    def open_login(
        self, name: str, *, autofill_sandbox: bool | None = None, screenshot: Path | None = None
    ) -> LoginProcess:
        """Open (or raise) the login window of an account; it runs in its own process."""
        current = self.login_windows.get(name)
        if current is not None and current.result is None:
            current.bring_to_front()
            return current
        if current is not None:
            current.close()
            current.deleteLater()
        autofill = self.login_autofill_sandbox if autofill_sandbox is None else autofill_sandbox
        hooks = (  # test only: the sandbox's pages scripted in the child (tdgui.qt.login.hooks)
            TestHooks(autofill=autofill, screenshot=str(screenshot) if screenshot else None)
            if autofill or screenshot
            else None
        )
        window = LoginProcess(self.service, name, timeout=self.login_timeout, test_hooks=hooks, parent=self)
        window.finished.connect(self._on_login_finished)
        self.login_windows[name] = window
        window.start()
        self.login_started.emit(name)
        return window

    @Slot(object)
    def _on_login_finished(self, result: LoginResult) -> None:
        window = self.login_windows.get(result.account)
        if window is not None:
            window.close()  # the child has ended (or is ending); the main window shows the result
        self.login_finished.emit(result)
        self.reload()

    def close_logins(self) -> None:
        for window in list(self.login_windows.values()):
            window.shutdown()
            window.deleteLater()
        self.login_windows.clear()

    # -- accounts ---------------------------------------------------------------------------
    def save_account(self, account: Account, secret: str | None, *, replace: bool) -> None:
        """Add or replace an account; the secret goes to the keyring (never shown again)."""
        service = self.service

        def work() -> None:
            account.validate()
            if secret:
                service.set_client_secret(account, secret)
            service.config.add_account(account, replace_existing=replace)

        run_in_background(
            work,
            lambda _: self._on_saved(f"Saved account {account.name}."),
            self._on_save_failed,
            context=self,
        )

    def remove_account(self, name: str) -> None:
        service = self.service
        run_in_background(
            lambda: service.remove_account(name),
            lambda _: self._on_saved(f"Removed account {name} and its stored tokens."),
            self._on_save_failed,
            context=self,
        )

    def add_account_now(self, account: Account) -> None:
        """Add an account that needs no secret (the sandbox) in the background."""
        self.save_account(account, None, replace=True)

    def _on_saved(self, message: str) -> None:
        self.account_saved.emit(True, message)
        self.accounts_changed.emit()
        self.reload()

    def _on_save_failed(self, error: BaseException) -> None:
        self.account_saved.emit(False, error_text(error))

    # -- helpers for dialogs ----------------------------------------------------------------
    def parent_widget(self) -> QWidget | None:
        parent = self.parent()
        return parent if isinstance(parent, QWidget) else None

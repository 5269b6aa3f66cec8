"""The app's view of core: cached statuses, refreshes, logins and account changes, off the GUI thread.

Every change (a refresh, a login, an account added, edited or removed) ends in one `changed`
signal; the views and the scheduler listen to that instead of to each operation.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QWidget

from tdgui.core.accounts import EditResult
from tdgui.core.config import Account
from tdgui.core.db_setup import ConnectionCheck, plain_error
from tdgui.core.errors import LoginRequired, TdguiError
from tdgui.core.login_outcome import DEFAULT_LOGIN_TIMEOUT, LoginResult
from tdgui.core.logs import SECRETS
from tdgui.core.ops import InProcessOps, TokenOps
from tdgui.core.service import TokenService
from tdgui.core.status import AccountStatus, Severity, overall_severity
from tdgui.core.text import fmt_time
from tdgui.core.tokens import TokenTimes
from tdgui.qt.login.hooks import TestHooks
from tdgui.qt.login.parent import LoginProcess
from tdgui.qt.worker import run_in_background

if TYPE_CHECKING:
    from tdgui.core.sharing import DbChoice

log = logging.getLogger(__name__)


def error_text(error: BaseException) -> str:
    """A message for the user: a TdguiError's own text, never a traceback or a secret."""
    if isinstance(error, TdguiError):
        return gui_text(SECRETS.mask(str(error)))
    return f"unexpected error ({type(error).__name__}); see the log"


#: OAuth error codes (RFC 6749 §5.2, §4.1.2.1) and Schwab's own: said in words, not shown raw.
_OAUTH_CODES = re.compile(
    r"\s*\(?\b(invalid_request|invalid_client|invalid_grant|unauthorized_client|unsupported_grant_type"
    r"|invalid_scope|access_denied|server_error|temporarily_unavailable"
    r"|refresh_token_authentication_error)\b\)?"
)
#: Core's messages are shared with the CLI; in the window a command line means nothing.
_GUI_WORDS = (
    (re.compile(r"run `tdgui login [^`]*`"), "log in again"),
    (re.compile(r"(use|or use) `tdgui login [^`]*--manual`"), r"\1 a different callback port"),
    (re.compile(r"\s*\(see `tdgui [^`]*`\)"), ""),
    (
        re.compile(r"an explicit file store with `?--store file`?"),
        "the file store in Edit account (Token store)",
    ),
    (re.compile(r"(with )?`?--store file`?"), "the file store (Edit account, Token store)"),
    (re.compile(r"(with )?`?--store`?"), "in Edit account (Token store)"),
    (re.compile(r"`tdgui [^`]*`"), "the tdgui command line"),
    (re.compile(r"\s*\(-?\d{2,}\)"), ""),  # a raw Chromium/HTTP error number, e.g. (-105)
)


def gui_text(message: str) -> str:
    """Core's message for a person at the window: no CLI commands or flags, no raw error codes
    (issue 14, defect 8)."""
    for pattern, replacement in _GUI_WORDS:
        message = pattern.sub(replacement, message)
    message = _OAUTH_CODES.sub("", message)
    return re.sub(r"\s{2,}", " ", message).strip()


#: The longest wait for a recheck moment: the timer counts monotonic time, the moments are
#: wall-clock time, which a suspend or a clock change moves meanwhile.
RECHECK_MAX_WAIT = 15 * 60.0


class Controller(QObject):
    """Holds the TokenService; every call that touches network, keyring or disk runs in the background."""

    #: an account's tokens, status or settings changed (its name; "" for the account list)
    changed = Signal(str)
    #: the cached statuses were re-read (after a change or on request)
    statuses_changed = Signal()
    refresh_started = Signal(str)
    #: name, ok, message
    refresh_finished = Signal(str, bool, str)
    #: name, error: a refresh failed (the scheduler backs off on transient ones)
    refresh_failed = Signal(str, object)
    #: account name: a login (its own process) was started
    login_started = Signal(str)
    login_finished = Signal(object)
    #: ok, message (add / edit / remove account)
    account_saved = Signal(bool, str)

    def __init__(
        self,
        service: TokenService,
        *,
        ops: TokenOps | None = None,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        #: Token operations of accounts whose tokens live only in this process (memory store).
        self.local_ops = InProcessOps(service)
        #: Everything else: in child processes (tdgui.core.ops) when given, else here as well.
        self.child_ops = ops
        self.login_timeout = login_timeout
        self.statuses: dict[str, AccountStatus] = {}
        self.load_error: str | None = None
        self.loaded = False
        #: accounts with a refresh running, whoever asked (the button or the scheduler)
        self.refreshing: set[str] = set()
        #: one login (a child process hosting the web view) per account
        self.login_windows: dict[str, LoginProcess] = {}
        #: sandbox only (tests, self-test): the login child fills demo/demo and allows
        self.login_autofill_sandbox = False
        self._reload_running = False
        self._reload_again = False
        #: Reads the statuses again when one may change by time alone (AccountStatus.recheck_at),
        #: so the window's state text, the account list and the tray follow the clock.
        self.recheck_timer = QTimer(self)
        self.recheck_timer.setSingleShot(True)
        self.recheck_timer.setTimerType(Qt.TimerType.PreciseTimer)  # a coarse one may fire 5% early
        self.recheck_timer.timeout.connect(self.reload)

    # -- statuses ---------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.statuses)

    def severity(self) -> Severity | None:
        """The worst account's severity; None with no accounts."""
        return overall_severity(s.state for s in self.statuses.values())

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
        self._arm_recheck()  # only after a read that worked: a failing one is not retried at once
        self._reloaded()

    def _arm_recheck(self) -> None:
        moments = [s.recheck_at for s in self.statuses.values() if s.recheck_at is not None]
        if not moments:
            self.recheck_timer.stop()
            return
        wait = max(0.0, min(moments) - self.service.clock.now())
        self.recheck_timer.start(int(min(wait, RECHECK_MAX_WAIT) * 1000))

    def stop_rechecks(self) -> None:
        """At quit: no more reads of the statuses by the clock."""
        self.recheck_timer.stop()

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

    def ops(self, name: str) -> TokenOps:
        """Where account `name`'s token operations run (see tdgui.core.ops)."""
        if self.child_ops is None or self.service.store_override is not None:
            return self.local_ops
        account = self.service.config.find(name)
        return self.local_ops if account is None or account.store == "memory" else self.child_ops

    # -- refresh ----------------------------------------------------------------------------
    def refresh(self, name: str, *, force: bool = True) -> bool:
        """Refresh now (the button: `force`; the scheduler: only if due); False if one is running.

        Single-flight across processes is the service's job; this keeps one request per account
        in this process, whoever asked.
        """
        if name in self.refreshing:
            return False
        self.refreshing.add(name)
        self.refresh_started.emit(name)
        ops = self.ops(name)
        run_in_background(
            lambda: ops.refresh(name, force=force),
            lambda times: self._on_refreshed(name, times),
            lambda error: self._on_refresh_failed(name, error),
            context=self,
        )
        return True

    def refresh_all(self) -> None:
        for name in self.names:
            self.refresh(name)

    def _on_refreshed(self, name: str, times: TokenTimes) -> None:
        self.refreshing.discard(name)
        self.refresh_finished.emit(
            name, True, f"Refreshed; access token valid until {fmt_time(times.access_expires_at)}."
        )
        self._changed(name)

    def _on_refresh_failed(self, name: str, error: BaseException) -> None:
        self.refreshing.discard(name)
        prefix = "Login required" if isinstance(error, LoginRequired) else "Refresh failed"
        self.refresh_failed.emit(name, error)
        self.refresh_finished.emit(name, False, f"{prefix}: {error_text(error)}")
        self._changed(name)

    def _changed(self, name: str) -> None:
        self.changed.emit(name)
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
            current.shutdown()  # its child has ended before the QProcess goes (Qt would kill it)
            current.deleteLater()
        autofill = self.login_autofill_sandbox if autofill_sandbox is None else autofill_sandbox
        hooks = (  # test only: the sandbox's pages scripted in the child (tdgui.qt.login.hooks)
            TestHooks(autofill=autofill, screenshot=str(screenshot) if screenshot else None)
            if autofill or screenshot
            else None
        )
        window = LoginProcess(
            self.service, name, ops=self.ops(name), timeout=self.login_timeout, test_hooks=hooks, parent=self
        )
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
        self._changed(result.account)

    def close_logins(self) -> None:
        for window in list(self.login_windows.values()):
            window.shutdown()
            window.deleteLater()
        self.login_windows.clear()

    # -- accounts ---------------------------------------------------------------------------
    def add_account(self, account: Account, secret: str | None) -> None:
        """Add an account through core (store checked, secret first, rolled back on failure)."""
        ops = self.ops(account.name) if account.store != "memory" else self.local_ops
        run_in_background(
            lambda: ops.add_account(account, secret),
            lambda _: self._on_saved(account.name, f"Saved account {account.name}."),
            self._on_save_failed,
            context=self,
        )

    def edit_account(self, account: Account, secret: str | None) -> None:
        """Change an account; its tokens move with a store change or are dropped with a new grant."""
        ops = self.ops(account.name)

        def saved(result: EditResult) -> None:
            note = ""
            if result.moved:
                note = " Its tokens moved to the new store."
            elif result.dropped:
                note = " Its tokens were deleted (they belong to the old settings): log in again."
            self._on_saved(account.name, f"Saved account {account.name}.{note}")

        run_in_background(
            lambda: ops.edit_account(account, secret), saved, self._on_save_failed, context=self
        )

    def save_sandbox_account(self, account: Account) -> None:
        """The demo account: re-pointed at the running sandbox (replaced if it exists)."""
        ops, config = self.ops(account.name), self.service.config

        def work() -> None:
            if config.find(account.name) is None:
                ops.add_account(account, None)
            else:
                ops.edit_account(account, None)

        run_in_background(
            work,
            lambda _: self._on_saved(account.name, f"Saved account {account.name}."),
            self._on_save_failed,
            context=self,
        )

    def save_demo_account(self, account: Account) -> None:
        """The "Try the sandbox" account, in a store that works where the app runs (issue 14, #4).

        An existing demo account keeps its store and is only re-pointed at the running sandbox.
        A new one goes to the default store, checked before any login; where that store cannot
        be used (no Secret Service: a bare Xvfb, a server) it goes to the file store, and the
        message says so, instead of failing after the user typed the password and consented.
        """
        import dataclasses

        from tdgui.core.errors import StoreUnavailable

        ops, config = self.ops(account.name), self.service.config

        def work() -> str:
            existing = config.find(account.name)
            if existing is not None:
                ops.edit_account(dataclasses.replace(existing, sandbox_url=account.sandbox_url), None)
                return f"Saved account {account.name}."
            try:
                ops.add_account(account, None)
            except StoreUnavailable:
                ops.add_account(dataclasses.replace(account, store="file"), None)
                return (
                    f"Saved account {account.name}. No system keyring is available here, so the "
                    "demo's tokens are kept in a private file (0600) in tdgui's settings folder."
                )
            return f"Saved account {account.name}."

        run_in_background(
            work, lambda message: self._on_saved(account.name, message), self._on_save_failed, context=self
        )

    def remove_account(self, name: str) -> None:
        ops = self.ops(name)
        run_in_background(
            lambda: ops.remove_account(name),
            lambda _: self._on_saved("", f"Removed account {name} and its stored tokens."),
            self._on_save_failed,
            context=self,
        )

    def _on_saved(self, name: str, message: str) -> None:
        self.account_saved.emit(True, message)
        self._changed(name)

    def _on_save_failed(self, error: BaseException) -> None:
        self.account_saved.emit(False, error_text(error))

    # -- shared accounts (postgres) ------------------------------------------------------
    def test_db(
        self,
        url: str,
        password: str | None,
        allow_insecure: bool,
        on_done: Callable[[ConnectionCheck], None],
        *,
        context: QObject | None = None,
    ) -> None:
        """Core's connection test off the GUI thread; `on_done` gets its plain-words result."""
        from tdgui.core.db_setup import check_connection

        run_in_background(
            lambda: check_connection(url, password, allow_insecure=allow_insecure),
            on_done,
            lambda error: on_done(ConnectionCheck(False, "other", error_text(error))),
            context=context or self,
        )

    def test_account_db(
        self, name: str, on_done: Callable[[ConnectionCheck], None], *, context: QObject | None = None
    ) -> None:
        """The connection test of a shared account, with the password this machine keeps."""
        from tdgui.core.db_setup import check_account_connection

        run_in_background(
            lambda: check_account_connection(self.service, name),
            on_done,
            lambda error: on_done(ConnectionCheck(False, "other", error_text(error))),
            context=context or self,
        )

    def share_account(
        self,
        name: str,
        choice: DbChoice,
        on_done: Callable[[str], None],
        on_error: Callable[[str], None],
        *,
        context: QObject | None = None,
    ) -> None:
        """Move a local account into the database (core.sharing.share); `on_done(key text)`."""
        from tdgui.core.sharing import share

        def done(key: str) -> None:
            on_done(key)
            self._on_saved(name, f"Shared account {name} to the database.")

        run_in_background(
            lambda: share(self.service, name, choice).encode(),
            done,
            lambda error: on_error(plain_error(error, name) or error_text(error)),
            context=context or self,
        )

    def join_account(
        self,
        name: str,
        choice: DbChoice,
        key_text: str,
        on_done: Callable[[Account], None],
        on_error: Callable[[str], None],
        *,
        context: QObject | None = None,
    ) -> None:
        """Create `name` here from its records in the database (core.sharing.join)."""
        from tdgui.core.record_crypto import RecordKey
        from tdgui.core.sharing import join

        def done(account: Account) -> None:
            on_done(account)
            self._on_saved(name, f"Joined account {name} from the database.")

        run_in_background(
            lambda: join(self.service, name, choice, RecordKey.parse(key_text.strip())),
            done,
            lambda error: on_error(plain_error(error, name) or error_text(error)),
            context=context or self,
        )

    # -- helpers for dialogs ----------------------------------------------------------------
    def parent_widget(self) -> QWidget | None:
        parent = self.parent()
        return parent if isinstance(parent, QWidget) else None

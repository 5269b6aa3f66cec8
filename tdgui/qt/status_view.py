"""The selected account's status: both tokens' expiry with live countdowns, Refresh and Log in again."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tdgui.core.clock import Clock
from tdgui.core.db_setup import kind_place
from tdgui.core.schedule import LEAD_FRACTION, AccountState
from tdgui.core.service import AccountStatus
from tdgui.core.text import fmt_duration, fmt_time, next_login_text

COLOUR_VALID = "#2e7d32"
COLOUR_SOON = "#f9a825"
COLOUR_EXPIRED = "#c62828"

STATE_TEXT = {
    AccountState.VALID: ("Tokens valid", COLOUR_VALID),
    AccountState.REFRESH_SOON: ("Access token due for refresh", COLOUR_SOON),
    AccountState.LOGIN_SOON: ("Log in again soon: the refresh token expires within {window}", COLOUR_SOON),
    AccountState.LOGIN_REQUIRED: ("Login required", COLOUR_EXPIRED),
    AccountState.ERROR: ("Error", COLOUR_EXPIRED),
}


def window_text(seconds: float) -> str:
    """The "login soon" window in words: 'a day', '2 days', '12 h'."""
    hours = round(seconds / 3600)
    if hours == 24:
        return "a day"
    if hours > 24 and hours % 24 == 0:
        return f"{hours // 24} days"
    return f"{max(hours, 1)} h"


class Countdown(QWidget):
    """Absolute expiry, a live countdown and a coloured bar for one token."""

    def __init__(self, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(what)
        self.expires = QLabel("-", self)
        self.remaining = QLabel("-", self)
        self.remaining.setMinimumWidth(90)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(12)
        self.bar.setAccessibleName(f"{what}: share of its lifetime left")
        self.level = "none"
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.expires, 1)
        row.addWidget(self.remaining)
        layout.addLayout(row)
        layout.addWidget(self.bar)

    def show_expiry(self, expires_at: float | None, total: float, soon: float, now: float) -> None:
        if expires_at is None:
            self.expires.setText("-")
            self.remaining.setText("")
            self.bar.setValue(0)
            self._colour("none", COLOUR_EXPIRED)
            return
        left = expires_at - now
        self.expires.setText(f"until {fmt_time(expires_at)}")
        self.remaining.setText(fmt_duration(left) if left > 0 else "expired")
        fraction = 0.0 if total <= 0 else min(1.0, max(0.0, left / total))
        self.bar.setValue(int(fraction * 1000))
        if left <= 0:
            self._colour("expired", COLOUR_EXPIRED)
        elif left <= soon:  # from the lead moment on, as core's states (schedule.account_state)
            self._colour("soon", COLOUR_SOON)
        else:
            self._colour("valid", COLOUR_VALID)

    def show_dead(self, text: str) -> None:
        """The token no longer works whatever its stated expiry (the server refused it)."""
        self.expires.setText(text)
        self.remaining.setText("expired")
        self.bar.setValue(0)
        self._colour("expired", COLOUR_EXPIRED)

    def _colour(self, level: str, colour: str) -> None:
        if level != self.level:
            self.level = level
            self.bar.setStyleSheet(f"QProgressBar::chunk {{ background: {colour}; }}")
            self.remaining.setStyleSheet(f"color: {colour}; font-weight: bold;")


class StatusView(QWidget):
    """Shows one AccountStatus; re-renders countdowns from the cached values once a second while visible."""

    refresh_requested = Signal(str)
    login_requested = Signal(str)

    def __init__(self, clock: Clock, lead: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.clock = clock
        self.lead = lead
        self.status: AccountStatus | None = None
        self.busy = False
        #: Set when the service stores every account in one place (tests, self-test: "memory").

        self.title = QLabel(self)
        self.title.setStyleSheet("font-size: 16pt; font-weight: bold;")
        self.state_label = QLabel(self)
        #: "Next login needed: Tue 9 Dec 20:11" (issue 14, build 4)
        self.next_login = QLabel(self)
        self.next_login.setObjectName("nextLogin")
        self.access = Countdown("Access token", self)
        self.refresh_token = Countdown("Refresh token", self)
        self.last_refresh = QLabel("-", self)
        self.last_refresh.setWordWrap(True)
        self.store = QLabel("-", self)
        self.store.setWordWrap(True)
        self.login_at = QLabel("-", self)

        tokens = QGroupBox("Tokens", self)
        form = QFormLayout(tokens)
        form.addRow("Access token:", self.access)
        form.addRow("Refresh token:", self.refresh_token)
        form.addRow("Logged in:", self.login_at)
        form.addRow("Last refresh:", self.last_refresh)
        form.addRow("Stored in:", self.store)

        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.setObjectName("refreshButton")
        self.busy_bar = QProgressBar(self)
        self.busy_bar.setRange(0, 0)  # indeterminate: the busy indicator
        self.busy_bar.setMaximumWidth(120)
        self.busy_bar.setMaximumHeight(12)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setAccessibleName("Refreshing")
        self.busy_bar.hide()
        self.login_button = QPushButton("Log in again", self)
        self.login_button.setObjectName("loginButton")
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setObjectName("statusMessage")
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.refresh_button.clicked.connect(self._on_refresh)
        self.login_button.clicked.connect(self._on_login)

        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.busy_bar)
        buttons.addStretch(1)
        buttons.addWidget(self.login_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.state_label)
        layout.addWidget(self.next_login)
        layout.addWidget(tokens)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addStretch(1)

        self.ticker = QTimer(self)
        self.ticker.setInterval(1000)
        self.ticker.timeout.connect(self.tick)

    # -- data -------------------------------------------------------------------------------
    def set_status(self, status: AccountStatus | None) -> None:
        switched = status is None or self.status is None or status.name != self.status.name
        self.status = status
        if switched:
            self.message.clear()
        self._render_static()
        self.tick()
        self._update_ticker()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.refresh_button.setEnabled(not busy and self._can_refresh())
        self.busy_bar.setVisible(busy)
        if busy:
            self.show_message("Refreshing...", error=False)

    def show_message(self, text: str, *, error: bool) -> None:
        colour = COLOUR_EXPIRED if error else "palette(text)"
        self.message.setStyleSheet(f"color: {colour};")
        self.message.setText(text)

    def _can_refresh(self) -> bool:
        return (self.status is not None and self.status.refresh_expires_at is not None) or (
            self.status is not None and self.status.access_expires_at is not None
        )

    def _render_static(self) -> None:
        status = self.status
        if status is None:
            self.title.setText("No account selected")
            self.state_label.clear()
            self.refresh_button.setEnabled(False)
            self.next_login.clear()
            self.login_button.hide()
            return
        self.title.setText(f"{status.name}  ({status.provider})")
        text, colour = STATE_TEXT.get(status.state, (status.state.value, COLOUR_EXPIRED))
        if status.access_expires_at is None and status.state is AccountState.LOGIN_REQUIRED:
            text = "Not logged in yet"
        text = text.replace("{window}", window_text(status.login_soon))
        self.state_label.setText(text)
        self.state_label.setStyleSheet(f"color: {colour}; font-weight: bold;")
        self.login_at.setText(fmt_time(status.login_at))
        if status.last_refresh_at is None:
            self.last_refresh.setText("-")
        elif status.last_refresh_ok:
            self.last_refresh.setText(f"{fmt_time(status.last_refresh_at)}: ok")
        else:
            self.last_refresh.setText(
                f"{fmt_time(status.last_refresh_at)}: failed: {status.last_error or ''}"
            )
        self.store.setText(status.store_place or kind_place(status.store))
        self.refresh_button.setEnabled(not self.busy and self._can_refresh())

    # -- countdowns -------------------------------------------------------------------------
    @Slot()
    def tick(self) -> None:
        status = self.status
        if status is None:
            return
        now = self.clock.now()
        access_total = 0.0
        if status.access_expires_at is not None and status.access_received_at is not None:
            access_total = status.access_expires_at - status.access_received_at
        # "Soon" from the lead the scheduler uses (core.schedule.effective_lead): a 60 s token
        # is not amber for its whole life under a 5 min lead (issue 14, defect 6).
        soon = min(self.lead, max(0.0, access_total) * LEAD_FRACTION)
        self.access.show_expiry(status.access_expires_at, access_total, soon, now)
        refresh_total = 0.0
        if status.refresh_expires_at is not None:
            start = status.login_at if status.login_at is not None else now
            refresh_total = max(status.refresh_expires_at - start, status.refresh_expires_at - now)
        if status.state is AccountState.LOGIN_REQUIRED and status.access_expires_at is not None:
            # Logged in once, login required now: the refresh token is dead even if its stored
            # expiry (an assumed 7 days) is still ahead (issue 14, defect 2).
            self.refresh_token.show_dead("no longer valid: log in again")
        else:
            # Amber from the user's first warning on, as the state and the notifications.
            self.refresh_token.show_expiry(status.refresh_expires_at, refresh_total, status.login_soon, now)
        dying = status.refresh_expires_at is None or status.refresh_expires_at - now <= status.login_soon
        required = status.state is AccountState.LOGIN_REQUIRED
        self.next_login.setText(next_login_text(status.refresh_expires_at, needed_now=required))
        self.login_button.setText("Log in" if status.access_expires_at is None else "Log in again")
        # Always there (a new login any time, e.g. before a trip); the default button when due.
        self.login_button.setVisible(True)
        self.login_button.setDefault(required or dying)

    def _update_ticker(self) -> None:
        # Only while visible and there is something to count down: the tray app must not wake each second.
        if self.isVisible() and self.status is not None and self.status.access_expires_at is not None:
            if not self.ticker.isActive():
                self.ticker.start()
        else:
            self.ticker.stop()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.tick()
        self._update_ticker()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.ticker.stop()

    # -- buttons ----------------------------------------------------------------------------
    @Slot()
    def _on_refresh(self) -> None:
        if self.status is not None and not self.busy:
            self.refresh_requested.emit(self.status.name)

    @Slot()
    def _on_login(self) -> None:
        if self.status is not None:
            self.login_requested.emit(self.status.name)

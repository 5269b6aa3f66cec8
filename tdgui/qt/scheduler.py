"""Background refresh: one single-shot timer to the next moment any account needs work; no polling."""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication

from tdgui.core import schedule
from tdgui.core.clock import Clock
from tdgui.core.errors import LoginRequired
from tdgui.core.service import AccountPlan, TokenService
from tdgui.core.tokens import TokenSet
from tdgui.qt.controller import error_text
from tdgui.qt.format import fmt_duration, fmt_time
from tdgui.qt.worker import run_in_background

log = logging.getLogger("tdgui.qt.scheduler")

#: A single sleep never exceeds this: a laptop that slept through a deadline re-checks soon after
#: waking even if no resume signal arrives. One wake-up an hour is not polling.
MAX_SLEEP = 3600.0
#: Never re-arm sooner than this (a refresh that is due but cannot happen must not spin).
MIN_SLEEP = 1.0
#: Retries after a failed background refresh (network loss, 5xx): 30 s, 1 min, 2 min ... 15 min.
BACKOFF_START = 30.0
BACKOFF_MAX = 900.0
#: Wall clock and monotonic clock disagreeing by more than this means a clock jump or a suspend.
JUMP_TOLERANCE = 30.0

KIND_EXPIRING = "expiring"
KIND_EXPIRED = "expired"


class RefreshScheduler(QObject):
    """Sleeps with one single-shot QTimer until the next refresh or warning is due, then acts."""

    #: next_wakeup_at (epoch seconds, or None when nothing is due ever)
    rescheduled = Signal(object)
    #: name, ok, message
    refreshed = Signal(str, bool, str)
    #: name, kind ("expiring" / "expired"), message
    notification = Signal(str, str, str)

    def __init__(
        self,
        service: TokenService,
        *,
        clock: Clock | None = None,
        max_sleep: float = MAX_SLEEP,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.clock = clock or service.clock
        self.max_sleep = max_sleep
        self.plan: list[AccountPlan] = []
        self.next_wakeup_at: float | None = None
        self.retry_at: dict[str, float] = {}
        self.failures: dict[str, int] = {}
        self.notifications_enabled = True
        self.notified: set[tuple[str, str, float | None]] = set()
        self.inflight: set[str] = set()
        self.jumps = 0
        self._planning = False
        self._plan_again = False
        self._armed_wall = 0.0
        self._armed_mono = 0.0
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setTimerType(Qt.TimerType.CoarseTimer)
        self.timer.timeout.connect(self.on_timer)
        self._running = False

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            app.applicationStateChanged.connect(self._on_app_state)
        self.reschedule()

    def stop(self) -> None:
        self._running = False
        self.timer.stop()

    @Slot(Qt.ApplicationState)
    def _on_app_state(self, state: Qt.ApplicationState) -> None:
        # Coming back to the foreground (often after a resume): re-check at once.
        if state == Qt.ApplicationState.ApplicationActive:
            self.reschedule()

    # -- planning ---------------------------------------------------------------------------
    def reschedule(self) -> None:
        """Re-read every account (keyring: off the GUI thread) and re-arm the timer."""
        if self._planning:
            self._plan_again = True
            return
        self._planning = True
        service = self.service
        run_in_background(service.plans, self._on_plan, self._on_plan_error, context=self)

    @Slot(object)
    def _on_plan(self, plan: list[AccountPlan]) -> None:
        self._planning = False
        self.plan = plan
        now = self.clock.now()
        self._notify(now)
        self._arm(now)
        if self._plan_again:
            self._plan_again = False
            self.reschedule()

    @Slot(object)
    def _on_plan_error(self, error: BaseException) -> None:
        self._planning = False
        log.warning("could not plan the next refresh: %s", error_text(error))
        self._arm(self.clock.now(), fallback=BACKOFF_START)

    def _due_moments(self) -> list[float]:
        moments = []
        for p in self.plan:
            if p.refresh_at is not None and not p.login_required:
                moments.append(max(p.refresh_at, self.retry_at.get(p.name, p.refresh_at)))
            if p.warning_at is not None:
                moments.append(p.warning_at)
        return moments

    def _arm(self, now: float, *, fallback: float | None = None) -> None:
        moments = self._due_moments()
        self.next_wakeup_at = min(moments) if moments else None
        if fallback is not None and self.next_wakeup_at is None:
            self.next_wakeup_at = now + fallback
        self.timer.stop()
        if self.next_wakeup_at is not None and self._running:
            delay = min(self.max_sleep, max(MIN_SLEEP, self.next_wakeup_at - now))
            self._armed_wall, self._armed_mono = now, time.monotonic()
            self.timer.start(int(delay * 1000))
            log.debug("next wake-up in %.0f s", delay)
        self.rescheduled.emit(self.next_wakeup_at)

    # -- firing -----------------------------------------------------------------------------
    @Slot()
    def on_timer(self) -> None:
        """The timer fired (or a test forces it): refresh what is due, then plan again."""
        now = self.clock.now()
        if self._armed_mono:
            drift = (now - self._armed_wall) - (time.monotonic() - self._armed_mono)
            if abs(drift) > JUMP_TOLERANCE:
                self.jumps += 1
                log.info(
                    "wall clock moved %.0f s against the monotonic clock (suspend or clock change)", drift
                )
        due = [
            p.name
            for p in self.plan
            if p.refresh_at is not None
            and not p.login_required
            and p.refresh_at <= now
            and self.retry_at.get(p.name, 0.0) <= now
            and p.name not in self.inflight
        ]
        for name in due:
            self._refresh(name)
        if not self.inflight:
            self.reschedule()

    def _refresh(self, name: str) -> None:
        self.inflight.add(name)
        service = self.service
        run_in_background(
            lambda: service.refresh(name),
            lambda tokens: self._on_refreshed(name, tokens),
            lambda error: self._on_refresh_failed(name, error),
            context=self,
        )

    def _on_refreshed(self, name: str, tokens: TokenSet) -> None:
        self.inflight.discard(name)
        self.failures.pop(name, None)
        self.retry_at.pop(name, None)
        self.refreshed.emit(
            name, True, f"Refreshed; access token valid until {fmt_time(tokens.access_expires_at)}."
        )
        if not self.inflight:
            self.reschedule()

    def _on_refresh_failed(self, name: str, error: BaseException) -> None:
        self.inflight.discard(name)
        if isinstance(error, LoginRequired):
            self.refreshed.emit(name, False, f"Login required: {error_text(error)}")
        else:
            count = self.failures.get(name, 0) + 1
            self.failures[name] = count
            wait = min(BACKOFF_MAX, BACKOFF_START * 2 ** (count - 1))
            self.retry_at[name] = self.clock.now() + wait
            self.refreshed.emit(
                name,
                False,
                f"Background refresh failed (retrying in {fmt_duration(wait)}): {error_text(error)}",
            )
        if not self.inflight:
            self.reschedule()

    # -- notifications ----------------------------------------------------------------------
    def _notify(self, now: float) -> None:
        for p in self.plan:
            if not p.has_tokens:
                continue
            left = None if p.refresh_expires_at is None else p.refresh_expires_at - now
            if p.login_required or (left is not None and left <= 0):
                kind, text = KIND_EXPIRED, f"The refresh token of {p.name} has expired: log in again."
            elif left is not None and left <= schedule.WARN_WINDOW:
                kind = KIND_EXPIRING
                text = (
                    f"The refresh token of {p.name} expires in {fmt_duration(left)} "
                    f"({fmt_time(p.refresh_expires_at)}): log in again to keep it working."
                )
            else:
                continue
            key = (p.name, kind, p.refresh_expires_at)
            if key in self.notified:
                continue
            self.notified.add(key)
            if self.notifications_enabled:
                self.notification.emit(p.name, kind, text)

"""Background refresh: one single-shot QTimer to the next moment core's policy says anything is due.

The decisions (what is due, backoff, warnings, clock jumps) are core's (tdgui.core.background);
this adapter only sleeps, asks the controller to refresh, and emits what the policy found.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication

from tdgui.core import background
from tdgui.core.background import BackgroundState, Notice, NoticeKind, WarnPolicy
from tdgui.core.clock import Clock
from tdgui.core.errors import LoginRequired
from tdgui.core.status import AccountPlan
from tdgui.core.text import fmt_duration
from tdgui.qt.controller import Controller, error_text
from tdgui.qt.worker import run_in_background

log = logging.getLogger(__name__)

# Re-exported for the shell and tests.
BACKOFF_START = background.BACKOFF_START
KIND_EXPIRING = NoticeKind.EXPIRING.value
KIND_EXPIRED = NoticeKind.EXPIRED.value


class RefreshScheduler(QObject):
    """Sleeps until the next refresh or warning is due, then acts; re-plans on every change."""

    #: next_wakeup_at (epoch seconds, or None when nothing is due ever)
    rescheduled = Signal(object)
    #: name, ok, message (background refreshes only)
    refreshed = Signal(str, bool, str)
    #: name, kind ("expiring" / "expired"), message
    notification = Signal(str, str, str)

    def __init__(
        self,
        controller: Controller,
        *,
        clock: Clock | None = None,
        max_sleep: float = background.MAX_SLEEP,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.clock = clock or controller.service.clock
        self.max_sleep = max_sleep
        self.plan: list[AccountPlan] = []
        self.state = BackgroundState()
        self.next_wakeup_at: float | None = None
        self.notifications_enabled = True
        #: the user's "log in again soon" lead times (Settings; core decides with them)
        self.warn_policy = WarnPolicy()
        self.jumps = 0
        #: refreshes this scheduler started and waits for
        self._mine: set[str] = set()
        self._planning = False
        self._plan_again = False
        self._armed_wall = 0.0
        self._armed_mono = 0.0
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setTimerType(Qt.TimerType.CoarseTimer)
        self.timer.timeout.connect(self.on_timer)
        self._running = False
        controller.changed.connect(self._on_changed)
        controller.refresh_finished.connect(self._on_refresh_finished)
        controller.refresh_failed.connect(self._on_refresh_failed)

    @property
    def retry_at(self) -> dict[str, float]:
        return self.state.retry_at

    @property
    def failures(self) -> dict[str, int]:
        return self.state.failures

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

    @Slot(str)
    def _on_changed(self, _name: str) -> None:
        if not self._mine:
            self.reschedule()

    # -- planning ---------------------------------------------------------------------------
    def reschedule(self) -> None:
        """Re-read every account (off the GUI thread) and re-arm the timer."""
        if self._planning:
            self._plan_again = True
            return
        self._planning = True
        run_in_background(self.controller.service.plans, self._on_plan, self._on_plan_error, context=self)

    @Slot(object)
    def _on_plan(self, plan: list[AccountPlan]) -> None:
        self._planning = False
        self.plan = plan
        now = self.clock.now()
        for notice in background.notices(plan, now, self.state, self.warn_policy):
            self._announce(notice)
        self._arm(now, background.next_wakeup(plan, self.state, now, self.warn_policy))
        if self._plan_again:
            self._plan_again = False
            self.reschedule()

    @Slot(object)
    def _on_plan_error(self, error: BaseException) -> None:
        self._planning = False
        log.warning("could not plan the next refresh: %s", error_text(error))
        now = self.clock.now()
        wakeup = background.next_wakeup(self.plan, self.state, now, self.warn_policy)
        self._arm(now, wakeup or now + background.BACKOFF_START)

    def _arm(self, now: float, wakeup_at: float | None) -> None:
        self.next_wakeup_at = wakeup_at
        self.timer.stop()
        if wakeup_at is not None and self._running:
            delay = background.sleep_for(wakeup_at, now, self.max_sleep)
            self._armed_wall, self._armed_mono = now, time.monotonic()
            self.timer.start(int(delay * 1000))
            log.debug("next wake-up in %.0f s", delay)
        self.rescheduled.emit(wakeup_at)

    # -- firing -----------------------------------------------------------------------------
    @Slot()
    def on_timer(self) -> None:
        """The timer fired (or a test forces it): refresh what is due, then plan again."""
        now = self.clock.now()
        if self._armed_mono:
            drift = background.clock_jump(self._armed_wall, self._armed_mono, now, time.monotonic())
            if drift is not None:
                self.jumps += 1
                log.info(
                    "wall clock moved %.0f s against the monotonic clock (suspend or clock change)", drift
                )
        for name in background.due(self.plan, now, self.state, self.controller.refreshing):
            if self.controller.refresh(name, force=False):
                self._mine.add(name)
        if not self._mine:
            self.reschedule()

    @Slot(str, bool, str)
    def _on_refresh_finished(self, name: str, ok: bool, message: str) -> None:
        if name not in self._mine:
            return
        if ok:
            self.state.succeeded(name)
            self.refreshed.emit(name, True, message)
        self._done(name)

    @Slot(str, object)
    def _on_refresh_failed(self, name: str, error: BaseException) -> None:
        if name not in self._mine:
            return
        if isinstance(error, LoginRequired):
            self.refreshed.emit(name, False, f"Login required: {error_text(error)}")
        else:
            wait = self.state.failed(name, self.clock.now())
            self.refreshed.emit(
                name,
                False,
                f"Background refresh failed (retrying in {fmt_duration(wait)}): {error_text(error)}",
            )

    def _done(self, name: str) -> None:
        self._mine.discard(name)
        if not self._mine:
            self.reschedule()

    # -- notifications ----------------------------------------------------------------------
    def _announce(self, notice: Notice) -> None:
        if self.notifications_enabled:
            self.notification.emit(notice.account, notice.kind.value, notice.text)

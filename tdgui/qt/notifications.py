"""Desktop notifications over D-Bus (freedesktop Desktop Notifications 1.2) with a "Log in now" action.

Core decides what to say and when (tdgui.core.background); this module only delivers one
notification per account to the session's notification daemon and reports which action the
user chose. Where no daemon owns org.freedesktop.Notifications the shell uses the tray balloon.

Why jeepney and not PySide6.QtDBus: Notify's second argument is a uint32 (replaces_id), and
PySide6 6.12 cannot marshal one: a Python int becomes 'i' in a message, and
`QDBusArgument() << 0` picks the quint16 overload ('q'); the daemon then refuses the call
("(sqsssasa{sv}i) does not match expected type (susssasa{sv}i)", seen with dunst). jeepney
(pure Python, already installed on Linux as keyring's Secret Service transport) takes an
explicit signature. Its threading router reads the socket on its own thread; replies and the
daemon's signals come back to the GUI thread through queued Qt signals.

Every bus call runs on one thread of this notifier, in order: a bus or daemon that does not
answer holds that thread only (not the app's worker pool), and a notification and its
withdrawal reach the daemon in the order they were asked for.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot

from tdgui.qt.worker import run_in_background

log = logging.getLogger(__name__)

SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
INTERFACE = "org.freedesktop.Notifications"
#: The action key the shell acts on, and the label the daemon shows for it.
ACTION_LOGIN = "login"
ACTION_LOGIN_LABEL = "Log in now"
#: The spec's key for a click on the notification itself: it opens the window.
ACTION_DEFAULT = "default"
#: Seconds to wait for the bus or the daemon: a hung daemon must not keep a warning from the tray.
CALL_TIMEOUT = 5.0
#: Seconds close() waits for a bus call in flight (a hung bus would hold the quit up to 11 s).
CLOSE_WAIT = 1.0
#: urgency hint values (spec: "Urgency Levels")
URGENCY_NORMAL = 1
URGENCY_CRITICAL = 2


class NoDaemon(Exception):
    """No session bus, or no notification daemon running on it: the tray balloon instead."""


class DesktopNotifier(QObject):
    """One resident notification per account on the session bus; emits the action the user chose."""

    #: account, action key ("login" or "default")
    action_invoked = Signal(str, str)
    #: account, notification id: the daemon showed it
    sent = Signal(str, int)
    #: account, title, text: the daemon refused or did not answer (the caller falls back)
    failed = Signal(str, str, str)
    #: from the router's thread: member, notification id, action key (queued to the GUI thread)
    _signal_seen = Signal(str, int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._router: Any = None
        self._owner: str | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._listener: threading.Thread | None = None
        self._filter: Any = None
        #: notification id -> account, and the account's current notification
        self.ids: dict[int, str] = {}
        self.by_account: dict[str, int] = {}
        #: close() ran (the app quits): no more bus calls, no more answers delivered
        self._closed = False
        #: the session bus could not be reached: every later notify fails at once
        self._no_bus = False
        #: the bus thread's own record: account -> the id the daemon shows for it now
        self._shown: dict[str, int] = {}
        #: one thread for every bus call, in order (a 1-thread pool runs its jobs first in,
        #: first out): a hung bus holds it alone, never the app's worker pool
        self._bus = QThreadPool(self)
        self._bus.setMaxThreadCount(1)
        #: guards publishing the router against close() (never held while connecting)
        self._publish = threading.Lock()
        self._signal_seen.connect(self._on_signal_seen)

    # -- the bus ----------------------------------------------------------------------------
    def _connect(self) -> Any:
        """The router on the session bus, opened once; None where there is none (bus thread)."""
        if self._router is not None or self._closed or self._no_bus:
            return self._router
        try:
            from jeepney import MatchRule, message_bus
            from jeepney.io.threading import DBusRouter, open_dbus_connection
        except ImportError:
            return None  # not Linux (no jeepney): the tray balloon
        try:
            router = DBusRouter(open_dbus_connection(bus="SESSION"))
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            # No DBUS_SESSION_BUS_ADDRESS, or a bus that refuses us: not an error for the app.
            log.debug("no session bus for desktop notifications: %s", exc)
            self._no_bus = True
            return None
        rule = MatchRule(type="signal", interface=INTERFACE, path=PATH)
        self._filter = router.filter(rule, queue=self._queue)
        try:
            # The daemon may broadcast its signals (GNOME) or send them to us only (dunst);
            # AddMatch is for the first, the local filter sees both.
            router.send_and_get_reply(message_bus.AddMatch(rule), timeout=CALL_TIMEOUT)
        except Exception as exc:  # jeepney raises its own errors and TimeoutError
            log.warning("could not subscribe to notification signals: %s", exc)
        with self._publish:
            if not self._closed:
                self._router = router
                self._listener = threading.Thread(
                    target=self._listen, name="tdgui-notifications", daemon=True
                )
                self._listener.start()
                return router
        router.close()  # the app quit while this thread connected
        router.conn.close()
        return None

    def _daemon(self, router: Any) -> str | None:
        """The unique bus name of the notification daemon running now, or None (blocking).

        Only a running daemon counts: D-Bus would also start an installed one on demand, but a
        daemon the desktop does not run is a second notification UI nobody looks at.
        """
        from jeepney import message_bus
        from jeepney.wrappers import unwrap_msg

        def ask(message: Any) -> Any:
            (answer,) = unwrap_msg(router.send_and_get_reply(message, timeout=CALL_TIMEOUT))
            return answer

        if not ask(message_bus.NameHasOwner(SERVICE)):
            return None
        return str(ask(message_bus.GetNameOwner(SERVICE)))

    # -- sending ----------------------------------------------------------------------------
    def notify(self, account: str, title: str, text: str, *, urgent: bool) -> None:
        """Show (or replace) this account's notification; `sent` or `failed` follows.

        On the bus thread: a bus or daemon that does not answer costs the window nothing; the
        warning then reaches the tray balloon (`failed`) once the bus gave up (CALL_TIMEOUT
        per call; jeepney's own 1 s to log in to the bus and 10 s for its Hello).
        """
        body = [
            "tdgui",
            0,  # replaces_id: the bus thread's current id of this account's notification
            "dialog-warning",
            title,
            text,
            [ACTION_DEFAULT, "Open tdgui", ACTION_LOGIN, ACTION_LOGIN_LABEL],
            {
                # Stays in the notification centre after an action, until the user or tdgui
                # removes it (spec: "resident"); the login warning must not vanish (defect 11).
                "resident": ("b", True),
                "urgency": ("y", URGENCY_CRITICAL if urgent else URGENCY_NORMAL),
                "desktop-entry": ("s", "tdgui"),
                "category": ("s", "x-tdgui.login"),
            },
            0,  # expire_timeout 0: never expires (spec: Notify)
        ]

        def send() -> tuple[int, str]:
            from jeepney import DBusAddress, new_method_call
            from jeepney.low_level import MessageFlag
            from jeepney.wrappers import unwrap_msg

            router = self._connect()
            if router is None:
                raise NoDaemon("no session bus")
            owner = self._daemon(router)
            if owner is None:
                raise NoDaemon("no notification daemon is running")
            body[1] = self._shown.get(account, 0)
            address = DBusAddress(PATH, bus_name=SERVICE, interface=INTERFACE)
            message = new_method_call(address, "Notify", "susssasa{sv}i", tuple(body))
            message.header.flags |= MessageFlag.no_auto_start  # see _daemon()
            (notification_id,) = unwrap_msg(router.send_and_get_reply(message, timeout=CALL_TIMEOUT))
            self._shown[account] = int(notification_id)
            return int(notification_id), owner

        def done(answer: object) -> None:
            if self._closed:
                return  # the app quits
            assert isinstance(answer, tuple)
            notification_id, self._owner = answer
            old = self.by_account.get(account)
            if old is not None and old != notification_id:
                self.ids.pop(old, None)
            self.ids[notification_id] = account
            self.by_account[account] = notification_id
            log.info("desktop notification %d for %s", notification_id, account)
            self.sent.emit(account, notification_id)

        def refused(error: BaseException) -> None:
            if self._closed:
                return  # the app quits
            if isinstance(error, NoDaemon):
                log.info("no desktop notification for %s: %s", account, error)
            else:  # jeepney's errors, TimeoutError, OSError
                log.warning(
                    "the session bus or notification daemon failed the warning for %s: %s", account, error
                )
            self.failed.emit(account, title, text)

        run_in_background(send, done, refused, context=self, on=self._bus)

    def withdraw(self, account: str) -> None:
        """Remove this account's notification (its login is done): CloseNotification.

        After any notify() still on its way: the bus thread closes what it last showed.
        """
        notification_id = self.by_account.pop(account, None)
        if notification_id is not None:
            self.ids.pop(notification_id, None)

        def close() -> None:
            from jeepney import DBusAddress, new_method_call

            shown = self._shown.pop(account, None)
            router = self._router
            if shown is None or router is None:
                return
            address = DBusAddress(PATH, bus_name=SERVICE, interface=INTERFACE)
            router.send_and_get_reply(
                new_method_call(address, "CloseNotification", "u", (shown,)), timeout=CALL_TIMEOUT
            )

        def failed(error: BaseException) -> None:
            log.info("could not withdraw the notification of %s: %s", account, error)

        run_in_background(close, None, failed, context=self, on=self._bus)

    # -- the daemon's signals ---------------------------------------------------------------
    def _listen(self) -> None:
        """Router thread side: hand each signal of the daemon to the GUI thread (queued)."""
        from jeepney.low_level import HeaderFields

        while True:
            message = self._queue.get()
            if message is None:
                return
            fields = message.header.fields
            member = fields.get(HeaderFields.member, "")
            sender = fields.get(HeaderFields.sender)
            if member == "ActionInvoked" and len(message.body) == 2:
                self._signal_seen.emit(f"{member}:{sender}", int(message.body[0]), str(message.body[1]))
            elif member == "NotificationClosed" and len(message.body) >= 1:
                self._signal_seen.emit(f"{member}:{sender}", int(message.body[0]), "")

    @Slot(str, int, str)
    def _on_signal_seen(self, what: str, notification_id: int, action: str) -> None:
        member, _, sender = what.partition(":")
        if self._owner is not None and sender != self._owner:
            return  # only the daemon that showed it speaks for our notifications
        account = self.ids.get(notification_id)
        if account is None:
            return  # another application's notification, or one already withdrawn
        if member == "NotificationClosed":
            self.ids.pop(notification_id, None)
            if self.by_account.get(account) == notification_id:
                del self.by_account[account]
            return
        log.info("notification action %r for %s", action, account)
        self.action_invoked.emit(account, action)

    def close(self) -> None:
        """Stop listening and leave the bus (at quit); a call still waiting on the bus ends too."""
        with self._publish:
            self._closed = True
            router, self._router = self._router, None
        # Its call ends first (the reply in, or given up): closing the router under a reply
        # just set makes jeepney's receiver raise InvalidStateError (a thread exception).
        self._bus.waitForDone(int(CLOSE_WAIT * 1000))
        self._queue.put(None)
        if self._listener is not None:
            self._listener.join(timeout=5)
            self._listener = None
        if router is not None:
            if self._filter is not None:
                self._filter.close()
            router.close()
            router.conn.close()

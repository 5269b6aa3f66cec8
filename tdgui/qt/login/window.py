"""The login window of the login child: the provider's page in a locked-down, off-the-record view.

It only shows the page and hands the caught callback URL on; the parent process (which has the
PKCE verifier) checks the state and exchanges the code. Emits `done(ChildResult)` exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWebEngineCore import (
    QWebEngineLoadingInfo,
    QWebEngineProfile,
    QWebEngineProfileBuilder,
    qWebEngineChromiumVersion,
)
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tdgui.core import first_login
from tdgui.core.login_outcome import CANCELLED_MESSAGE, CLOSED_MESSAGE, LoginOutcome, timeout_message
from tdgui.core.logs import SECRETS
from tdgui.core.navigation import NavigationPolicy, display_url
from tdgui.core.providers import host_of
from tdgui.qt.login.device import prune_device_dir
from tdgui.qt.login.identity import chrome_user_agent
from tdgui.qt.login.page import GuardedPage, RequestGuard, url_text
from tdgui.qt.login.protocol import ChildResult, LoginSpec, ResultKind

log = logging.getLogger(__name__)


#: Chromium's net::ERR_ABORTED: a navigation this window stopped on purpose.
_ERR_ABORTED = -3


class LoginWindow(QWidget):
    """One login for one account, as the parent's LoginSpec describes it."""

    done = Signal(object)
    #: a page finished loading (its URL without the query)
    page_loaded = Signal(str)
    #: the guard blocked a main-frame navigation or refused a popup (test hooks wait on this)
    guarded = Signal()

    def __init__(self, spec: LoginSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.spec = spec
        self.result: ChildResult | None = None
        self.profile: QWebEngineProfile | None = None
        self.page: GuardedPage | None = None
        self.view: QWebEngineView | None = None
        self.blocked: list[str] = []
        self.popups_refused = 0
        self.pinned = False
        self.engine: tuple[str, str] | None = None
        self._cert_problem: str | None = None
        self._error_status = 0
        self._page_focused = False
        self._request_guard: RequestGuard | None = None
        #: TEST ONLY, set by the login child from its honoured hooks (tdgui.qt.login.hooks)
        self.test_leaf: tuple[str, frozenset[str]] | None = None

        self.setWindowTitle(f"Log in to {spec.account} - tdgui")
        self.resize(900, 760)
        self.address = QLineEdit(self)
        self.address.setReadOnly(True)
        self.address.setPlaceholderText("connecting...")
        self.address.setAccessibleName("Address of the login page")
        # Read-only: no Tab stop (issue 14, defect 10); a click still selects it for copying.
        self.address.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.tls_label = QLabel(self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setMaximumHeight(6)
        self.progress.setTextVisible(False)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setObjectName("loginMessage")
        self.browser_button = QPushButton("Log in with my browser instead", self)
        # Shown when the guard blocked a main-frame navigation: the one click out of a page
        # the window will not follow (a blocked login is never a dead end).
        self.continue_button = QPushButton("Continue in my browser", self)
        self.continue_button.setObjectName("continueInBrowser")
        self.continue_button.setVisible(False)
        self.continue_button.clicked.connect(self.use_system_browser)
        self.cancel_button = QPushButton("Cancel", self)
        self.browser_button.clicked.connect(self.use_system_browser)
        self.cancel_button.clicked.connect(self.cancel)
        # Escape cancels the login, as in a dialog (issue 14, defect 10). A window shortcut:
        # it works while the page has the focus, which a keyPressEvent here would not see.
        self.escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self.escape.setContext(Qt.ShortcutContext.WindowShortcut)
        self.escape.activated.connect(self.cancel)

        top = QHBoxLayout()
        top.addWidget(self.tls_label)
        top.addWidget(self.address, 1)
        self.body = QVBoxLayout()
        buttons = QHBoxLayout()
        buttons.addWidget(self.browser_button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addLayout(self.body, 1)
        blocked_row = QHBoxLayout()
        blocked_row.addWidget(self.message, 1)
        blocked_row.addWidget(self.continue_button)
        layout.addLayout(blocked_row)
        layout.addLayout(buttons)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timeout)

    # -- start ------------------------------------------------------------------------------
    def start(self) -> None:
        """Show the window and open the provider's page."""
        self._timer.start(max(1, int(self.spec.timeout * 1000)))
        self.show()
        self._build_engine()
        self.message.setText(f"Log in on {host_of(self.spec.url)}'s page.")
        self.navigate(self.spec.url)

    def navigate(self, url: str) -> None:
        """Open `url` in the view (the guard decides as for any navigation)."""
        if self.page is not None and self.result is None:
            self.page.setUrl(QUrl(url))

    def _build_engine(self) -> None:
        profile = self._make_profile()
        self._set_identity(profile)
        policy = NavigationPolicy(self.spec.login_domains)
        # Sub-resources never ask acceptNavigationRequest: this guard sees each request.
        self._request_guard = RequestGuard(self.spec.redirect_uri, policy, parent=profile)
        profile.setUrlRequestInterceptor(self._request_guard)
        view = QWebEngineView(self)
        page = GuardedPage(
            profile,
            redirect_uri=self.spec.redirect_uri,
            policy=policy,
            pinned_sha256=self.spec.pinned_sha256,
            pinned_host=self.spec.pinned_host,
            test_leaf=self.test_leaf,
            parent=view,
        )
        view.setPage(page)
        # One tree owned by Qt: the view's children are deleted in order, the page before the
        # profile (a profile that goes first crashes Chromium's side), however the view goes.
        profile.setParent(view)
        # Queued: these fire inside Chromium's navigation callbacks, which must return first.
        queued = Qt.ConnectionType.QueuedConnection
        page.callback_caught.connect(self._on_callback, queued)
        page.navigation_blocked.connect(self._on_blocked, queued)
        page.popup_refused.connect(self._on_popup, queued)
        page.certificate_rejected.connect(self._on_certificate_rejected)
        page.certificate_pinned.connect(self._on_certificate_pinned)
        page.loadProgress.connect(self.progress.setValue)
        page.urlChanged.connect(self._on_url_changed)
        page.loadingChanged.connect(self._on_loading_changed)
        page.titleChanged.connect(self._on_title)
        self.profile, self.page, self.view = profile, page, view
        view.setAccessibleName("Login page")
        self.body.addWidget(view)
        # The keyboard starts in the page and Tab goes from it to the buttons (defect 10).
        QWidget.setTabOrder(view, self.continue_button)
        QWidget.setTabOrder(self.continue_button, self.browser_button)
        QWidget.setTabOrder(self.browser_button, self.cancel_button)
        view.setFocus(Qt.FocusReason.OtherFocusReason)

    def _make_profile(self) -> QWebEngineProfile:
        """Off the record; or, when the account remembers its device, cookies kept in its dir."""
        if self.spec.device_dir is None:
            # No storage name: off the record; cookies, cache and local storage stay in memory.
            profile = QWebEngineProfile()
            profile.setPersistentCookiesPolicy(QWebEngineProfile.PersistentCookiesPolicy.NoPersistentCookies)
            if not profile.isOffTheRecord():  # never write the provider's cookies to disk
                raise RuntimeError("the login view's web profile is not off the record")
        else:
            # "Remember this device": the broker's device cookie survives to the next login,
            # so it does not ask for a security code each time (docs/providers.md). Only
            # cookies are kept: prune_device_dir removes everything else Chromium writes.
            prune_device_dir(Path(self.spec.device_dir))
            # The builder (Qt 6.9+) sets the paths before the profile exists: a profile made
            # by name first creates its default dir under the data location.
            builder = QWebEngineProfileBuilder()
            builder.setPersistentStoragePath(self.spec.device_dir)
            builder.setCachePath(self.spec.device_dir)
            builder.setHttpCacheType(QWebEngineProfile.HttpCacheType.MemoryHttpCache)
            builder.setPersistentCookiesPolicy(
                QWebEngineProfile.PersistentCookiesPolicy.AllowPersistentCookies
            )
            profile = builder.createProfile(f"tdgui-device-{self.spec.account}")
            if profile.isOffTheRecord():
                raise RuntimeError("the login view's remembered-device profile has no storage")
        profile.setHttpCacheType(QWebEngineProfile.HttpCacheType.MemoryHttpCache)
        return profile

    @staticmethod
    def _set_identity(profile: QWebEngineProfile) -> None:
        """A normal Chrome's user agent (tdgui.qt.login.identity).

        navigator.webdriver is already false in QtWebEngine (Blink sets it only under
        automation); no script is injected to force it: the window never injects script
        into a broker's page (README), and a patched getter is itself a bot signal. The
        emulator test reads what the page sees, so a Qt that changes this is caught.
        """
        profile.setHttpUserAgent(chrome_user_agent(str(qWebEngineChromiumVersion())))

    # -- page events ------------------------------------------------------------------------
    @Slot(QUrl)
    def _on_url_changed(self, url: QUrl) -> None:
        self.address.setText(display_url(url_text(url)))
        self._update_tls(url)

    def _update_tls(self, url: QUrl) -> None:
        if url.scheme() == "https":
            how = "sandbox certificate pinned" if self.pinned else "certificate verified"
            self.tls_label.setText(f"Secure connection to {url.host()} (TLS, {how})")
            self.tls_label.setStyleSheet("color: #1b5e20;")
        elif url.scheme() == "http":
            self.tls_label.setText(f"NOT ENCRYPTED: {url.host()} (plain http)")
            self.tls_label.setStyleSheet("color: #a40e26; font-weight: bold;")
        else:
            self.tls_label.setText("")

    @Slot(str)
    def _on_title(self, title: str) -> None:
        # A bound slot, not a lambda: a lambda holding `self` would be freed inside the page's
        # destructor and could delete this window from there.
        self.setWindowTitle(f"{title} - tdgui login")

    @Slot(str)
    def _on_certificate_pinned(self, fingerprint: str) -> None:
        self.pinned = True
        if self.page is not None:
            self._update_tls(self.page.url())

    @Slot(str)
    def _on_certificate_rejected(self, reason: str) -> None:
        self._cert_problem = reason

    @Slot(QWebEngineLoadingInfo)
    def _on_loading_changed(self, info: QWebEngineLoadingInfo) -> None:
        if self.result is not None:
            return
        status = info.status()
        if status == QWebEngineLoadingInfo.LoadStatus.LoadSucceededStatus:
            if not self._page_focused and self.view is not None:
                # The view's render widget exists only now: give it the keyboard (defect 10:
                # the first focus was on a button, or the address line).
                self._page_focused = True
                self.view.setFocus(Qt.FocusReason.OtherFocusReason)
            self.page_loaded.emit(display_url(url_text(info.url())))
            return
        if status != QWebEngineLoadingInfo.LoadStatus.LoadFailedStatus:
            return
        if info.errorCode() == _ERR_ABORTED:
            return  # a navigation this window blocked or stopped
        host = info.url().host() or "the login page"
        if info.errorDomain() == QWebEngineLoadingInfo.ErrorDomain.HttpStatusCodeDomain:
            self.message.setText(f"{host} answered HTTP {info.errorCode()}.")
            self._error_status = info.errorCode()
            if self.page is not None:  # a known first-setup failure ends here (first_login)
                self.page.toPlainText(self._on_error_page_text)
            return
        if (
            info.errorDomain() == QWebEngineLoadingInfo.ErrorDomain.CertificateErrorDomain
            or self._cert_problem
        ):
            reason = self._cert_problem or info.errorString()
            self._end(
                LoginOutcome.CERTIFICATE,
                f"The certificate of {reason} was rejected, so the page was not loaded. Nothing was changed.",
            )
            return
        self._end(
            LoginOutcome.NETWORK,
            f"Could not load {host}: {info.errorString()} ({info.errorCode()}). "
            "Check your network connection; nothing was changed.",
        )

    def _on_error_page_text(self, text: str) -> None:
        problem = first_login.recognise_page(self._error_status, text)
        if problem is not None and self.result is None:
            self._end(LoginOutcome.FAILED, first_login.explain(problem).message)

    @Slot(str)
    def _on_blocked(self, url: str) -> None:
        self.blocked.append(url)
        host = host_of(url) or url
        self.message.setText(
            f"The login page tried to open {host}, which is not a site of the broker "
            f"({', '.join(self.spec.login_domains) or 'the provider'}), so this window did not "
            "go there. If that page is part of your login, continue in your browser: it opens "
            "the same login in the browser you use every day."
        )
        self.continue_button.setVisible(True)
        self.guarded.emit()

    @Slot()
    def _on_popup(self) -> None:
        self.popups_refused += 1
        self.message.setText("The page tried to open a new window; the login window does not open popups.")
        self.guarded.emit()

    @Slot(str)
    def _on_callback(self, url: str) -> None:
        SECRETS.add(url)
        self.message.setText("Received the authorization; exchanging it for tokens...")
        self._report(ChildResult(ResultKind.CALLBACK, url=url))

    # -- how it ends ------------------------------------------------------------------------
    @Slot()
    def _on_timeout(self) -> None:
        self._end(LoginOutcome.TIMEOUT, timeout_message(self.spec.timeout))

    @Slot()
    def cancel(self) -> None:
        self._end(LoginOutcome.CANCELLED, CANCELLED_MESSAGE)

    @Slot()
    def use_system_browser(self) -> None:
        """Hand the login to the system browser (loopback redirect, RFC 8252 §7.3): the parent runs it."""
        self._report(ChildResult(ResultKind.BROWSER, message="The login continues in the system browser."))

    def closeEvent(self, event: QCloseEvent) -> None:
        self._end(LoginOutcome.CLOSED, CLOSED_MESSAGE)
        super().closeEvent(event)

    def _end(self, outcome: LoginOutcome, message: str) -> None:
        if self.result is None:
            self.message.setText(message)
            self._report(ChildResult(ResultKind.ENDED, outcome=outcome, message=message))

    def _report(self, result: ChildResult) -> None:
        if self.result is not None:
            return
        self._timer.stop()
        self.result = ChildResult(
            result.kind,
            outcome=result.outcome,
            message=result.message,
            url=result.url,
            engine=self.engine,
            blocked=tuple(self.blocked),
            popups_refused=self.popups_refused,
            certificate_pinned=self.pinned,
        )
        log.info(
            "login window for %s done: %s",
            self.spec.account,
            result.outcome.value if result.outcome else result.kind.value,
        )
        self.teardown_engine()
        self.done.emit(self.result)

    def teardown_engine(self) -> None:
        """Delete view, page and profile (before Qt goes down, in that order)."""
        view = self.view
        self.view = self.page = self.profile = None
        if view is None:
            return
        self.body.removeWidget(view)
        view.hide()
        view.deleteLater()  # page and profile are its children, deleted with it in that order

    # -- sandbox scripting (test hooks) ------------------------------------------------------
    def run_sandbox_script(self, script: str, answer: Callable[[object], None] | None = None) -> None:
        """Run JavaScript in the page: on the pinned local sandbox only, never a real broker's page.

        `answer`, if given, receives the script's value.
        """
        if not self.spec.is_sandbox or self.page is None:
            raise RuntimeError("scripts run only in the sandbox's login page")
        if answer is None:
            self.page.runJavaScript(script)
        else:
            self.page.runJavaScript(script, answer)

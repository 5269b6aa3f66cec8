"""The login window: the provider's page in a locked-down web view; the callback is caught, never loaded.

Two modes. With a TokenService (tests, and formerly the app) the window prepares the login and
exchanges the code itself. With a ready LoginSpec and no service (the login child process,
tdgui.qt.login_child) it only shows the page and hands the caught callback URL on
(`callback_received`); the parent process checks it and exchanges the code.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QCloseEvent, QDesktopServices
from PySide6.QtWebEngineCore import (
    QWebEngineCertificateError,
    QWebEngineLoadingInfo,
    QWebEnginePage,
    QWebEngineProfile,
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

from tdgui.core import flow
from tdgui.core.logs import SECRETS
from tdgui.core.providers import host_of, is_loopback_host
from tdgui.core.service import TokenService
from tdgui.core.tokens import TokenSet
from tdgui.qt.login_common import (
    DEFAULT_LOGIN_TIMEOUT,
    LoginOutcome,
    LoginResult,
    LoginSpec,
    _Prepared,
    error_outcome,
    prepare,
    success_message,
    timeout_message,
)
from tdgui.qt.worker import run_in_background

__all__ = [
    "DEFAULT_LOGIN_TIMEOUT",
    "GuardedPage",
    "LoginOutcome",
    "LoginResult",
    "LoginSpec",
    "LoginWindow",
    "display_url",
]

log = logging.getLogger("tdgui.qt.login")

#: Chromium's net::ERR_ABORTED: a navigation this window stopped on purpose.
_ERR_ABORTED = -3


def display_url(url: QUrl) -> str:
    """scheme://host:port/path of a URL: the query (state, code, client id) is never shown or logged."""
    parts = urlsplit(url.toString(QUrl.ComponentFormattingOption.FullyEncoded))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class GuardedPage(QWebEnginePage):
    """A page that navigates only the provider's hosts, opens no popups and accepts no bad certificate."""

    callback_caught = Signal(str)
    navigation_blocked = Signal(str)
    popup_refused = Signal()
    certificate_rejected = Signal(str)
    certificate_pinned = Signal(str)

    def __init__(
        self,
        profile: QWebEngineProfile,
        *,
        redirect_uri: str,
        allowed_hosts: tuple[str, ...],
        pinned_sha256: str | None,
        pinned_host: str | None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(profile, parent)
        self._redirect_uri = redirect_uri
        self._allowed = tuple(h.lower() for h in allowed_hosts)
        self._pinned_sha256 = pinned_sha256
        self._pinned_host = pinned_host
        self.caught = False
        self.certificateError.connect(self._on_certificate_error)

    def _host_allowed(self, url: QUrl) -> bool:
        host = url.host().lower()
        scheme = url.scheme().lower()
        if host not in self._allowed:
            return False
        return scheme == "https" or (scheme == "http" and is_loopback_host(host))

    def acceptNavigationRequest(
        self,
        url: QUrl | str,
        type: QWebEnginePage.NavigationType,
        isMainFrame: bool,
    ) -> bool:
        qurl = QUrl(url) if isinstance(url, str) else url
        # Fully encoded: the redirect as the server sent it, so the code is decoded exactly once.
        text = qurl.toString(QUrl.ComponentFormattingOption.FullyEncoded)
        if flow.matches_callback(text, self._redirect_uri):
            # Stop here: the callback URL is never loaded, nothing connects to its port.
            if isMainFrame and not self.caught:
                self.caught = True
                self.callback_caught.emit(text)
            return False
        if self._host_allowed(qurl):
            return True
        if not isMainFrame and qurl.scheme() in ("about", "data"):
            return True
        shown = display_url(qurl)
        log.info("blocked a navigation to %s", shown)
        if isMainFrame:
            self.navigation_blocked.emit(shown)
        return False

    def createWindow(  # type: ignore[override]
        self,
        type: QWebEnginePage.WebWindowType,
    ) -> QWebEnginePage | None:
        log.info("refused a popup window")
        self.popup_refused.emit()
        return None

    @Slot(QWebEngineCertificateError)
    def _on_certificate_error(self, error: QWebEngineCertificateError) -> None:
        host = error.url().host().lower()
        chain = error.certificateChain()
        fingerprint = hashlib.sha256(bytes(chain[0].toDer().data())).hexdigest() if chain else ""
        if (
            self._pinned_sha256
            and host == self._pinned_host
            and fingerprint
            and fingerprint == self._pinned_sha256
        ):
            error.acceptCertificate()
            self.certificate_pinned.emit(fingerprint)
            return
        error.rejectCertificate()
        log.warning("rejected the certificate of %s: %s", host, error.description())
        self.certificate_rejected.emit(f"{host}: {error.description()}")


class LoginWindow(QWidget):
    """One login for one account; emits `finished(LoginResult)` exactly once."""

    finished = Signal(object)
    page_loaded = Signal(str)
    #: spec mode only: the callback URL exactly as caught (holds the code: never log it).
    callback_received = Signal(str)
    #: spec mode only: the user asked for the system browser instead.
    browser_requested = Signal()
    _open_in_browser = Signal(str)

    def __init__(
        self,
        service: TokenService | None,
        name: str,
        *,
        timeout: float = DEFAULT_LOGIN_TIMEOUT,
        spec: LoginSpec | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        if service is None and spec is None:
            raise ValueError("a LoginWindow needs a TokenService or a prepared LoginSpec")
        self.service = service
        self.name = name
        self.timeout = spec.timeout if spec is not None and service is None else timeout
        self.result: LoginResult | None = None
        #: in-process mode: the pending login (state, verifier); None in spec mode.
        self.prepared: _Prepared | None = None
        #: what the view shows; given (spec mode) or built from `prepared`.
        self.spec: LoginSpec | None = None
        self._given_spec = spec if service is None else None
        #: spec mode: the callback URL or the browser request was handed on; the window is done.
        self.handed_off = False
        self.profile: QWebEngineProfile | None = None
        self.page: GuardedPage | None = None
        self.view: QWebEngineView | None = None
        self.blocked: list[str] = []
        self.popups_refused = 0
        self._started = time.monotonic()
        self._exchanging = False
        self._cert_problem: str | None = None
        self._pinned = False
        self._browser_cancel: threading.Event | None = None

        self.setWindowTitle(f"Log in to {name} - tdgui")
        self.resize(900, 760)
        self.address = QLineEdit(self)
        self.address.setReadOnly(True)
        self.address.setPlaceholderText("connecting...")
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
        self.cancel_button = QPushButton("Cancel", self)
        self.browser_button.clicked.connect(self.use_system_browser)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self._open_in_browser.connect(self._open_url)

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
        layout.addWidget(self.message)
        layout.addLayout(buttons)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timeout)

    # -- start ------------------------------------------------------------------------------
    @property
    def spec_mode(self) -> bool:
        """True in the login child: no service here, the callback URL is handed on."""
        return self.service is None

    def start(self) -> None:
        """Show the window and start the login (begin_login reads the keyring: off the GUI thread)."""
        self._started = time.monotonic()
        self._timer.start(max(1, int(self.timeout * 1000)))
        self.show()
        if self._given_spec is not None:
            self._load(self._given_spec)
            return
        self.message.setText("Preparing the login...")
        service, name = self.service, self.name
        assert service is not None
        run_in_background(lambda: prepare(service, name), self._on_prepared, self._on_error, context=self)

    @Slot(object)
    def _on_prepared(self, prepared: _Prepared) -> None:
        if self.result is not None:
            return
        self.prepared = prepared
        self._load(LoginSpec.from_prepared(self.name, prepared, self.timeout))

    def _load(self, spec: LoginSpec) -> None:
        if self.result is not None:
            return
        self.spec = spec
        self._build_engine(spec)
        self.message.setText(f"Log in on {host_of(spec.url)}'s page.")
        assert self.page is not None
        self.page.setUrl(QUrl(spec.url))

    def _build_engine(self, spec: LoginSpec) -> None:
        # No storage name: off the record; cookies, cache and local storage stay in memory.
        profile = QWebEngineProfile()
        profile.setHttpCacheType(QWebEngineProfile.HttpCacheType.MemoryHttpCache)
        profile.setPersistentCookiesPolicy(QWebEngineProfile.PersistentCookiesPolicy.NoPersistentCookies)
        assert profile.isOffTheRecord()
        view = QWebEngineView(self)
        page = GuardedPage(
            profile,
            redirect_uri=spec.redirect_uri,
            allowed_hosts=spec.allowed_hosts,
            pinned_sha256=spec.pinned_sha256,
            pinned_host=spec.pinned_host,
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
        self.body.addWidget(view)

    # -- page events ------------------------------------------------------------------------
    @Slot(QUrl)
    def _on_url_changed(self, url: QUrl) -> None:
        self.address.setText(display_url(url))
        self._update_tls(url)

    def _update_tls(self, url: QUrl) -> None:
        if url.scheme() == "https":
            how = "sandbox certificate pinned" if self._pinned else "certificate verified"
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
        self._pinned = True
        if self.page is not None:
            self._update_tls(self.page.url())

    @Slot(QWebEngineLoadingInfo)
    def _on_loading_changed(self, info: QWebEngineLoadingInfo) -> None:
        if self.result is not None or self._exchanging or self.handed_off:
            return
        status = info.status()
        if status == QWebEngineLoadingInfo.LoadStatus.LoadSucceededStatus:
            self.page_loaded.emit(display_url(info.url()))
            return
        if status != QWebEngineLoadingInfo.LoadStatus.LoadFailedStatus:
            return
        if info.errorCode() == _ERR_ABORTED:
            return  # a navigation this window blocked or stopped
        host = info.url().host() or "the login page"
        if info.errorDomain() == QWebEngineLoadingInfo.ErrorDomain.HttpStatusCodeDomain:
            self.message.setText(f"{host} answered HTTP {info.errorCode()}.")
            return
        if (
            info.errorDomain() == QWebEngineLoadingInfo.ErrorDomain.CertificateErrorDomain
            or self._cert_problem
        ):
            reason = self._cert_problem or info.errorString()
            self._finish(
                LoginOutcome.CERTIFICATE,
                f"The certificate of {reason} was rejected, so the page was not loaded. Nothing was changed.",
            )
            return
        self._finish(
            LoginOutcome.NETWORK,
            f"Could not load {host}: {info.errorString()} ({info.errorCode()}). "
            "Check your network connection; nothing was changed.",
        )

    @Slot(str)
    def _on_certificate_rejected(self, reason: str) -> None:
        self._cert_problem = reason

    @Slot(str)
    def _on_blocked(self, url: str) -> None:
        self.blocked.append(url)
        self.message.setText(
            f"Blocked a page on {host_of(url) or url}: the login window only visits "
            f"{', '.join(self.spec.allowed_hosts) if self.spec else 'the provider'}."
        )

    @Slot()
    def _on_popup(self) -> None:
        self.popups_refused += 1
        self.message.setText("The page tried to open a new window; the login window does not open popups.")

    @Slot(str)
    def _on_callback(self, url: str) -> None:
        if self.result is not None or self.spec is None or self.handed_off:
            return
        SECRETS.add(url)
        if self.spec_mode:
            # The parent process checks the state and exchanges the code; this window is done.
            self.handed_off = True
            self._timer.stop()
            self.teardown_engine()
            self.message.setText("Received the authorization; exchanging it for tokens...")
            self.callback_received.emit(url)
            return
        assert self.prepared is not None
        self._exchanging = True
        self._timer.stop()
        self.progress.setRange(0, 0)
        self.cancel_button.setEnabled(False)
        self.browser_button.setEnabled(False)
        self.message.setText("Received the authorization; exchanging it for tokens...")
        service, pending = self.service, self.prepared.pending
        assert service is not None
        run_in_background(
            lambda: service.finish_login(pending, url), self._on_tokens, self._on_error, context=self
        )

    # -- results ----------------------------------------------------------------------------
    @Slot(object)
    def _on_tokens(self, tokens: TokenSet) -> None:
        self._finish(LoginOutcome.SUCCESS, success_message(self.name, tokens), tokens)

    @Slot(object)
    def _on_error(self, error: BaseException) -> None:
        self._finish(*error_outcome(error))

    @Slot()
    def _on_timeout(self) -> None:
        self._finish(LoginOutcome.TIMEOUT, timeout_message(self.timeout))

    @Slot()
    def _on_cancel_clicked(self) -> None:
        if self.result is not None:
            self.close()
        else:
            self.cancel()

    def cancel(self) -> None:
        self._finish(LoginOutcome.CANCELLED, "The login was cancelled. Nothing was changed.")

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.result is None and not self._exchanging and not self.handed_off:
            self._finish(
                LoginOutcome.CLOSED,
                "The login window was closed before the login finished. Nothing was changed.",
            )
        super().closeEvent(event)

    def _finish(self, outcome: LoginOutcome, message: str, tokens: TokenSet | None = None) -> None:
        if self.result is not None or self.handed_off:
            return
        self._timer.stop()
        if self._browser_cancel is not None:
            self._browser_cancel.set()
        self._exchanging = False
        self.result = LoginResult(self.name, outcome, message, time.monotonic() - self._started, tokens)
        log.info("login to %s ended: %s", self.name, outcome.value)
        self.teardown_engine()
        self.progress.setRange(0, 100)
        self.progress.setValue(100 if outcome is LoginOutcome.SUCCESS else 0)
        colour = "#1b5e20" if outcome is LoginOutcome.SUCCESS else "#a40e26"
        self.message.setStyleSheet(f"color: {colour}; font-weight: bold;")
        self.message.setText(message)
        self.browser_button.hide()
        self.cancel_button.setText("Close")
        self.cancel_button.setEnabled(True)
        self.finished.emit(self.result)

    def teardown_engine(self) -> None:
        """Delete view, page and profile so an idle app does not keep Chromium's memory."""
        view = self.view
        self.view = self.page = self.profile = None
        if view is None:
            return
        self.body.removeWidget(view)
        view.hide()
        view.deleteLater()  # page and profile are its children, deleted with it in that order

    # -- sandbox scripting (tests, self-test) ----------------------------------------------
    def run_sandbox_script(self, script: str) -> None:
        """Run JavaScript in the page: allowed for the local sandbox only, never a real broker's page."""
        if self.spec is None or self.spec.provider != "sandbox" or self.page is None:
            raise RuntimeError("scripts run only in the sandbox's login page")
        self.page.runJavaScript(script)

    # -- system browser ---------------------------------------------------------------------
    @Slot()
    def use_system_browser(self) -> None:
        """Switch to the system-browser login (loopback redirect, RFC 8252 §7.3)."""
        if self.result is not None or self._exchanging or self.handed_off:
            return
        if self.spec_mode:
            # The parent runs the loopback listener (it has the service); this process ends.
            self.handed_off = True
            self._timer.stop()
            self.teardown_engine()
            self.browser_requested.emit()
            return
        self.teardown_engine()
        self.browser_button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.address.setText("")
        self.tls_label.setText("")
        self.message.setText(
            "Finish the login in your web browser. This window waits for the redirect; "
            "your browser may warn once about tdgui's local certificate."
        )
        cancel = threading.Event()
        self._browser_cancel = cancel
        remaining = max(1.0, self.timeout - (time.monotonic() - self._started))
        service, name, opener = self.service, self.name, self._open_in_browser.emit
        assert service is not None
        self._exchanging = True
        run_in_background(
            lambda: service.browser_login(name, opener, timeout=remaining, cancel=cancel),
            self._on_tokens,
            self._on_browser_error,
            context=self,
        )

    @Slot(object)
    def _on_browser_error(self, error: BaseException) -> None:
        self._exchanging = False
        self._on_error(error)

    @Slot(str)
    def _open_url(self, url: str) -> None:
        if not QDesktopServices.openUrl(QUrl(url)):
            self.message.setText("Could not start a web browser; use the login window instead.")


#: Kept for callers of the old name.
_prepare = prepare

"""The guarded web page: asks tdgui.core.navigation about every navigation and certificate error."""

from __future__ import annotations

import hashlib
import logging

from PySide6.QtCore import QObject, QUrl, Signal, Slot
from PySide6.QtWebEngineCore import (
    QWebEngineCertificateError,
    QWebEnginePage,
    QWebEngineProfile,
    QWebEngineUrlRequestInfo,
    QWebEngineUrlRequestInterceptor,
)

from tdgui.core.navigation import (
    NavigationPolicy,
    Verdict,
    certificate_acceptable,
    decide_navigation,
    display_url,
    request_allowed,
)

log = logging.getLogger(__name__)


def url_text(url: QUrl | str) -> str:
    """Fully encoded: the URL as the server sent it, so the code is decoded exactly once."""
    qurl = QUrl(url) if isinstance(url, str) else url
    return qurl.toString(QUrl.ComponentFormattingOption.FullyEncoded)


class RequestGuard(QWebEngineUrlRequestInterceptor):
    """Every sub-resource request: https from any host, no plain http, never the callback.

    Main-frame requests were already decided by GuardedPage.acceptNavigationRequest (which
    also sees their server redirects); this is what a script, image or XHR would load.
    Runs on Chromium's IO thread: it only reads its immutable policy.
    """

    def __init__(self, redirect_uri: str, policy: NavigationPolicy, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._redirect_uri = redirect_uri
        self._policy = policy

    def interceptRequest(self, info: QWebEngineUrlRequestInfo) -> None:
        if info.resourceType() == QWebEngineUrlRequestInfo.ResourceType.ResourceTypeMainFrame:
            return
        url = url_text(info.requestUrl())
        if not request_allowed(url, redirect_uri=self._redirect_uri, policy=self._policy):
            log.info("blocked a sub-resource request to %s", display_url(url))
            info.block(True)


class GuardedPage(QWebEnginePage):
    """Navigates only the provider's hosts, opens no popups, accepts no certificate error but the pin."""

    #: the callback URL exactly as caught (holds the code: never log it)
    callback_caught = Signal(str)
    #: a main-frame navigation was blocked: its URL without the query
    navigation_blocked = Signal(str)
    popup_refused = Signal()
    certificate_rejected = Signal(str)
    certificate_pinned = Signal(str)

    def __init__(
        self,
        profile: QWebEngineProfile,
        *,
        redirect_uri: str,
        policy: NavigationPolicy,
        pinned_sha256: str | None,
        pinned_host: str | None,
        test_leaf: tuple[str, frozenset[str]] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(profile, parent)
        #: TEST ONLY (tdgui.qt.login.hooks): the emulator's leaf and the loopback-mapped hosts
        #: it is accepted on
        self._test_leaf = test_leaf
        self._redirect_uri = redirect_uri
        self._policy = policy
        self._pinned_sha256 = pinned_sha256
        self._pinned_host = pinned_host
        self.caught = False
        self.certificateError.connect(self._on_certificate_error)

    def acceptNavigationRequest(
        self,
        url: QUrl | str,
        type: QWebEnginePage.NavigationType,
        isMainFrame: bool,
    ) -> bool:
        decision = decide_navigation(
            url_text(url), is_main_frame=isMainFrame, redirect_uri=self._redirect_uri, policy=self._policy
        )
        if decision.verdict is Verdict.CALLBACK:
            # Stop here: the callback URL is never loaded, nothing connects to its port.
            if not self.caught:
                self.caught = True
                self.callback_caught.emit(url_text(url))
            return False
        if decision.verdict is Verdict.ALLOW:
            return True
        shown = display_url(url_text(url))
        log.info("blocked a navigation to %s: %s", shown, decision.reason)
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
        accepted = certificate_acceptable(host, fingerprint, self._pinned_host, self._pinned_sha256)
        if not accepted and self._test_leaf is not None and host in self._test_leaf[1]:
            # TEST ONLY: the emulator's leaf on a host the resolver rules send to loopback.
            accepted = certificate_acceptable(host, fingerprint, host, self._test_leaf[0])
        if accepted:
            error.acceptCertificate()
            self.certificate_pinned.emit(fingerprint)
            return
        error.rejectCertificate()
        log.warning("rejected the certificate of %s: %s", host, error.description())
        self.certificate_rejected.emit(f"{host}: {error.description()}")

"""The Settings and About dialogs."""

from __future__ import annotations

import platform
from dataclasses import replace

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import tdgui
from tdgui.core import paths
from tdgui.core.config import Settings
from tdgui.core.service import TokenService


class SettingsDialog(QDialog):
    """Edits Settings; the caller saves them (disk) and applies autostart in the background."""

    def __init__(self, settings: Settings, *, tray_available: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("tdgui settings")
        self.original = settings
        self.start_minimized = QCheckBox("Start minimized to the tray", self)
        self.start_minimized.setChecked(settings.start_minimized)
        if not tray_available:
            self.start_minimized.setToolTip("No system tray was found: the window is always shown.")
        self.launch_at_login = QCheckBox("Launch tdgui when I log in", self)
        self.launch_at_login.setChecked(settings.launch_at_login)
        self.lead = QSpinBox(self)
        self.lead.setAccessibleName("Refresh lead time in seconds")
        self.lead.setRange(1, 25)
        self.lead.setSuffix(" min")
        self.lead.setValue(max(1, min(25, round(settings.refresh_lead_seconds / 60))))
        self.lead.setToolTip(
            "Access tokens last 30 minutes; tdgui refreshes them this long before they expire."
        )
        self.notifications = QCheckBox("Warn me before a refresh token expires (and when it has)", self)
        self.notifications.setChecked(settings.notifications)
        # "Log in again soon" lead times (issue 14): core's policy warns at each, then at expiry.
        self.warn_first = QSpinBox(self)
        self.warn_first.setObjectName("warnFirst")
        self.warn_first.setAccessibleName("Warn this many hours before a login is needed")
        self.warn_first.setRange(1, 7 * 24)
        self.warn_first.setSuffix(" h")
        self.warn_first.setValue(_hours(settings.login_warning_seconds, 1, 7 * 24))
        self.warn_first.setToolTip(
            "Schwab asks for a new login every 7 days; tdgui reminds you this long before."
        )
        self.warn_second = QSpinBox(self)
        self.warn_second.setObjectName("warnSecond")
        self.warn_second.setAccessibleName("Warn again this many hours before (0: no second warning)")
        self.warn_second.setRange(0, 48)
        self.warn_second.setSuffix(" h")
        self.warn_second.setSpecialValueText("no second warning")
        self.warn_second.setValue(_hours(settings.login_second_warning_seconds, 0, 48))
        self.notifications.toggled.connect(self.warn_first.setEnabled)
        self.notifications.toggled.connect(self.warn_second.setEnabled)
        self.warn_first.setEnabled(settings.notifications)
        self.warn_second.setEnabled(settings.notifications)
        form = QFormLayout()
        form.addRow(self.start_minimized)
        form.addRow(self.launch_at_login)
        form.addRow("Refresh access tokens this early:", self.lead)
        form.addRow(self.notifications)
        form.addRow("Warn me before a login is needed:", self.warn_first)
        form.addRow("And again:", self.warn_second)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def settings(self) -> Settings:
        return replace(
            self.original,
            start_minimized=self.start_minimized.isChecked(),
            launch_at_login=self.launch_at_login.isChecked(),
            refresh_lead_seconds=self.lead.value() * 60,
            notifications=self.notifications.isChecked(),
            login_warning_seconds=self.warn_first.value() * 3600,
            login_second_warning_seconds=self.warn_second.value() * 3600,
        )


def _hours(seconds: int, low: int, high: int) -> int:
    return max(low, min(high, round(seconds / 3600)))


def web_engine_versions() -> tuple[str, str]:
    """(Qt WebEngine version, Chromium version), or 'unavailable'.

    The app never loads Qt WebEngine itself (the login view runs in a child process), so the
    versions come from the last login child, or from the module if something else loaded it.
    """
    import importlib.util
    import sys

    module = sys.modules.get("PySide6.QtWebEngineCore")
    if module is not None:
        return str(module.qWebEngineVersion()), str(module.qWebEngineChromiumVersion())
    from tdgui.qt.login import parent as login_process

    if login_process.ENGINE_VERSIONS is not None:
        return login_process.ENGINE_VERSIONS
    try:
        found = importlib.util.find_spec("PySide6.QtWebEngineCore") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return "unavailable", "unavailable"
    return "installed", "loaded only in the login window"


def diagnostics(service: TokenService) -> str:
    """Versions, paths and account kinds: nothing secret (no token, code, key or client secret)."""
    engine, chromium = web_engine_versions()
    lines = [
        f"tdgui {tdgui.__version__}",
        f"Python {platform.python_version()} on {platform.platform()}",
        f"PySide6 {pyside_version}, Qt {qVersion()}, Qt WebEngine {engine} (Chromium {chromium})",
        f"Qt platform: {QApplication.platformName()}",
        f"Config: {service.directory}",
        f"Logs: {paths.log_dir()}",
        f"Token store: {describe_stores(service)}",
    ]
    try:
        accounts = service.config.accounts()
    except Exception as exc:  # diagnostics must not fail; the error class says enough
        lines.append(f"Accounts: unreadable ({type(exc).__name__})")
    else:
        kinds = ", ".join(f"{a.provider}/{a.store}" for a in accounts) or "none"
        lines.append(f"Accounts: {len(accounts)} ({kinds})")
    return "\n".join(lines)


def describe_stores(service: TokenService) -> str:
    if service.store_override is not None:
        return service.store_override.describe()
    try:
        kinds = sorted({a.store for a in service.config.accounts()}) or ["keyring"]
    except Exception:
        kinds = ["keyring"]
    return ", ".join(kinds) + " (per account)"


class AboutDialog(QDialog):
    """Version, Qt/WebEngine versions, locations, and a copy-diagnostics button."""

    def __init__(self, service: TokenService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About tdgui")
        self.text = diagnostics(service)
        title = QLabel(f"<h2>tdgui {tdgui.__version__}</h2>", self)
        body = QLabel(self.text, self)
        body.setWordWrap(True)
        self.copy_button = QPushButton("Copy diagnostics", self)
        self.copy_button.clicked.connect(self.copy)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(body)
        layout.addWidget(buttons)

    def copy(self) -> None:
        QApplication.clipboard().setText(self.text)
        self.copy_button.setText("Copied")

"""The small window shown while the system browser has the login (no web engine in it)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget


class BrowserWaitWindow(QWidget):
    """Shown while the system browser has the login (no web engine in here).

    It offers the login link to copy: a desktop without a working browser opens nothing and
    says nothing (issue 14, defect 10), and the user can paste the link into any browser.
    """

    cancel_requested = Signal()

    def __init__(self, name: str) -> None:
        super().__init__(None, Qt.WindowType.Window)
        self.setWindowTitle(f"Log in to {name} - tdgui")
        self.message = QLabel(
            "Finish the login in your web browser. tdgui waits for the redirect; "
            "your browser may warn once about tdgui's local certificate.",
            self,
        )
        self.message.setWordWrap(True)
        self.hint = QLabel("If no browser opened, copy this link into one:", self)
        self.link = QLineEdit(self)
        self.link.setReadOnly(True)
        self.link.setObjectName("loginLink")
        self.link.setAccessibleName("Login link")
        self.copy_button = QPushButton("Copy link", self)
        self.copy_button.setEnabled(False)
        self.copy_button.clicked.connect(self.copy_link)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel_requested)
        # Escape closes it (and so cancels the browser login), as in a dialog (defect 10).
        self.escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self.escape.activated.connect(self.close)
        row = QHBoxLayout()
        row.addWidget(self.link, 1)
        row.addWidget(self.copy_button)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.hint)
        layout.addLayout(row)
        layout.addLayout(buttons)
        for widget in (self.hint, self.link, self.copy_button):
            widget.hide()  # until the link is known (show_url)
        self.resize(520, 160)

    def show_url(self, url: str, *, opened: bool) -> None:
        """The login link to copy; `opened` False: the desktop could not start a browser."""
        self.link.setText(url)
        self.link.setCursorPosition(0)
        self.copy_button.setEnabled(True)
        for widget in (self.hint, self.link, self.copy_button):
            widget.show()
        if not opened:
            self.message.setText("Could not start a web browser. Copy the link below into one to log in.")
            self.copy_button.setDefault(True)
            self.copy_button.setFocus()

    @Slot()
    def copy_link(self) -> None:
        QGuiApplication.clipboard().setText(self.link.text())
        self.copy_button.setText("Copied")

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel_requested.emit()
        super().closeEvent(event)

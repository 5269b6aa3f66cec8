"""The small window shown while the system browser has the login (no web engine in it)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class BrowserWaitWindow(QWidget):
    """Shown while the system browser has the login (no web engine in here)."""

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
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel_requested)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.resize(460, 120)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel_requested.emit()
        super().closeEvent(event)

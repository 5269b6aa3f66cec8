"""The in-window notices: one row per account with its own Log in and Dismiss (issue 14, defect 3)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class NoticeRow(QWidget):
    """One account's warning in the banner: its text, Log in, Dismiss."""

    def __init__(self, account: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.account = account
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.login_button = QPushButton("Log in", self)
        self.login_button.setVisible(account is not None)
        self.dismiss_button = QPushButton("Dismiss", self)
        who = account or "tdgui"
        self.login_button.setAccessibleName(f"Log in to {who}")
        self.dismiss_button.setAccessibleName(f"Dismiss the notice about {who}")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.login_button)
        layout.addWidget(self.dismiss_button)


class Banner(QFrame):
    """In-window notices, one row per account (issue 14, defect 3: several warnings at once were
    collapsed into the last one); one click on a row's Log in opens that account's login."""

    login_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setAccessibleName("Notices")
        # The tooltip colours of the system palette: meant to stand out and be readable in light
        # and dark themes alike (a fixed pale yellow under a dark theme's light text was not;
        # issue 14, defect 12).
        self.setStyleSheet(
            "#banner { background: palette(tool-tip-base); border: 1px solid palette(mid);"
            " border-radius: 4px; } #banner QLabel { color: palette(tool-tip-text); }"
        )
        #: account name ("" for a notice about no account) -> its row, in arrival order
        self.rows: dict[str, NoticeRow] = {}
        self._layout = QVBoxLayout(self)
        self.hide()

    @property
    def accounts(self) -> list[str]:
        return list(self.rows)

    def show_notice(self, account: str | None, text: str) -> None:
        key = account or ""
        row = self.rows.get(key)
        if row is None:
            row = NoticeRow(account, self)
            row.login_button.clicked.connect(lambda _=False, k=key: self._on_login(k))
            row.dismiss_button.clicked.connect(lambda _=False, k=key: self.remove(k))
            self.rows[key] = row
            self._layout.addWidget(row)
            row.show()  # a layout shows a new child of a visible parent only later (queued)
        row.label.setText(text)
        row.label.setAccessibleName(text)
        self.show()

    def remove(self, account: str) -> None:
        row = self.rows.pop(account, None)
        if row is not None:
            row.hide()
            row.deleteLater()
        if not self.rows:
            self.hide()

    def _on_login(self, key: str) -> None:
        if key:
            self.login_clicked.emit(key)
        self.remove(key)

"""The account dialog's database part (postgres store): URL, password, weak-TLS opt-in, key, Test connection.

Every check is core's (tdgui.core.db_setup); the connection test runs off the GUI thread
through the controller. The key of a share is shown once, in KeyDialog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tdgui.core import db_setup
from tdgui.qt.token_actions import ClipboardGuard

if TYPE_CHECKING:
    from tdgui.core.config import Account
    from tdgui.core.sharing import DbChoice
    from tdgui.qt.controller import Controller

log = logging.getLogger(__name__)

#: How long the copied key of a share stays on the clipboard.
KEY_CLEAR_AFTER_MS = 60_000

#: join: a new account on this machine from the database (paste the key); share: move an
#: existing local account into it (the key is made and shown once); shared: already there.
MODES = ("join", "share", "shared")
COLOUR_OK = "#1a7f37"
COLOUR_BAD = "#a40e26"
#: tdgui.core.record_crypto.KEY_PREFIX, not imported: the app idles for days and need not
#: load cryptography just to open a dialog (tdgui.core.ops says why; a test keeps them equal).
KEY_PREFIX = "tdgui-key-v1:"


class DbSection(QWidget):
    """The database settings of a postgres account; `changed` on every edit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None, *, controller: Controller | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.mode = "join"
        self.account_name = ""
        self.url = QLineEdit(self)
        self.url.setPlaceholderText(db_setup.EXAMPLE_URL + "?sslmode=verify-full")
        self.url.setAccessibleName("Database URL")
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("kept in the system keyring; empty: ~/.pgpass or PGPASSWORD")
        self.password.setAccessibleName("Database password")
        self.schema = QLineEdit(self)
        self.schema.setPlaceholderText("tdgui")
        self.schema.setAccessibleName("Database schema")
        self.allow_weak = QCheckBox("Allow weak TLS to another machine (only on a network you trust)", self)
        self.allow_weak.setAccessibleName("Allow weak TLS to a non-loopback host")
        self.secrets_file = QCheckBox(
            "Keep the key and password in a private file (0600), not the keyring", self
        )
        self.secrets_file.setAccessibleName("Keep the database key in a private file")
        self.key = QLineEdit(self)
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText(KEY_PREFIX + "… (shown when the account was shared)")
        self.key.setAccessibleName("Shared account key")
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid); font-size: 9pt;")
        self.test_button = QPushButton("Test connection", self)
        self.test_button.setAccessibleName("Test connection")
        self.result = QLabel(self)
        self.result.setWordWrap(True)
        self.result.setObjectName("connectionResult")
        self.result.setAccessibleName("Connection test result")
        self.testing = False
        self._generation = 0
        #: the share's key, shown once (set when a share to the database is done)
        self.key_dialog: KeyDialog | None = None

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("", self.note)
        form.addRow("Database URL:", self.url)
        form.addRow("Password:", self.password)
        form.addRow("Schema:", self.schema)
        form.addRow("", self.allow_weak)
        form.addRow("", self.secrets_file)
        form.addRow("Key:", self.key)
        row = QHBoxLayout()
        row.addWidget(self.test_button)
        row.addWidget(self.result, 1)
        form.addRow("", row)
        self.form = form
        self.setLayout(form)
        for line in (self.url, self.password, self.schema, self.key):
            line.textChanged.connect(self._edited)
        self.allow_weak.toggled.connect(self._edited)
        self.secrets_file.toggled.connect(self._edited)
        self.test_button.clicked.connect(self.test_connection)

    # -- mode -------------------------------------------------------------------------------
    def set_mode(self, mode: str, account: Account | None = None) -> None:
        assert mode in MODES
        self.mode = mode
        self.account_name = account.name if account is not None else ""
        shared = mode == "shared"
        if shared and account is not None:
            self.url.setText(account.db_url or "")
            self.schema.setText(account.db_schema or "")
            self.allow_weak.setChecked(account.db_allow_insecure)
        for line in (self.url, self.schema):
            line.setReadOnly(shared)
            # Read-only: clickable to copy, but no Tab stop (issue 14, defect 8).
            line.setFocusPolicy(Qt.FocusPolicy.ClickFocus if shared else Qt.FocusPolicy.StrongFocus)
        self.allow_weak.setEnabled(not shared)
        self.form.setRowVisible(self.secrets_file, not shared)
        self.form.setRowVisible(self.password, not shared)
        self.form.setRowVisible(self.key, mode == "join")
        self.note.setText(
            {
                "join": "Use an account shared from another machine: give it the name it was "
                "shared under; its provider settings and tokens come from the database. Paste the "
                "key shown when it was shared.",
                "share": "Moves this account's tokens, app secret and status into the database "
                "(encrypted; a new key is shown once). Other machines then join it with that key.",
                "shared": "This account's tokens live in this database (set up when it was shared "
                "or joined).",
            }[mode]
        )

    @Slot()
    def _edited(self) -> None:
        self._generation += 1  # a test still running answers for the old settings: dropped
        self.result.clear()
        self.changed.emit()

    # -- values -----------------------------------------------------------------------------
    def problem(self) -> str | None:
        """The first thing to fix before this can be used (core's rules), or None."""
        if self.mode == "shared":
            return None
        problem = db_setup.url_problem(self.url.text(), allow_insecure=self.allow_weak.isChecked())
        if problem is None and self.mode == "join":
            problem = db_setup.key_problem(self.key.text())
        return problem

    def choice(self) -> DbChoice:
        from tdgui.core.sharing import DbChoice

        return DbChoice(
            url=self.url.text().strip(),
            password=self.password.text() or None,
            schema=self.schema.text().strip() or None,
            allow_insecure=self.allow_weak.isChecked(),
            # As --db-password-stdin: the key and password go to the keyring (or, chosen, to
            # the 0600 file db/NAME.json, as --db-secrets file does).
            secrets="file" if self.secrets_file.isChecked() else "keyring",
        )

    # -- share / join ---------------------------------------------------------------------
    def run(self, name: str, on_done: Callable[[], None], on_failed: Callable[[str], None]) -> None:
        """Join or share `name` through the controller (core.sharing, off the GUI thread).

        After a share the key is shown once; `on_done` runs when that window closes.
        """
        if self.controller is None:
            on_failed("Joining or sharing needs the running app.")
            return

        def failed(message: str) -> None:
            self.result.clear()
            on_failed(message)

        def shared(key_text: str) -> None:
            self.result.clear()
            self.key_dialog = KeyDialog(key_text, self.window())
            self.key_dialog.finished.connect(lambda _code: on_done())
            self.key_dialog.open()

        choice = self.choice()
        self.result.setStyleSheet("")
        if self.mode == "join":
            self.result.setText("Joining…")
            key = self.key.text()
            self.controller.join_account(name, choice, key, lambda _a: on_done(), failed, context=self)
        else:
            self.result.setText("Sharing…")
            self.controller.share_account(name, choice, shared, failed, context=self)

    # -- the test ---------------------------------------------------------------------------
    @Slot()
    def test_connection(self) -> None:
        """Connect once off the GUI thread; the answer (in words, never the password) arrives later."""
        if self.controller is None or self.testing:
            return
        if self.mode != "shared":
            problem = db_setup.url_problem(self.url.text(), allow_insecure=self.allow_weak.isChecked())
            if problem is not None:
                self._show(db_setup.ConnectionCheck(False, "url", problem))
                return
        self.testing = True
        self.test_button.setEnabled(False)
        self.result.setStyleSheet("")
        self.result.setText("Testing…")
        generation = self._generation

        def show(check: db_setup.ConnectionCheck) -> None:
            self.testing = False
            self.test_button.setEnabled(True)
            if generation == self._generation:
                self._show(check)

        if self.mode == "shared":
            self.controller.test_account_db(self.account_name, show, context=self)
        else:
            choice = self.choice()
            self.controller.test_db(choice.url, choice.password, choice.allow_insecure, show, context=self)

    def _show(self, check: db_setup.ConnectionCheck) -> None:
        self.result.setStyleSheet(f"color: {COLOUR_OK if check.ok else COLOUR_BAD};")
        self.result.setText(check.text)


class KeyDialog(QDialog):
    """The key of a share, shown once: Copy, and a warning that it cannot be shown again."""

    def __init__(self, key_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("The key of the shared account")
        warning = QLabel(
            "Store this key now, e.g. in your password manager: tdgui does not show it again, and "
            "the database cannot decrypt the tokens without it. Other machines need it to join.",
            self,
        )
        warning.setWordWrap(True)
        warning.setStyleSheet(f"color: {COLOUR_BAD}; font-weight: bold;")
        self.key = QLineEdit(key_text, self)
        self.key.setReadOnly(True)
        self.key.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # read-only: no Tab stop (defect 8)
        self.key.setAccessibleName("Shared account key")
        self.key.setMinimumWidth(self.key.fontMetrics().horizontalAdvance(key_text) + 24)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setAccessibleName("Copy the key")
        self.copy_button.clicked.connect(self.copy)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.buttons.rejected.connect(self.reject)
        self.buttons.accepted.connect(self.accept)
        row = QHBoxLayout()
        row.addWidget(self.key, 1)
        row.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.addWidget(warning)
        layout.addLayout(row)
        layout.addWidget(self.buttons)
        self.copy_button.setFocus()

    @Slot()
    def copy(self) -> None:
        # The key decrypts every shared record: off the clipboard again after a minute (the
        # guard belongs to the application, so it outlives this dialog), never in its history.
        guard = ClipboardGuard(KEY_CLEAR_AFTER_MS, QGuiApplication.instance())
        guard.cleared.connect(guard.deleteLater)
        guard.put(self.key.text())
        self.clipboard_guard = guard
        self.copy_button.setText("Copied")

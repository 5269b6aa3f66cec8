"""What users do with a token from the window: copy it, export a token file, see a script's snippet.

The token goes through the controller's ops (a `tdgui --ops-child` like every token operation)
and is never shown on screen; the export is core's own (`TokenService.export`, as
`tdgui export`), so the window writes the same file and registers the same keep-synced entry.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tdgui.core.logs import SECRETS
from tdgui.qt.controller import Controller, error_text
from tdgui.qt.worker import run_in_background

log = logging.getLogger(__name__)

#: How long a copied access token stays on the clipboard (issue 14, build 3).
CLEAR_AFTER_MS = 30_000
#: The export formats a script library loads, with the words shown for them.
EXPORT_FORMATS = (("schwab-py", "schwab-py (client_from_token_file)"), ("tda-api", "tda-api (legacy)"))


def snippets(name: str, export_path: str | None = None, app_key: str | None = None) -> str:
    """The exact lines a script uses for account `name` (README, "Using a token in scripts").

    The app key is not a secret and is filled in; the app secret never is (the script has its own).
    """
    path = export_path or "/path/to/token.json"
    return (
        "# In a shell: print a valid access token (refreshed if due)\n"
        f"tdgui token {name}\n"
        "\n"
        "# In Python: a requests.Session with a fresh Bearer token\n"
        "import tdgui\n"
        f'session = tdgui.session("{name}")\n'
        "\n"
        "# schwab-py, from a token file exported here (keep it synced)\n"
        "import schwab\n"
        "client = schwab.auth.client_from_token_file(\n"
        f'    token_path="{path}", api_key="{app_key or "APP_KEY"}", app_secret="APP_SECRET"\n'
        ")\n"
    )


class ClipboardGuard(QObject):
    """Puts a secret on the clipboard and takes it off again after `delay_ms`, only if it is
    still the secret (the user may have copied something else meanwhile)."""

    cleared = Signal(bool)

    def __init__(self, delay_ms: int = CLEAR_AFTER_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self.expire)
        self._held: str | None = None

    def put(self, secret: str) -> None:
        # Plain text only: a QMimeData (which could carry KDE's "x-kde-passwordManagerHint" to
        # keep it out of clipboard histories) still on the clipboard at exit crashes PySide6
        # 6.11.3 (SIGSEGV at interpreter shutdown, reproduced), e.g. copy then quit within 30 s.
        QGuiApplication.clipboard().setText(secret)
        self._held = secret
        self.timer.start()

    @Slot()
    def expire(self) -> None:
        """Clear the clipboard if it still holds the secret; emits `cleared(done)`."""
        held, self._held = self._held, None
        clipboard = QGuiApplication.clipboard()
        done = held is not None and clipboard.text() == held
        if done:
            clipboard.clear()
        self.cleared.emit(done)


class ExportDialog(QDialog):
    """Format, file and keep-synced for one account's token file."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Export token file for {name} - tdgui")
        self.setAccessibleName(f"Export token file for {name}")
        self.format = QComboBox(self)
        self.format.setAccessibleName("Token file format")
        for key, label in EXPORT_FORMATS:
            self.format.addItem(label, key)
        self.path = QLineEdit(str(Path.home() / f"{name}-token.json"), self)
        self.path.setAccessibleName("Token file path")
        self.browse = QPushButton("Browse...", self)
        self.browse.setAccessibleName("Choose the token file")
        self.browse.clicked.connect(self._browse)
        self.keep_synced = QCheckBox("Keep the file in sync after every refresh", self)
        self.keep_synced.setChecked(True)
        self.keep_synced.setAccessibleName("Keep the file in sync after every refresh")
        note = QLabel(
            "The file holds live tokens: it is written readable only by you (0600). A script "
            "that reads it needs no login of its own.",
            self,
        )
        note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        form = QFormLayout()
        form.addRow("Format:", self.format)
        form.addRow("File:", row)
        form.addRow("", self.keep_synced)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.buttons)

    @Slot()
    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Token file", self.path.text(), "JSON (*.json)")
        if path:
            self.path.setText(path)

    def choice(self) -> tuple[str, str, bool]:
        return str(self.format.currentData()), self.path.text().strip(), self.keep_synced.isChecked()


class TokenActions(QWidget):
    """Copy access token, Export token file..., Use in a script (for the selected account)."""

    #: a line for the user (never a token), error
    message = Signal(str, bool)

    def __init__(
        self, controller: Controller, parent: QWidget | None = None, *, clear_after_ms: int = CLEAR_AFTER_MS
    ) -> None:
        super().__init__(parent)
        self.setObjectName("tokenActions")
        self.controller = controller
        self.name: str | None = None
        self.export_dialog: ExportDialog | None = None
        self.last_export: str | None = None
        self.clipboard = ClipboardGuard(clear_after_ms, self)
        self.clipboard.cleared.connect(self._on_cleared)

        self.copy_button = QPushButton("Copy access token", self)
        self.copy_button.setAccessibleName("Copy access token")
        self.copy_button.setToolTip("A valid access token, refreshed if due; off the clipboard after 30 s")
        self.export_button = QPushButton("Export token file...", self)
        self.export_button.setAccessibleName("Export token file")
        self.script_button = QPushButton("Use in a script", self)
        self.script_button.setAccessibleName("Use in a script")
        self.script_button.setCheckable(True)
        self.status = QLabel(self)
        self.status.setObjectName("tokenActionStatus")
        self.status.setWordWrap(True)
        self.script = QPlainTextEdit(self)
        self.script.setObjectName("scriptSnippets")
        self.script.setAccessibleName("Script snippets")
        self.script.setReadOnly(True)
        self.script.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.script.setMaximumHeight(190)
        self.script.setVisible(False)

        row = QHBoxLayout()
        for button in (self.copy_button, self.export_button, self.script_button):
            row.addWidget(button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.script)

        self.copy_button.clicked.connect(self.copy_token)
        self.export_button.clicked.connect(self.open_export)
        self.script_button.toggled.connect(self._show_script)
        self.set_account(None)

    def set_account(self, name: str | None) -> None:
        if name != self.name:
            self.last_export = None
            self.status.clear()
        self.name = name
        for button in (self.copy_button, self.export_button, self.script_button):
            button.setEnabled(name is not None)
        self._render_script()

    def _render_script(self) -> None:
        if self.name is None:
            return
        account = self.controller.service.config.find(self.name)
        schwab_style = account is not None and "schwab" in (account.provider, account.flavor)
        app_key = account.client_id if account is not None and schwab_style else None
        self.script.setPlainText(snippets(self.name, self.last_export or self._synced_export(), app_key))

    def _synced_export(self) -> str | None:
        if self.name is None:
            return None
        account = self.controller.service.config.find(self.name)
        for target in account.exports if account is not None else ():
            if target.format == "schwab-py":
                return target.path
        return None

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: palette(highlight);" if not error else "color: #a40e26;")
        self.message.emit(text, error)

    # -- copy -------------------------------------------------------------------------------
    @Slot()
    def copy_token(self) -> None:
        """Fetch a valid access token (refreshing if due) and put it on the clipboard."""
        name = self.name
        if name is None:
            return
        self.copy_button.setEnabled(False)
        self._say(f"Getting a valid access token for {name}...")
        ops = self.controller.ops(name)
        run_in_background(
            lambda: ops.access_token(name),
            lambda token: self._on_token(name, token),
            lambda error: self._on_failed("Could not copy the access token", error),
            context=self,
        )

    def _on_token(self, name: str, token: str) -> None:
        SECRETS.add(token)
        self.copy_button.setEnabled(self.name is not None)
        self.clipboard.put(token)
        seconds = self.clipboard.timer.interval() // 1000
        self._say(
            f"The access token of {name} is on the clipboard; it is cleared in {seconds} s "
            "(unless you copy something else)."
        )
        self._account_changed(name)  # a refresh may have happened on the way

    @Slot(bool)
    def _on_cleared(self, done: bool) -> None:
        if done:
            self._say("The access token was cleared from the clipboard.")

    def _on_failed(self, what: str, error: BaseException) -> None:
        self.copy_button.setEnabled(self.name is not None)
        self.export_button.setEnabled(self.name is not None)
        self._say(f"{what}: {error_text(error)}", error=True)

    # -- export -----------------------------------------------------------------------------
    @Slot()
    def open_export(self) -> ExportDialog | None:
        name = self.name
        if name is None:
            return None
        dialog = ExportDialog(name, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.export_dialog = dialog

        def done(code: int) -> None:
            self.export_dialog = None
            if code == QDialog.DialogCode.Accepted:
                self.export(name, *dialog.choice())

        dialog.finished.connect(done)
        dialog.open()
        return dialog

    def export(self, name: str, fmt: str, path: str, keep_synced: bool) -> None:
        """Write the token file as `tdgui export NAME --format FMT --output PATH [--keep-synced]`."""
        if not path:
            self._say("Choose a file to write the tokens to.", error=True)
            return
        target = str(Path(path).expanduser().absolute())
        self.export_button.setEnabled(False)
        ops = self.controller.ops(name)
        run_in_background(
            lambda: ops.export(name, fmt, target, keep_synced=keep_synced),
            lambda _: self._on_exported(name, fmt, target, keep_synced),
            lambda error: self._on_failed("Could not export the token file", error),
            context=self,
        )

    def _on_exported(self, name: str, fmt: str, path: str, keep_synced: bool) -> None:
        self.export_button.setEnabled(self.name is not None)
        if fmt == "schwab-py":
            self.last_export = path
        synced = "; tdgui keeps it in sync after every refresh" if keep_synced else ""
        self._say(f"Wrote {path} ({fmt}){synced}.")
        self._render_script()
        self._account_changed(name)  # a keep-synced entry is part of the account now

    def _account_changed(self, name: str) -> None:
        self.controller.changed.emit(name)
        self.controller.reload()

    # -- script -----------------------------------------------------------------------------
    @Slot(bool)
    def _show_script(self, shown: bool) -> None:
        self._render_script()
        self.script.setVisible(shown)

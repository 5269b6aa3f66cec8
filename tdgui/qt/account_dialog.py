"""Add or edit an account; validates as the user types, the client secret goes to the keyring only."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tdgui.core import providers
from tdgui.core.accounts import AccountManager
from tdgui.core.config import ACCOUNT_NAME, DB_FIELDS, Account
from tdgui.core.db_setup import STORE_NOTES
from tdgui.core.errors import UsageError
from tdgui.core.stores import STORE_KINDS
from tdgui.qt.db_section import DbSection, KeyDialog

if TYPE_CHECKING:
    from tdgui.qt.controller import Controller

PROVIDER_LABELS = {
    "schwab": "Charles Schwab (Trader API)",
    "tdameritrade": "TD Ameritrade (legacy, retired 2024)",
    "sandbox": "Sandbox (local emulator, to try tdgui out)",
    "custom": "Custom OAuth 2.0 server",
}
CALLBACK_NOTES = {
    "schwab": "Must be https://127.0.0.1:PORT/… (this computer: not localhost, not another host) "
    "and match the callback URL in the Schwab developer portal exactly, including the port and "
    "any trailing slash.",
    "tdameritrade": "Must match the callback URL registered with your TD Ameritrade app exactly.",
    "sandbox": "The sandbox's demo app uses https://127.0.0.1:8182/.",
    "custom": "Must match the redirect URI registered with the server exactly.",
}
#: Usual lengths (warnings, not errors: a broker may change them).
SCHWAB_KEY_LENGTH = 32
SCHWAB_SECRET_LENGTH = 16


class AccountDialog(QDialog):
    """Returns the Account (and a new secret, if typed) through `account()` / `secret()`."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        existing: Account | None = None,
        taken_names: tuple[str, ...] = (),
        sandbox_url: str | None = None,
        controller: Controller | None = None,
    ) -> None:
        super().__init__(parent)
        self.existing = existing
        self.controller = controller
        self.working = False
        self.taken_names = taken_names
        self.setWindowTitle("Edit account" if existing else "Add account")
        self.setMinimumWidth(560)
        self._account: Account | None = None
        #: problems are shown only once the user changed something (or pressed OK): a new
        #: dialog does not open on "invalid account name ''" (issue 14, defect 7)
        self.touched = existing is not None
        self._ready = False

        self.name = QLineEdit(self)
        self.name.setPlaceholderText("e.g. schwab-main")
        self.provider = QComboBox(self)
        for key in providers.PROVIDER_NAMES:
            self.provider.addItem(PROVIDER_LABELS[key], key)
        self.flavor = QComboBox(self)
        self.flavor.addItem("Charles Schwab", "schwab")
        self.flavor.addItem("TD Ameritrade", "tdameritrade")
        self.sandbox_url = QLineEdit(self)
        self.sandbox_url.setPlaceholderText(providers.SANDBOX_DEFAULT_URL)
        self.client_id = QLineEdit(self)
        self.client_id_hint = QLabel(self)
        self.secret = QLineEdit(self)
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_hint = QLabel(self)
        self.callback = QLineEdit("https://127.0.0.1:8182/", self)
        self.callback_note = QLabel(self)
        self.callback_note.setWordWrap(True)
        self.authorize_url = QLineEdit(self)
        self.token_url = QLineEdit(self)
        self.auth_method = QComboBox(self)
        self.auth_method.addItems(list(providers.AUTH_METHODS))
        self.scopes = QLineEdit(self)
        self.pkce = QCheckBox("Use PKCE (S256)", self)
        self.pkce.setChecked(True)
        self.store = QComboBox(self)
        self.store.addItems(list(STORE_KINDS))
        self.store_note = QLabel(self)
        self.store_note.setObjectName("storeNote")
        self.db = DbSection(self, controller=controller)
        # Off by default; the trade-off is said next to it (issue 13 #3, docs/providers.md).
        self.remember_device = QCheckBox("Remember this device", self)
        self.remember_device_hint = QLabel(
            "Keeps the login window's cookies (only those) in a private folder, so the broker "
            "asks for a security code less often. Anyone who can read your files could reuse "
            "them; off, every login is a new browser.",
            self,
        )
        self.error = QLabel(self)
        self.error.setWordWrap(True)
        self.error.setObjectName("validationError")
        self.error.setStyleSheet("color: #a40e26;")
        for hint in (
            self.client_id_hint,
            self.secret_hint,
            self.callback_note,
            self.remember_device_hint,
            self.store_note,
        ):
            hint.setWordWrap(True)
            hint.setStyleSheet("color: palette(mid); font-size: 9pt;")

        form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("Provider:", self.provider)
        form.addRow("Emulates:", self.flavor)
        form.addRow("Sandbox URL:", self.sandbox_url)
        form.addRow("App key (client id):", self.client_id)
        self.setup_help_button = QPushButton("How do I get an app key?", self)
        self.setup_help_button.clicked.connect(self.open_setup_help)
        form.addRow("", self.setup_help_button)
        form.addRow("", self.client_id_hint)
        form.addRow("Secret:", self.secret)
        form.addRow("", self.secret_hint)
        form.addRow("Callback URL:", self.callback)
        form.addRow("", self.callback_note)
        form.addRow("Authorize URL:", self.authorize_url)
        form.addRow("Token URL:", self.token_url)
        form.addRow("Client auth:", self.auth_method)
        form.addRow("Scopes:", self.scopes)
        form.addRow("", self.pkce)
        form.addRow("Token store:", self.store)
        form.addRow("", self.store_note)
        form.addRow(self.db)
        form.addRow("", self.remember_device)
        form.addRow("", self.remember_device_hint)
        self.form = form
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

        if existing is not None:
            self._load(existing)
        elif sandbox_url:
            self.sandbox_url.setText(sandbox_url)
        for line in (
            self.name,
            self.sandbox_url,
            self.client_id,
            self.secret,
            self.callback,
            self.authorize_url,
            self.token_url,
            self.scopes,
        ):
            line.textChanged.connect(self.validate)
        for combo in (self.flavor, self.auth_method):
            combo.currentIndexChanged.connect(self.validate)
        self.provider.currentIndexChanged.connect(self._on_provider_changed)
        self.store.currentIndexChanged.connect(self._on_store_changed)
        self.db.changed.connect(self.validate)
        self.pkce.toggled.connect(self.validate)
        self._on_store_changed()
        self._ready = True

    # -- state ------------------------------------------------------------------------------
    def open_setup_help(self) -> QWidget:
        """The guided Schwab setup beside this dialog (tdgui.qt.setup_help)."""
        from tdgui.qt.setup_help import open_setup_help

        callback = self.callback.text()
        self.setup_help = open_setup_help(self, provider=self.provider_name, callback_url=callback)
        return self.setup_help

    def _load(self, account: Account) -> None:
        self.name.setText(account.name)
        self.name.setReadOnly(True)
        # Read-only and looking so: no frame, the window's background, no Tab stop (defect 8).
        self.name.setFrame(False)
        self.name.setStyleSheet("QLineEdit { background: palette(window); }")
        self.name.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.provider.setCurrentIndex(max(0, self.provider.findData(account.provider)))
        # Another provider is another grant: that is a new account, not an edit.
        self.provider.setEnabled(False)
        self.flavor.setCurrentIndex(max(0, self.flavor.findData(account.flavor or "schwab")))
        self.sandbox_url.setText(account.sandbox_url or "")
        self.client_id.setText(account.client_id)
        self.callback.setText(account.callback_url)
        self.authorize_url.setText(account.authorize_url or "")
        self.token_url.setText(account.token_url or "")
        self.auth_method.setCurrentText(account.auth_method or "client_secret_basic")
        self.scopes.setText(" ".join(account.scopes))
        self.pkce.setChecked(account.pkce)
        self.remember_device.setChecked(account.remember_device)
        self.store.setCurrentText(account.store)
        where = STORE_PLACES.get(account.store, "its token store")
        self.secret.setPlaceholderText(f"kept in {where}; type a new one to replace it")

    @property
    def provider_name(self) -> str:
        return str(self.provider.currentData())

    def _set_row_visible(self, widget: QWidget, visible: bool) -> None:
        self.form.setRowVisible(widget, visible)

    @Slot()
    def _on_provider_changed(self) -> None:
        name = self.provider_name
        sandbox = name == "sandbox"
        custom = name == "custom"
        self._set_row_visible(self.flavor, sandbox)
        self._set_row_visible(self.sandbox_url, sandbox)
        for widget in (self.auth_method, self.scopes, self.pkce):
            self._set_row_visible(widget, custom)
        for line in (self.authorize_url, self.token_url):
            line.setReadOnly(not custom)
            # A preset's URLs are shown, not typed: no Tab stop (issue 14, defect 8).
            line.setFocusPolicy(Qt.FocusPolicy.StrongFocus if custom else Qt.FocusPolicy.ClickFocus)
        self.callback_note.setText(CALLBACK_NOTES[name])
        if sandbox and self.existing is None:
            self.client_id.setText(
                providers.SANDBOX_SCHWAB_CLIENT_ID
                if self.flavor.currentData() == "schwab"
                else providers.SANDBOX_TDA_CLIENT_ID
            )
            self.callback.setText(providers.SANDBOX_CALLBACK_URL)
        self.validate()

    def _needs_secret(self) -> bool:
        name = self.provider_name
        if name == "schwab":
            return True
        if name == "custom":
            return self.auth_method.currentText() != "none"
        return False

    def _build(self, store: str | None = None) -> Account:
        name = self.provider_name
        custom = name == "custom"
        return Account(
            name=self.name.text().strip(),
            provider=name,
            client_id=self.client_id.text().strip(),
            callback_url=self.callback.text().strip(),
            store=store or self.store.currentText(),
            flavor=str(self.flavor.currentData()) if name == "sandbox" else None,
            sandbox_url=(self.sandbox_url.text().strip() or None) if name == "sandbox" else None,
            authorize_url=self.authorize_url.text().strip() or None if custom else None,
            token_url=self.token_url.text().strip() or None if custom else None,
            auth_method=self.auth_method.currentText() if custom else None,
            scopes=tuple(self.scopes.text().split()) if custom else (),
            pkce=self.pkce.isChecked() if custom else True,
            exports=self.existing.exports if self.existing else (),
            **self._db_settings(),
            remember_device=self.remember_device.isChecked(),
        )

    def _db_settings(self) -> dict[str, Any]:
        """A shared (postgres) account keeps its database settings through an edit; they are
        made by `tdgui share` / `tdgui join`, not in this dialog."""
        shared = self.existing is not None and self.existing.store == "postgres"
        if not shared or self.store.currentText() != "postgres":
            return {}
        return {f: getattr(self.existing, f) for f in DB_FIELDS}

    # -- the store and the database ---------------------------------------------------------
    def db_mode(self) -> str | None:
        """join / share / shared (see tdgui.qt.db_section.MODES), None for a local store."""
        if self.store.currentText() != "postgres":
            return None
        if self.existing is None:
            return "join"
        return "shared" if self.existing.store == "postgres" else "share"

    @Slot()
    def _on_store_changed(self) -> None:
        self.store_note.setText(STORE_NOTES.get(self.store.currentText(), ""))
        mode = self.db_mode()
        self.form.setRowVisible(self.db, mode is not None)
        if mode is not None:
            self.db.set_mode(mode, self.existing)
        # Joining takes the provider settings from the database: nothing to type for them.
        joining = mode == "join"
        for widget in (
            self.provider,
            self.client_id,
            self.client_id_hint,
            self.secret,
            self.secret_hint,
            self.callback,
            self.callback_note,
            self.authorize_url,
            self.token_url,
            self.remember_device,
            self.remember_device_hint,
        ):
            self._set_row_visible(widget, not joining)
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText({"join": "Join from database", "share": "Share to database"}.get(mode or "", "OK"))
        self._on_provider_changed()
        if joining:
            for widget in (self.flavor, self.sandbox_url, self.auth_method, self.scopes, self.pkce):
                self._set_row_visible(widget, False)

    def _db_problem(self, mode: str) -> str | None:
        name = self.name.text().strip()
        try:
            if mode == "join":
                if not ACCOUNT_NAME.fullmatch(name):
                    raise UsageError(f"invalid account name {name!r}")
                if name in self.taken_names:
                    raise UsageError(f"an account named {name!r} already exists")
            else:
                assert self.existing is not None
                local = self._build(store=self.existing.store).validate()
                if local != self.existing or self.secret.text():
                    return (
                        "Save your other changes first (OK with the current token store), then "
                        "choose postgres to share this account."
                    )
        except UsageError as exc:
            return dialog_text(str(exc), name)
        return self.db.problem()

    def _start_db_action(self) -> None:
        self.working = True
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
        self.store.setEnabled(False)
        name = self.existing.name if self.existing is not None else self.name.text().strip()
        self.db.run(name, lambda: QDialog.accept(self), self._db_action_failed)

    @property
    def key_dialog(self) -> KeyDialog | None:
        """The share's key, shown once (the dialog closes when this one does)."""
        return self.db.key_dialog

    def _db_action_failed(self, message: str) -> None:
        self.working = False
        self.store.setEnabled(True)
        self.error.setText(message)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)

    # -- validation -------------------------------------------------------------------------
    @Slot()
    def validate(self) -> bool:
        """Check the form; show the first problem and enable OK only when it can be saved."""
        if self._ready:
            self.touched = True  # called from a change signal: the user is filling the form
        problem: str | None = None
        account: Account | None = None
        mode = self.db_mode()
        if mode in ("join", "share"):
            problem = self._db_problem(mode)
            self._hints()
            self._account = None
            self.error.setText(problem if problem and self.touched else "")
            ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
            ok.setEnabled(problem is None and not self.working)
            return problem is None
        try:
            account = self._build().validate()
            AccountManager.check_entry(account, self.existing)  # core's rules for typed values
            if self.existing is None and account.name in self.taken_names:
                raise UsageError(f"an account named {account.name!r} already exists")
            if account.provider != "custom":
                preset = account.resolve_provider(None)
                _set_quietly(self.authorize_url, preset.authorize_url)
                _set_quietly(self.token_url, preset.token_url)
            secret = self.secret.text()
            if secret and any(c.isspace() for c in secret):
                raise UsageError("the client secret must not contain spaces")
            if self._needs_secret() and not secret and self.existing is None:
                where = STORE_PLACES.get(account.store, "its token store")
                raise UsageError(f"Enter the app's secret (kept in {where}, never shown again).")
        except UsageError as exc:
            problem = dialog_text(str(exc), self.name.text().strip())
            account = None
        self._hints()
        self._account = account
        self.error.setText(problem if problem and self.touched else "")
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(problem is None)
        return problem is None

    def _hints(self) -> None:
        name = self.provider_name
        key = self.client_id.text().strip()
        secret = self.secret.text()
        key_hint = secret_hint = ""
        if name == "schwab":
            if key and len(key) != SCHWAB_KEY_LENGTH:
                key_hint = (
                    f"Schwab app keys are usually {SCHWAB_KEY_LENGTH} characters; this one has "
                    f"{len(key)}. Check that you copied all of it."
                )
            if secret and len(secret) != SCHWAB_SECRET_LENGTH:
                secret_hint = (
                    f"Schwab secrets are usually {SCHWAB_SECRET_LENGTH} characters; "
                    f"this one has {len(secret)}."
                )
        elif name == "tdameritrade" and key.endswith(providers.TDA_CLIENT_ID_SUFFIX):
            key_hint = f"tdgui adds {providers.TDA_CLIENT_ID_SUFFIX} itself; you may leave it off."
        if not self._needs_secret():
            secret_hint = secret_hint or "This provider needs no client secret."
        self.secret.setEnabled(self._needs_secret())
        self.client_id_hint.setText(key_hint)
        self.secret_hint.setText(secret_hint)

    # -- results ----------------------------------------------------------------------------
    def account(self) -> Account | None:
        """What to add or save; None after a join or share (done here, through the controller)."""
        return None if self.db_mode() in ("join", "share") else self._account

    def secret_value(self) -> str | None:
        """The newly typed secret (None: keep the stored one). Read once, then the field is cleared."""
        value = self.secret.text() if self._needs_secret() and self.db_mode() is None else ""
        return value or None

    def reject(self) -> None:
        # Not while a share runs: its key is shown once, by this dialog; closed now, it would
        # be lost and the shared tokens unreadable everywhere else.
        if not self.working:
            super().reject()

    def accept(self) -> None:
        self.touched = True
        if self.working or not self.validate():
            return
        mode = self.db_mode()
        if mode in ("join", "share"):
            self._start_db_action()
            return
        super().accept()


def _set_quietly(line: QLineEdit, text: str) -> None:
    if line.text() != text:
        line.blockSignals(True)
        line.setText(text)
        line.blockSignals(False)


#: Where the secret is kept, per store choice (the dialog said "keyring" for every store).
STORE_PLACES = {
    "keyring": "the system keyring",
    "file": "a private file (0600) in tdgui's folder",
    "sql": "tdgui's SQLite file",
    "memory": "this app's memory until it quits",
    "postgres": "the shared database, encrypted",
}


def dialog_text(problem: str, name: str) -> str:
    """Core's check, said for a person at the form: no raw "got ''", no CLI flags (defect 8)."""
    low = problem.lower()
    if low.startswith("invalid account name"):
        if not name:
            return "Enter a name for the account, e.g. schwab-main."
        return (
            "The name may use only the letters A-Z and a-z, digits, '.', '_' and '-' "
            "(no spaces or accented letters), and must start with a letter or digit."
        )
    if low.startswith("callback url must look like"):
        return "Enter the callback URL exactly as registered for your app, e.g. https://127.0.0.1:8182/."
    if low.startswith("the client id"):
        return "Enter the app key (client id) from the developer portal, without spaces."
    if "--authorize-url" in problem:
        return "Enter the authorize URL and the token URL of the custom provider."
    # Anything else: core's own sentence, with a capital, no option names, one full stop.
    text = re.sub(r"\s*\(?`?--[a-z-]+`?\)?", "", problem).strip()
    text = re.sub(r", got '.*'$", "", text)
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."

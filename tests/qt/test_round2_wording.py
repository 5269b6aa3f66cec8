"""Issue 14, defect 8: the account dialog's wording and read-only fields; the status view's "Stored in"."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from tdgui.core import providers
from tdgui.core.accounts import AccountManager
from tdgui.core.config import ACCOUNTS_VERSION, Account, Config, sandbox_account
from tdgui.core.errors import UsageError
from tdgui.core.service import TokenService
from tdgui.core.stores import STORE_KINDS
from tdgui.core.stores.memory import MemoryStore
from tdgui.qt.account_dialog import AccountDialog
from tdgui.qt.status_view import StatusView

SCHWAB_KEY = "A" * 32


def _schwab(qtbot: QtBot, *, existing: Account | None = None) -> AccountDialog:
    dialog = AccountDialog(existing=existing)
    qtbot.addWidget(dialog)
    if existing is None:
        dialog.provider.setCurrentIndex(dialog.provider.findData("schwab"))
        dialog.name.setText("main")
        dialog.client_id.setText(SCHWAB_KEY)
        dialog.secret.setText("s" * 16)
        dialog.callback.setText("https://127.0.0.1:8182/")
    return dialog


def _no_cli_words(text: str) -> None:
    assert "--" not in text and "tdgui " not in text and ", got" not in text, text


def test_raw_exception_phrasing_is_not_shown(qtbot: QtBot) -> None:
    dialog = _schwab(qtbot)
    dialog.name.setText("my account")
    assert "no spaces" in dialog.error.text() and "'my account'" not in dialog.error.text()
    assert "invalid account name" not in dialog.error.text()
    dialog.name.setText("main")
    dialog.callback.setText("")
    assert dialog.error.text().startswith("Enter the callback URL")
    _no_cli_words(dialog.error.text())


def test_name_rule_says_exactly_what_is_allowed_here_and_in_core(qtbot: QtBot) -> None:
    dialog = _schwab(qtbot)
    dialog.name.setText("café")
    text = dialog.error.text()
    assert "A-Z" in text and "accented" in text, text
    # Core's own sentence (the CLI's) no longer says a bare "letters" either.
    with pytest.raises(UsageError, match=r"A-Z and a-z \(no accented letters\)"):
        dataclasses.replace(sandbox_account("x"), name="café").validate()


def test_schwab_callback_must_be_on_127_0_0_1_and_the_hint_says_so(qtbot: QtBot) -> None:
    dialog = _schwab(qtbot)
    assert "https://127.0.0.1:PORT/" in dialog.callback_note.text()
    assert dialog.validate(), dialog.error.text()
    dialog.callback.setText("https://example.com/callback")
    assert not dialog.validate()
    assert "127.0.0.1" in dialog.error.text() and "example.com" in dialog.error.text()
    _no_cli_words(dialog.error.text())
    with pytest.raises(UsageError, match=r"127\.0\.0\.1"):
        providers.check_callback_host("https://example.com/callback", "schwab")
    # Other providers keep their own rules: a custom server may redirect anywhere over https.
    assert providers.check_callback_host("https://example.com/callback", "custom")


def test_core_refuses_what_the_dialog_refuses_but_an_older_accounts_file_still_loads(
    isolated_config: Path,
) -> None:
    service = TokenService(Config(isolated_config), store_override=MemoryStore())
    manager = AccountManager(service)
    good = Account(name="s", provider="schwab", client_id=SCHWAB_KEY, callback_url="https://127.0.0.1:8182/")
    for bad, match in (
        (dataclasses.replace(good, callback_url="https://example.com/callback"), r"127\.0\.0\.1"),
        (dataclasses.replace(good, client_id="ж" * 32), "ASCII"),
    ):
        with pytest.raises(UsageError, match=match):
            manager.add(bad, "s" * 16)  # `tdgui accounts add` and the API add through here
        assert service.config.find("s") is None
    # An accounts.json written before these rules loads, and an edit that leaves those fields
    # alone is not refused for them.
    legacy = dataclasses.replace(good, callback_url="https://example.com/callback").validate()
    isolated_config.mkdir(parents=True, exist_ok=True)
    (isolated_config / "accounts.json").write_text(
        json.dumps({"version": ACCOUNTS_VERSION, "accounts": [legacy.to_dict()]})
    )
    loaded = Config(isolated_config).account("s")
    assert loaded == legacy
    AccountManager.check_entry(dataclasses.replace(loaded, remember_device=True), loaded)
    with pytest.raises(UsageError, match="ASCII"):
        AccountManager.check_entry(dataclasses.replace(loaded, client_id="ж" * 32), loaded)


def test_a_non_ascii_app_key_is_refused_in_core_and_said_plainly(qtbot: QtBot) -> None:
    cyrillic = "ж" * 32  # 32 characters: looks like a Schwab key, is not one
    dialog = _schwab(qtbot)
    dialog.client_id.setText(cyrillic)
    assert not dialog.validate()
    assert "ASCII" in dialog.error.text() and "copy it again" in dialog.error.text()
    _no_cli_words(dialog.error.text())
    account = dataclasses.replace(sandbox_account("x"), client_id=cyrillic)
    with pytest.raises(UsageError, match="ASCII"):
        AccountManager.check_entry(account)  # the CLI's accounts add and the API alike


def test_each_store_choice_is_explained_in_one_line(qtbot: QtBot) -> None:
    dialog = _schwab(qtbot)
    notes = {}
    for kind in STORE_KINDS:
        dialog.store.setCurrentText(kind)
        notes[kind] = dialog.store_note.text()
        assert notes[kind] and "\n" not in notes[kind]
    assert len(set(notes.values())) == len(STORE_KINDS)
    assert "plain-text" in notes["file"] and "encrypted" in notes["postgres"]


def _tab_chain(dialog: AccountDialog) -> list[QWidget]:
    """The widgets Tab visits, in order, starting at the first one (what a keyboard user meets)."""
    dialog.show()
    QApplication.processEvents()
    dialog.activateWindow()
    seen: list[QWidget] = []
    dialog.focusNextPrevChild(True)
    for _ in range(60):
        widget = QApplication.focusWidget()
        if widget is None or widget in seen:
            break
        seen.append(widget)
        dialog.focusNextPrevChild(True)
    return seen


def test_read_only_fields_take_no_tab_stop(qtbot: QtBot) -> None:
    dialog = _schwab(qtbot)
    chain = _tab_chain(dialog)
    assert dialog.client_id in chain and dialog.callback in chain
    assert dialog.authorize_url.isReadOnly() and dialog.authorize_url not in chain
    assert dialog.token_url not in chain
    # A custom provider's URLs are typed, so they are Tab stops again.
    dialog.provider.setCurrentIndex(dialog.provider.findData("custom"))
    assert dialog.authorize_url in _tab_chain(dialog)


def test_edit_fixes_the_provider_and_the_name_looks_read_only(qtbot: QtBot) -> None:
    existing = dataclasses.replace(
        sandbox_account("main", sandbox_url="https://127.0.0.1:1/"), store="file"
    ).validate()
    dialog = _schwab(qtbot, existing=existing)
    assert not dialog.provider.isEnabled()
    assert dialog.name.isReadOnly() and not dialog.name.hasFrame()
    assert "palette(window)" in dialog.name.styleSheet()
    assert dialog.name not in _tab_chain(dialog)
    # The secret's note names the store the account uses, not "the keyring" for every store.
    assert "keyring" not in dialog.secret.placeholderText()
    assert "file" in dialog.secret.placeholderText()


def test_status_view_says_where_the_tokens_live_for_each_store(qtbot: QtBot, isolated_config: Path) -> None:
    config = Config(isolated_config)
    base = sandbox_account("x", sandbox_url="https://127.0.0.1:1/")
    for kind in ("keyring", "file", "sql", "memory"):
        config.add_account(dataclasses.replace(base, name=kind, store=kind))
    for name, url in (
        ("remote", "postgresql://tdgui@db.example:5432/trading"),
        ("local", "postgresql://tdgui@127.0.0.1:5432/trading?sslmode=disable"),
    ):
        shared = dataclasses.replace(
            base, name=name, store="postgres", db_url=url, db_key_id="00" * 8, db_secrets="file"
        )
        config.add_account(shared.validate())
    service = TokenService(config)
    view = StatusView(service.clock, service.lead)
    qtbot.addWidget(view)
    shown = {}
    for status in service.statuses():
        view.set_status(status)
        shown[status.name] = view.store.text()
    assert shown == {
        "keyring": "system keyring",
        "file": "file (plain text, 0600)",
        "sql": "SQLite file (plain text, 0600)",
        "memory": "memory of this process (lost at exit)",
        "remote": "PostgreSQL on db.example, encrypted",
        "local": "PostgreSQL on 127.0.0.1, encrypted",
    }
    # `--json` keeps naming the store kind only (its documented fields do not change).
    assert "store_place" not in service.status("remote").to_json()

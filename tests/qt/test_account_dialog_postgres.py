"""The account dialog with a shared (postgres) account: an edit keeps its database settings."""

from __future__ import annotations

import dataclasses

from pytestqt.qtbot import QtBot

from tdgui.core.config import sandbox_account
from tdgui.qt.account_dialog import AccountDialog


def test_editing_a_postgres_account_keeps_its_database_settings(qtbot: QtBot) -> None:
    shared = dataclasses.replace(
        sandbox_account("demo", sandbox_url="https://127.0.0.1:1/"),
        store="postgres",
        db_url="postgresql://tdgui@db.example:5432/trading",
        db_key_id="0123456789abcdef",
        db_secrets="file",
    ).validate()
    dialog = AccountDialog(existing=shared)
    qtbot.addWidget(dialog)
    assert dialog.validate(), dialog.error.text()
    assert dialog.account() == shared
    # Choosing a local store drops them (the edit then moves the tokens out of the database).
    dialog.store.setCurrentText("file")
    assert dialog.validate(), dialog.error.text()
    edited = dialog.account()
    assert edited is not None and edited.store == "file" and edited.db_url is None


def test_a_new_account_choosing_postgres_is_offered_the_join_and_told_what_is_missing(qtbot: QtBot) -> None:
    # Before issue 12's desktop part the dialog refused postgres, naming `tdgui share`; now a
    # new account joins from the database (tests/qt/test_round2_dialog_db.py does it for real).
    dialog = AccountDialog()
    qtbot.addWidget(dialog)
    dialog.provider.setCurrentIndex(dialog.provider.findData("sandbox"))
    dialog.name.setText("demo")
    dialog.store.setCurrentText("postgres")
    assert not dialog.validate()
    assert dialog.db_mode() == "join"
    assert (
        dialog.error.text().startswith("Enter the database URL") and "tdgui share" not in dialog.error.text()
    )

"""The account dialog's postgres store against the real PostgreSQL: Test connection, Share, Join (issue 12).

"Two machines" are two config dirs (and HOMEs for the CLI subprocesses) that share nothing
but the database, as in tests/cli/test_share_join.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel
from pytestqt.qtbot import QtBot

from helpers.postgres import PgServer, free_port
from helpers.sandbox import add_sandbox_account, log_in, start_sandbox
from tdgui.core import db_setup
from tdgui.core.config import Config
from tdgui.core.record_crypto import KEY_PREFIX, RecordKey
from tdgui.core.service import TokenService
from tdgui.core.sharing import DbChoice, share
from tdgui.qt.account_dialog import AccountDialog
from tdgui.qt.controller import Controller
from tdgui.qt.db_section import KEY_PREFIX as QT_KEY_PREFIX
from tdgui.qt.status_view import StatusView
from tdgui.qt.worker import wait_for_idle
from tdgui.sandbox import SandboxServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def schema(postgres_server: PgServer) -> Iterator[str]:
    name = postgres_server.fresh_schema()
    yield name
    postgres_server.drop_schema(name)


@pytest.fixture
def real_controller(isolated_config: Path) -> Iterator[Controller]:
    """A controller on the real service of this test's config dir (keyring, files, database)."""
    ctl = Controller(TokenService(Config(isolated_config)))
    yield ctl
    wait_for_idle(10_000)


@pytest.fixture
def sandbox(isolated_config: Path) -> Iterator[SandboxServer]:
    server = start_sandbox(rotate=True)
    yield server
    server.stop()


def _cli(config: Path, home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HOME=str(home), TD_CONFIG_DIR=str(config), PYTHONPATH=str(REPO))
    for var in ("PGPASSWORD", "PGPASSFILE", "PGSSLMODE", "PGSSLROOTCERT"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "tdgui", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def _no_cli_words(text: str) -> None:
    assert "--" not in text and "tdgui " not in text and "`" not in text, text


def _join_dialog(qtbot: QtBot, controller: Controller, url: str, password: str) -> AccountDialog:
    dialog = AccountDialog(controller=controller)
    qtbot.addWidget(dialog)
    dialog.store.setCurrentText("postgres")
    assert dialog.db_mode() == "join"
    dialog.db.url.setText(url)
    dialog.db.password.setText(password)
    return dialog


def _test_result(qtbot: QtBot, dialog: AccountDialog) -> tuple[str, float]:
    dialog.show()
    started = time.monotonic()
    qtbot.mouseClick(dialog.db.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.db.result.text() not in ("", "Testing…"), timeout=3000)
    return dialog.db.result.text(), time.monotonic() - started


def test_connection_ok_wrong_password_down_and_tls_in_words_within_3_s(
    qtbot: QtBot, real_controller: Controller, postgres_server: PgServer
) -> None:
    server = postgres_server
    dialog = _join_dialog(qtbot, real_controller, server.url(), server.password)
    text, took = _test_result(qtbot, dialog)
    assert text.startswith("Connected to 127.0.0.1") and "encrypted" in text, text
    assert took < 3

    dialog.db.password.setText("")
    text, took = _test_result(qtbot, dialog)
    assert "asks for a password" in text and took < 3, text

    dialog.db.password.setText("not-the-password-42")
    text, took = _test_result(qtbot, dialog)
    assert text.startswith("Wrong password") and took < 3, text
    assert "not-the-password-42" not in text

    down = server.url().replace(f":{server.port}/", f":{free_port()}/")
    dialog.db.password.setText(server.password)
    dialog.db.url.setText(down)
    text, took = _test_result(qtbot, dialog)
    assert text.startswith("Cannot reach 127.0.0.1") and took < 3, text

    dialog.db.url.setText(server.url(sslrootcert=str(server.other_ca_file)))
    text, took = _test_result(qtbot, dialog)
    assert text.startswith("TLS problem") and took < 3, text
    for shown in (dialog.db.result.text(), dialog.error.text()):
        assert server.password not in shown and "--" not in shown and "tdgui " not in shown


def test_url_is_checked_as_typed_with_cores_rules_and_weak_tls_needs_the_opt_in(
    qtbot: QtBot, real_controller: Controller
) -> None:
    dialog = _join_dialog(qtbot, real_controller, "", "")
    dialog.name.setText("shared")
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert ok.text() == "Join from database" and not ok.isEnabled()
    assert dialog.error.text().startswith("Enter the database URL")
    dialog.db.url.setText("postgresql://tdgui:hunter2@db.example/trading")
    assert "Remove the password from the URL" in dialog.error.text() and "hunter2" not in dialog.error.text()
    dialog.db.url.setText("postgresql://tdgui@db.example/trading?sslmode=disable")
    assert "unencrypted" in dialog.error.text()
    dialog.db.allow_weak.setChecked(True)  # the explicit opt-in core's allow_insecure means
    assert dialog.error.text().startswith("Paste the key")
    dialog.db.key.setText(KEY_PREFIX + "AAAA")
    assert "damaged or incomplete" in dialog.error.text()
    dialog.db.key.setText(RecordKey.generate().encode())
    assert dialog.error.text() == "" and ok.isEnabled()
    for text in (dialog.error.text(), dialog.db.note.text()):
        assert "--" not in text and "tdgui share" not in text
    assert QT_KEY_PREFIX == KEY_PREFIX


def test_share_to_database_in_the_dialog_then_tdgui_token_on_a_second_machine(
    qtbot: QtBot,
    real_controller: Controller,
    postgres_server: PgServer,
    schema: str,
    sandbox: SandboxServer,
    isolated_config: Path,
    tmp_path: Path,
) -> None:
    name = "w12share"
    add_sandbox_account(sandbox, name, store="file")
    log_in(TokenService(), name)
    service = real_controller.service
    before = service.read_tokens(service.account(name))
    assert before is not None
    real_controller.reload()
    qtbot.waitUntil(lambda: name in real_controller.statuses, timeout=5000)
    assert real_controller.statuses[name].store_place == "file (plain text, 0600)"

    dialog = AccountDialog(existing=service.account(name), controller=real_controller)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.store.setCurrentText("postgres")
    assert dialog.db_mode() == "share"
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert ok.text() == "Share to database"
    dialog.db.url.setText(postgres_server.url())
    dialog.db.password.setText(postgres_server.password)
    dialog.db.schema.setText(schema)
    assert dialog.error.text() == "" and ok.isEnabled()
    with qtbot.waitSignal(real_controller.account_saved, timeout=20_000) as saved:
        qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)
        # Escape while the share runs must not close the dialog that will show the key.
        qtbot.keyClick(dialog, Qt.Key.Key_Escape)
        assert dialog.isVisible() and not dialog.store.isEnabled()
    assert saved.args[0] is True, saved.args
    assert dialog.key_dialog is not None and dialog.isVisible()
    key_text = dialog.key_dialog.key.text()
    assert (
        key_text.startswith(KEY_PREFIX)
        and "tdgui does not show it again" in dialog.key_dialog.findChild(QLabel).text()
    )
    dialog.key_dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == key_text
    dialog.key_dialog.reject()
    assert dialog.result() == QDialog.DialogCode.Accepted and dialog.account() is None

    accounts = (isolated_config / "accounts.json").read_text()
    stored = json.loads(accounts)["accounts"][0]
    assert stored["store"] == "postgres" and stored["db_secrets"] == "keyring"
    for secret in (postgres_server.password, key_text, before.access_token):
        assert secret not in accounts
    # The password went to the keyring, as --db-password-stdin puts it there.
    assert service.open_store("keyring").read(f"{name}/dbpassword") == postgres_server.password

    # The status view says where the tokens live now.
    real_controller.reload()
    qtbot.waitUntil(lambda: real_controller.statuses[name].store == "postgres", timeout=5000)
    view = StatusView(service.clock, service.lead)
    qtbot.addWidget(view)
    view.set_status(real_controller.statuses[name])
    assert view.store.text() == "PostgreSQL on 127.0.0.1, encrypted"

    # Machine B: join with the key the dialog showed, then `tdgui token` gives the same token.
    b_config, b_home = tmp_path / "b" / "config", tmp_path / "b" / "home"
    joined = _cli(
        b_config,
        b_home,
        "join",
        name,
        "--db",
        postgres_server.url(),
        "--db-schema",
        schema,
        "--key-stdin",
        "--db-password-stdin",
        "--db-secrets",
        "file",
        stdin=f"{key_text}\n{postgres_server.password}\n",
    )
    assert joined.returncode == 0, joined.stderr
    token = _cli(b_config, b_home, "token", name)
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip() == before.access_token
    # Tidy the shared keyring: the next test run uses the same session keyring.
    from tdgui.core.db_account import delete_secrets

    delete_secrets(isolated_config, name, "keyring", service.open_store("keyring"))


def test_join_from_database_in_the_dialog_then_tdgui_token_works_here(
    qtbot: QtBot,
    postgres_server: PgServer,
    schema: str,
    sandbox: SandboxServer,
    isolated_config: Path,
    tmp_path: Path,
) -> None:
    name = "w12join"
    add_sandbox_account(sandbox, name, store="file")
    desktop = TokenService()
    log_in(desktop, name)
    before = desktop.read_tokens(desktop.account(name))
    assert before is not None
    choice = DbChoice(
        url=postgres_server.url(), password=postgres_server.password, schema=schema, secrets="file"
    )
    key = share(desktop, name, choice)

    here = tmp_path / "here" / "config"
    controller = Controller(TokenService(Config(here)))
    try:
        dialog = _join_dialog(qtbot, controller, postgres_server.url(), postgres_server.password)
        dialog.name.setText(name)
        dialog.db.schema.setText(schema)
        dialog.db.key.setText("  " + key.encode() + "\n")  # a paste with blanks around it
        ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert dialog.error.text() == "" and ok.isEnabled(), dialog.error.text()
        with qtbot.waitSignal(dialog.finished, timeout=20_000):
            ok.click()
        assert dialog.result() == QDialog.DialogCode.Accepted and dialog.account() is None
        joined = Config(here).account(name)
        assert joined.store == "postgres" and joined.provider == "sandbox"
        text = (here / "accounts.json").read_text()
        assert postgres_server.password not in text and key.encode() not in text
        token = _cli(here, tmp_path / "here" / "home", "token", name)
        assert token.returncode == 0, token.stderr
        assert token.stdout.strip() == before.access_token

        # A third machine with a wrong key, or a name nobody shared: said in words, the
        # dialog stays open, nothing is added there.
        third = tmp_path / "third" / "config"
        other = Controller(TokenService(Config(third)))
        for typed, expected in (
            (name, f"This key does not open the shared account {name}"),
            (name + "x", f"The database holds no shared account named {name}x"),
        ):
            again = _join_dialog(qtbot, other, postgres_server.url(), postgres_server.password)
            again.show()
            again.name.setText(typed)
            again.db.schema.setText(schema)
            again.db.secrets_file.setChecked(True)
            again.db.key.setText(RecordKey.generate().encode())
            again.accept()
            qtbot.waitUntil(lambda d=again: d.error.text() != "", timeout=5000)
            assert again.isVisible() and again.error.text().startswith(expected), again.error.text()
            _no_cli_words(again.error.text())
            assert Config(third).find(typed) is None
            assert not (third / "db" / f"{typed}.json").exists()
    finally:
        wait_for_idle(10_000)
        from tdgui.core.db_account import delete_secrets

        delete_secrets(here, name, "keyring", TokenService(Config(here)).open_store("keyring"))


def test_connection_test_of_a_shared_account_uses_its_stored_password(
    qtbot: QtBot, real_controller: Controller, postgres_server: PgServer, schema: str, sandbox: SandboxServer
) -> None:
    name = "w12test"
    add_sandbox_account(sandbox, name, store="file")
    service = real_controller.service
    log_in(service, name)
    url, password = postgres_server.url(), postgres_server.password
    share(service, name, DbChoice(url=url, password=password, schema=schema, secrets="file"))
    dialog = AccountDialog(existing=service.account(name), controller=real_controller)
    qtbot.addWidget(dialog)
    assert dialog.db_mode() == "shared" and dialog.db.url.isReadOnly()
    text, took = _test_result(qtbot, dialog)
    assert text.startswith("Connected to 127.0.0.1") and took < 3, text
    assert db_setup.check_account_connection(service, name).ok
    # This machine's copy of the key gone: said with the window's way out, no CLI command.
    (service.directory / "db" / f"{name}.json").unlink()
    text, _ = _test_result(qtbot, dialog)
    assert "key for w12test is missing" in text and "Join from database" in text, text
    _no_cli_words(text)


def test_an_answer_for_settings_since_edited_is_dropped(
    qtbot: QtBot, real_controller: Controller, postgres_server: PgServer
) -> None:
    dialog = _join_dialog(qtbot, real_controller, postgres_server.url(), postgres_server.password)
    dialog.show()
    dialog.db.test_button.click()
    # Edited before the answer is delivered (it arrives through the event loop): it no longer
    # speaks for what the form says, so it is not shown.
    dialog.db.password.setText("typed-later")
    qtbot.waitUntil(lambda: not dialog.db.testing, timeout=3000)
    assert dialog.db.result.text() == "" and dialog.db.test_button.isEnabled()


def test_share_waits_for_other_edits_to_be_saved_first(qtbot: QtBot, isolated_config: Path) -> None:
    from tdgui.core.config import sandbox_account

    local = sandbox_account("main", sandbox_url="https://127.0.0.1:1/")
    dialog = AccountDialog(existing=local)
    qtbot.addWidget(dialog)
    dialog.store.setCurrentText("postgres")
    dialog.db.url.setText("postgresql://tdgui@db.example/trading")
    assert dialog.db_mode() == "share" and dialog.error.text() == "", dialog.error.text()
    dialog.callback.setText("https://127.0.0.1:9999/")
    assert dialog.error.text().startswith("Save your other changes first")
    assert not dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
    assert dialog.account() is None and dialog.secret_value() is None


def test_every_database_control_has_an_accessible_name(qtbot: QtBot) -> None:
    from qt.test_round2_accessibility import nameless
    from tdgui.core.config import sandbox_account
    from tdgui.qt.db_section import KeyDialog

    local = sandbox_account("main", sandbox_url="https://127.0.0.1:1/")
    shared = dataclasses.replace(
        local, store="postgres", db_url="postgresql://tdgui@db.example/trading", db_key_id="00" * 8
    )
    for existing in (None, local, shared):
        dialog = AccountDialog(existing=existing)
        qtbot.addWidget(dialog)
        dialog.store.setCurrentText("postgres")
        dialog.show()
        dialog.db.result.setText("Connected.")
        assert dialog.db.isVisibleTo(dialog)
        assert nameless(dialog.db) == [], (dialog.db_mode(), nameless(dialog.db))
    key = KeyDialog(RecordKey.generate().encode())
    qtbot.addWidget(key)
    key.show()
    assert nameless(key) == []


def test_share_with_a_role_that_may_not_create_the_tables_is_said_in_words(
    qtbot: QtBot,
    real_controller: Controller,
    postgres_server: PgServer,
    schema: str,
    sandbox: SandboxServer,
) -> None:
    import uuid

    name = "w12role"
    add_sandbox_account(sandbox, name, store="file")
    service = real_controller.service
    log_in(service, name)
    role, password = f"ro_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with postgres_server.admin() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    dialog = AccountDialog(existing=service.account(name), controller=real_controller)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.store.setCurrentText("postgres")
    dialog.db.url.setText(postgres_server.url(user=role))
    dialog.db.password.setText(password)
    dialog.db.schema.setText(schema)
    dialog.accept()
    qtbot.waitUntil(lambda: dialog.error.text() != "", timeout=10_000)
    text = dialog.error.text()
    assert text.startswith("The database role may not create tdgui's tables"), text
    assert password not in text and dialog.isVisible() and dialog.store.isEnabled()
    _no_cli_words(text)
    # Nothing moved: the account still keeps its tokens in its file.
    assert service.account(name).store == "file" and service.read_tokens(service.account(name))


def test_the_copied_key_leaves_the_clipboard_and_its_history(qtbot: QtBot) -> None:
    """The share's key decrypts every record: cleared from the clipboard again after a minute,
    also after its dialog is gone."""
    from PySide6.QtWidgets import QApplication

    from tdgui.qt.db_section import KEY_CLEAR_AFTER_MS, KeyDialog

    text = RecordKey.generate().encode()
    key = KeyDialog(text)
    qtbot.addWidget(key)
    key.copy_button.click()
    clipboard = QApplication.clipboard()
    assert clipboard.text() == text
    guard = key.clipboard_guard
    assert guard.timer.interval() == KEY_CLEAR_AFTER_MS == 60_000
    key.close()
    key.deleteLater()
    with qtbot.waitSignal(guard.cleared) as cleared:
        guard.timer.timeout.emit()  # what a minute later does
    assert cleared.args == [True]
    assert clipboard.text() == ""

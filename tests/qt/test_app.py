"""The assembled app: tray, close behaviour, settings, about, first run, single instance, self-test."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QDialogButtonBox
from pytestqt.qtbot import QtBot

import tdgui
from tdgui.core.accounts import AccountManager
from tdgui.core.config import Config, Settings, sandbox_account
from tdgui.core.service import TokenService
from tdgui.qt.shell import Shell
from tdgui.sandbox import SandboxServer

from .login.helpers import LOGIN_TIMEOUT_MS


class Quits:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def make_shell(qtbot: QtBot, service: TokenService, **kw: object) -> tuple[Shell, Quits]:
    quits = Quits()
    options: dict[str, object] = {"use_tray": False, "open_add_on_first_run": False}
    options.update(kw)
    shell = Shell(service, Settings(), quit_app=quits, **options)  # type: ignore[arg-type]
    qtbot.addWidget(shell.window)
    with qtbot.waitSignal(shell.controller.statuses_changed, timeout=10_000):
        shell.start()
    return shell, quits


def test_tray_actions(
    qtbot: QtBot,
    service: TokenService,
    sandbox: SandboxServer,
    add_sandbox_account: Callable[..., str],
    login_direct: Callable[[str], None],
) -> None:
    add_sandbox_account("alpha")
    add_sandbox_account("beta", "tdameritrade")
    login_direct("alpha")
    login_direct("beta")
    shell, quits = make_shell(qtbot, service)
    tray = shell.tray
    assert tray.level == "ok" and "valid" in tray.icon.toolTip()
    assert list(tray.login_actions) == ["alpha", "beta"]
    assert [a.text().split(" (")[0] for a in tray.menu.actions() if a.text()] == [
        "Open tdgui",
        "Refresh all",
        "Log in to alpha",
        "Log in to beta",
        "Quit",
    ]
    shell.window.hide()
    tray.action_open.trigger()
    assert shell.window.isVisible()
    with qtbot.waitSignals([shell.controller.refresh_finished] * 2, timeout=15_000):
        tray.action_refresh_all.trigger()
    assert sandbox.stats()["successful_refreshes"] == 2
    with qtbot.waitSignal(shell.controller.login_started, timeout=15_000):
        tray.login_actions["beta"].trigger()
    login = shell.controller.login_windows["beta"]
    if login.pid is None:
        with qtbot.waitSignal(login.child_started, timeout=15_000):
            pass
    assert login.is_running()  # the login window's own process
    process = login.process
    assert process is not None
    tray.action_quit.trigger()
    assert quits.count == 1
    assert not shell.scheduler.timer.isActive() and not shell.window.isVisible()
    assert shell.controller.login_windows == {}
    assert login.result is not None and login.result.outcome.value == "closed"


def test_tray_state_colours(
    qtbot: QtBot, service: TokenService, add_sandbox_account: Callable[..., str]
) -> None:
    add_sandbox_account("alpha")  # never logged in: login required
    shell, _ = make_shell(qtbot, service)
    assert shell.tray.level == "error" and "login required" in shell.tray.icon.toolTip()
    assert not shell.tray.icon.icon().isNull()
    shell.shutdown()


def test_close_without_tray_quits(qtbot: QtBot, service: TokenService) -> None:
    shell, quits = make_shell(qtbot, service)
    assert shell.window.isVisible()
    shell.window.close()
    assert quits.count == 1


def test_close_with_tray_hides(qtbot: QtBot, service: TokenService) -> None:
    shell, quits = make_shell(qtbot, service, use_tray=True)
    shell.window.close()
    assert quits.count == 0 and not shell.window.isVisible()
    shell.tray.action_open.trigger()
    assert shell.window.isVisible()
    shell.shutdown()


def test_settings_dialog_saves_and_writes_autostart(qtbot: QtBot, service: TokenService) -> None:
    shell, _ = make_shell(qtbot, service)
    dialog = shell.open_settings()
    dialog.start_minimized.setChecked(True)
    dialog.launch_at_login.setChecked(True)
    dialog.lead.setValue(10)
    dialog.notifications.setChecked(False)
    with qtbot.waitSignal(shell.settings_saved, timeout=10_000):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    saved = service.config.settings()
    assert saved == Settings(
        start_minimized=True, launch_at_login=True, refresh_lead_seconds=600, notifications=False
    )
    assert service.lead == 600 and not shell.scheduler.notifications_enabled
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "tdgui.desktop"
    text = entry.read_text()
    assert "[Desktop Entry]" in text and "--minimized" in text
    dialog = shell.open_settings()
    dialog.launch_at_login.setChecked(False)
    with qtbot.waitSignal(shell.settings_saved, timeout=10_000):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert not entry.exists()
    shell.shutdown()


def test_about_diagnostics_hold_no_secret(
    qtbot: QtBot,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
    login_direct: Callable[[str], None],
) -> None:
    add_sandbox_account("alpha")
    login_direct("alpha")
    shell, _ = make_shell(qtbot, service)
    dialog = shell.open_about()
    assert f"tdgui {tdgui.__version__}" in dialog.text and "Qt WebEngine" in dialog.text
    assert str(service.directory) in dialog.text and "memory" in dialog.text
    dialog.copy_button.click()
    copied = QApplication.clipboard().text()
    tokens = service.read_tokens(service.account("alpha"))
    assert tokens is not None
    for secret in (tokens.access_token, tokens.refresh_token or "", "SandboxSecret0123"):
        assert secret not in copied and secret not in dialog.text
    dialog.reject()
    shell.shutdown()


def test_first_run_welcome_and_try_the_sandbox(qtbot: QtBot, service: TokenService) -> None:
    shell, _ = make_shell(qtbot, service, open_add_on_first_run=True)
    window = shell.window
    assert window.stack.currentWidget() is window.welcome
    assert window.account_dialog is None  # no Add dialog over the welcome page (issue 14, #7)
    assert window.try_sandbox_button.isVisible()
    shell.controller.login_autofill_sandbox = True  # the login child fills demo/demo and allows
    with qtbot.waitSignal(shell.controller.login_finished, timeout=LOGIN_TIMEOUT_MS) as blocker:
        window.try_sandbox_button.click()
    assert blocker.args[0].ok, blocker.args[0].message
    assert "sandbox" in shell.controller.login_windows
    qtbot.waitUntil(
        lambda: window.selected_name() == "sandbox" and window.stack.currentWidget() is window.status_view
    )
    shell.shutdown()


def test_single_instance(qtbot: QtBot, tmp_path: Path) -> None:
    from tdgui.qt.single_instance import SingleInstance, instance_key

    key = instance_key(tmp_path)
    assert key == instance_key(tmp_path) and key != instance_key(tmp_path / "other")
    first = SingleInstance(key)
    assert first.listen()
    second = SingleInstance(key)
    with qtbot.waitSignal(first.activated, timeout=5_000):
        assert second.notify_running()
    first.close()
    assert not SingleInstance(key).notify_running()


def test_second_launch_activates_the_first(qtbot: QtBot, isolated_config: Path) -> None:
    from tdgui.core.environment import Environment
    from tdgui.core.root import build_core
    from tdgui.qt.app import run_gui
    from tdgui.qt.single_instance import SingleInstance, instance_key

    first = SingleInstance(instance_key(Config().directory))
    assert first.listen()
    with qtbot.waitSignal(first.activated, timeout=5_000):
        assert run_gui(build_core(Environment.from_os())) == 0
    first.close()


def test_real_keyring_login(qtbot: QtBot, isolated_config: Path, sandbox: SandboxServer) -> None:
    """The one test on the real keyring store (scripts/with-keyring.sh gives a private gnome-keyring)."""
    from tdgui.core.errors import StoreUnavailable
    from tdgui.core.stores import open_store
    from tdgui.qt.login.hooks import TestHooks
    from tdgui.qt.login.parent import LoginProcess

    try:
        store = open_store("keyring", isolated_config)
        store.write("tdgui-qt-probe/tokens", "x")
        store.delete("tdgui-qt-probe/tokens")
    except StoreUnavailable as exc:
        pytest.skip(f"no usable keyring here (run under scripts/with-keyring.sh): {exc}")
    service = TokenService(Config(isolated_config))
    service.config.add_account(sandbox_account("kr", "schwab", sandbox_url=sandbox.base_url))
    assert service.account("kr").store == "keyring"
    login = LoginProcess(service, "kr", test_hooks=TestHooks(autofill=True))  # the app's login path
    try:
        with qtbot.waitSignal(login.finished, timeout=LOGIN_TIMEOUT_MS) as blocker:
            login.start()
    finally:
        login.shutdown()  # never a QProcess destroyed with its child still running
    assert blocker.args[0].ok, blocker.args[0].message
    tokens = TokenService(Config(isolated_config)).read_tokens(service.account("kr"))
    assert tokens is not None and tokens.times() == blocker.args[0].times
    qtbot.waitUntil(lambda: not login.is_running(), timeout=10_000)
    AccountManager(service).remove("kr")
    assert open_store("keyring", isolated_config).read("kr/tokens") is None


def test_self_test(tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_config: Path) -> None:
    from tdgui.qt.selftest import run_self_test

    shots = tmp_path / "shots"
    assert run_self_test(shots) == 0
    out = capsys.readouterr().out
    assert out.startswith("self-test passed: login ") and "refresh" in out
    for name in ("login.png", "status.png"):
        assert (shots / name).stat().st_size > 2_000
    assert os.environ["TD_CONFIG_DIR"] == str(isolated_config)  # restored
    assert not isolated_config.exists() or not (isolated_config / "accounts.json").exists()


def test_run_gui_starts_and_a_second_launch_exits(qtbot: QtBot, isolated_config: Path) -> None:
    """The real entry point in its own process; a second launch activates it and exits 0."""
    import subprocess
    import sys

    from tdgui.qt.single_instance import SingleInstance, instance_key

    code = "from tdgui.cli import main; raise SystemExit(main(['--minimized']))"
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        probe = SingleInstance(instance_key(isolated_config))
        qtbot.waitUntil(lambda: first.poll() is not None or probe.notify_running(100), timeout=30_000)
        assert first.poll() is None, first.communicate()
        second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert second.returncode == 0 and "already running" in second.stdout
        assert first.poll() is None
    finally:
        first.terminate()
        first.wait(10)


def test_self_test_names_the_failing_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tdgui.qt import selftest

    monkeypatch.setattr(selftest, "OVERALL_TIMEOUT", 4.0)
    monkeypatch.setattr(selftest, "AUTOFILL", False)  # nobody fills the form: the login never ends
    assert selftest.run_self_test(None) == 1
    assert capsys.readouterr().out.startswith("self-test failed at login: timed out")


def test_autostart_exec_quoting_survives_odd_install_paths(tmp_path: Path) -> None:
    """desktop-file-validate accepts the entry and a spec-following parser gets the path back."""
    import subprocess

    from tdgui.qt.autostart import desktop_quote

    odd = '/opt/my apps/td"gui$x%y\\z/tdgui'
    entry = tmp_path / "tdgui.desktop"
    entry.write_text(
        f"[Desktop Entry]\nType=Application\nName=tdgui\nExec={desktop_quote(odd)} --minimized\n"
    )
    result = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    value = entry.read_text().split("Exec=", 1)[1].split(" --minimized", 1)[0]
    # Undo the three layers: string escapes, field codes, then the quoting rule.
    unescaped = value.replace("\\\\", "\\").replace("%%", "%")
    assert unescaped.startswith('"') and unescaped.endswith('"')
    inner = unescaped[1:-1]
    out, i = [], 0
    while i < len(inner):
        if inner[i] == "\\":
            i += 1
        out.append(inner[i])
        i += 1
    assert "".join(out) == odd

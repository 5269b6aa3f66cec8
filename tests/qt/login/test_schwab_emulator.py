"""The shipped `schwab` profile, unchanged, against the Schwab emulator through the real login child.

The real host names go to the emulator only inside this test: Chromium's --host-resolver-rules
in the child's QTWEBENGINE_CHROMIUM_FLAGS for the web view, and for the token request in this
process a name-to-loopback map of urllib3's connect and a CA bundle holding only the emulator's
CA (what a private network + mount namespace with its own /etc/hosts would give; no shipped
code path changes). The view accepts the emulator's leaf only through the test hook
(tdgui.qt.login.hooks), which the child honours only under loopback-only resolver rules.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests.adapters
import urllib3.util.connection
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from tdgui.core.config import Account
from tdgui.core.login_outcome import LoginOutcome
from tdgui.core.service import TokenService
from tdgui.qt.login.hooks import TestHooks
from tdgui.sandbox import schwab_real
from tdgui.sandbox.schwab_real import SchwabEmulator

from .helpers import free_port, run_login

CLIENT, SECRET = "EmuAppKey0123456789abcdefABCDEF0", "EmuSecret0123456"


@pytest.fixture
def callback() -> str:
    return f"https://127.0.0.1:{free_port()}/"


@pytest.fixture(params=["port", "no port"])
def any_callback(request: pytest.FixtureRequest) -> str:
    """Schwab apps register `https://127.0.0.1` (port 443) as often as one with a port."""
    return f"https://127.0.0.1:{free_port()}/" if request.param == "port" else "https://127.0.0.1"


def start_emulator(tmp_path: Path, callback: str, **options: Any) -> SchwabEmulator:
    return SchwabEmulator(
        tmp_path / "emu-tls",
        client_id=CLIENT,
        client_secret=SECRET,
        redirect_uris=(callback,),
        autopilot=True,  # the emulator's page plays the user; the product runs no script in it
        **options,
    ).start()


@pytest.fixture
def mapped(monkeypatch: pytest.MonkeyPatch) -> Callable[[SchwabEmulator], TestHooks]:
    """Send the emulator's names to it, in the child (Chromium) and here (the token request)."""

    def apply(emu: SchwabEmulator) -> TestHooks:
        assert emu.tls is not None
        monkeypatch.setenv("QTWEBENGINE_CHROMIUM_FLAGS", f'--host-resolver-rules="{emu.resolver_rules()}"')
        real_connect = urllib3.util.connection.create_connection

        def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            host, port = address
            if host in schwab_real.HOSTS and port == 443:
                address = ("127.0.0.1", emu.port)
            return real_connect(address, *args, **kwargs)

        monkeypatch.setattr(urllib3.util.connection, "create_connection", connect)
        monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(emu.tls.ca_file))
        return TestHooks(emulator_leaf_sha256=emu.tls.leaf_sha256)

    return apply


def add_schwab_account(service: TokenService, callback: str) -> str:
    account = Account(name="real", provider="schwab", client_id=CLIENT, callback_url=callback).validate()
    service.config.add_account(account)
    service.set_client_secret(account, SECRET)
    return account.name


@pytest.fixture
def emulator(tmp_path: Path, callback: str) -> Iterator[SchwabEmulator]:
    emu = start_emulator(tmp_path, callback)
    try:
        yield emu
    finally:
        emu.stop()


def test_schwab_profile_logs_in_through_the_emulator_chain(
    qtbot: QtBot,
    tmp_path: Path,
    service: TokenService,
    mapped: Callable[[SchwabEmulator], TestHooks],
    any_callback: str,
) -> None:
    emulator = start_emulator(tmp_path, any_callback)
    try:
        hooks = mapped(emulator)
        name = add_schwab_account(service, any_callback)
        login, result = run_login(qtbot, service, name, hooks=hooks)
    finally:
        emulator.stop()
    assert result.outcome is LoginOutcome.SUCCESS, result.message
    log = emulator.log
    # Every step of the chain, the security code first (an off-the-record view is a new device).
    assert log.views == ["login", "2fa", "terms", "accounts"], log.views
    assert log.third_script_loads == 1 and log.third_frame_loads == 1  # a third host's iframe loaded
    assert log.codes_issued == 1 and log.code_exchanges == 1
    assert login.child_result is not None and login.child_result.blocked == ()
    assert service.read_tokens(service.account(name)) is not None
    # What the broker sees of the browser: a normal Chrome, in the header and to page scripts.
    # (The token request is tdgui's own, from this process: not the browser.)
    agents = {ua for _, path, ua in log.user_agents if path != schwab_real.TOKEN_PATH}
    assert len(agents) == 1, agents
    page_agents = {r["ua"] for r in log.reports}
    for ua in agents | page_agents:
        assert "Chrome/" in ua and "QtWebEngine" not in ua and "Headless" not in ua, ua
    assert {r["frame"] for r in log.reports} == {"top", "third"}
    assert all(r["webdriver"] in ("False", "false") for r in log.reports), log.reports


def test_off_domain_redirect_is_blocked_and_the_browser_offered(
    qtbot: QtBot,
    tmp_path: Path,
    service: TokenService,
    mapped: Callable[[SchwabEmulator], TestHooks],
    callback: str,
) -> None:
    emu = start_emulator(tmp_path, callback, offsite_after_login=True)
    opened: list[str] = []

    class Browser(QObject):
        @Slot(QUrl)
        def open(self, url: QUrl) -> None:
            opened.append(url.toString())

    browser = Browser()
    QDesktopServices.setUrlHandler("https", browser, "open")  # type: ignore[arg-type]
    try:
        hooks = mapped(emu)
        name = add_schwab_account(service, callback)
        login = None
        from .helpers import start_login, wait_result

        login = start_login(
            qtbot,
            service,
            name,
            hooks=TestHooks(emulator_leaf_sha256=hooks.emulator_leaf_sha256, continue_when_blocked=True),
        )
        qtbot.waitUntil(lambda: login.child_outcome == "browser" and bool(opened), timeout=30_000)
        assert login.child_result is not None
        assert login.child_result.blocked == (f"https://{schwab_real.OFFSITE_HOST}/verify",)
        assert emu.log.offsite_requests == 0  # never contacted
        # The one-time start URL on the loopback listener (issue 11 #10, row 27), which
        # redirects to the authorization URL.
        import requests

        from helpers.sandbox import config_dir

        ca = str(config_dir() / "sandbox" / "ca.pem")
        start = requests.get(opened[0], verify=ca, allow_redirects=False, timeout=10)
        assert start.status_code == 302, start.status_code
        assert start.headers["Location"].startswith("https://api.schwabapi.com/v1/oauth/authorize?")
        login.cancel()
        assert wait_result(qtbot, login).outcome is LoginOutcome.CANCELLED
    finally:
        QDesktopServices.unsetUrlHandler("https")
        emu.stop()


def test_without_the_hook_the_emulator_certificate_is_refused(
    qtbot: QtBot,
    service: TokenService,
    emulator: SchwabEmulator,
    mapped: Callable[[SchwabEmulator], TestHooks],
    callback: str,
) -> None:
    """The production path: the emulator's CA is in no trust store, so the view refuses it."""
    mapped(emulator)
    name = add_schwab_account(service, callback)
    _, result = run_login(qtbot, service, name, hooks=None)
    assert result.outcome is LoginOutcome.CERTIFICATE, result.message
    assert emulator.log.views == []


def test_remembered_device_skips_the_security_code_the_second_time(
    qtbot: QtBot,
    service: TokenService,
    emulator: SchwabEmulator,
    mapped: Callable[[SchwabEmulator], TestHooks],
    callback: str,
) -> None:
    """Opt-in per account: its cookies persist in its own 0700 dir; without it, 2FA every time."""
    from dataclasses import replace

    from tdgui.core.accounts import AccountManager, device_dir

    hooks = mapped(emulator)
    name = add_schwab_account(service, callback)
    service.config.update_account(name, remember_device=True)
    assert run_login(qtbot, service, name, hooks=hooks)[1].ok
    assert emulator.log.views == ["login", "2fa", "terms", "accounts"]
    where = device_dir(service.config.directory, name)
    assert where.is_dir() and (where.stat().st_mode & 0o777) == 0o700
    assert {p.name for p in where.iterdir()} <= {"Cookies", "Cookies-journal"} and (
        where / "Cookies"
    ).exists()
    emulator.log.views.clear()
    assert run_login(qtbot, service, name, hooks=hooks)[1].ok
    assert emulator.log.views == ["login", "terms", "accounts"]  # a known device: no code
    # Another account on the same machine never shares that device.
    other = replace(service.account(name), name="other", remember_device=False)
    service.config.add_account(other)
    service.set_client_secret(other, SECRET)
    emulator.log.views.clear()
    assert run_login(qtbot, service, "other", hooks=hooks)[1].ok
    assert emulator.log.views == ["login", "2fa", "terms", "accounts"]
    assert not device_dir(service.config.directory, "other").exists()
    # Forgetting the device wipes it; the broker asks again.
    manager = AccountManager(service)
    manager.logout(name)
    assert where.exists()  # a plain logout keeps it
    manager.logout(name, forget_device=True)
    assert not where.exists()
    emulator.log.views.clear()
    assert run_login(qtbot, service, name, hooks=hooks)[1].ok
    assert emulator.log.views == ["login", "2fa", "terms", "accounts"]
    manager.remove(name)
    assert not where.exists()


def test_a_page_cannot_fetch_the_callback_as_a_sub_resource(
    qtbot: QtBot, tmp_path: Path, service: TokenService, mapped: Callable[[SchwabEmulator], TestHooks]
) -> None:
    """The request guard: an image at the callback URL is never requested (nothing connects)."""
    from .helpers import Listener

    listener = Listener()
    try:
        callback = f"https://127.0.0.1:{listener.port}/"
        emu = start_emulator(tmp_path, callback, probe_url=callback + "?code=stolen")
        try:
            hooks = mapped(emu)
            name = add_schwab_account(service, callback)
            _, result = run_login(qtbot, service, name, hooks=hooks)
        finally:
            emu.stop()
        assert result.outcome is LoginOutcome.SUCCESS, result.message
        assert listener.connections() == 0
    finally:
        listener.close()

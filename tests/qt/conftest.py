"""Qt test fixtures: private HOME/XDG dirs set before QApplication exists, a real sandbox over HTTPS."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Before any QApplication exists: WebEngine, Mesa and gnome-keyring must not touch the real home.
_SCRATCH = Path(tempfile.mkdtemp(prefix="tdgui-qt-tests-"))
for _var in ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
    (_SCRATCH / _var.lower()).mkdir()
    os.environ[_var] = str(_SCRATCH / _var.lower())
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
os.environ.setdefault("QT_LOGGING_RULES", "qt.webenginecontext.debug=false")

import PySide6.QtWebEngineWidgets  # noqa: E402, F401 - must be imported before QApplication exists
from PySide6.QtWidgets import QApplication  # noqa: E402

from helpers.sandbox import free_callback_url  # noqa: E402
from tdgui.core.config import Config, sandbox_account  # noqa: E402
from tdgui.core.service import TokenService  # noqa: E402
from tdgui.core.stores.memory import MemoryStore  # noqa: E402
from tdgui.qt.gui_gc import GuiThreadCollector  # noqa: E402
from tdgui.sandbox import SandboxServer, sandbox_state_dir  # noqa: E402


@pytest.fixture(scope="session")
def scratch_home() -> Path:
    """The session's private HOME/XDG root (checked for WebEngine storage by the tests)."""
    return _SCRATCH


@pytest.fixture
def sandbox(isolated_config: Path) -> Iterator[SandboxServer]:
    """A real HTTPS sandbox whose certificate is the one this config dir pins."""
    server = SandboxServer(sandbox_state_dir(isolated_config), port=0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def service(isolated_config: Path) -> TokenService:
    """The real token service on the per-test config dir, tokens in memory."""
    return TokenService(Config(isolated_config), store_override=MemoryStore())


@pytest.fixture
def add_sandbox_account(service: TokenService, sandbox: SandboxServer) -> Callable[..., str]:
    def add(name: str = "demo", flavor: str = "schwab", url: str | None = None) -> str:
        account = sandbox_account(name, flavor, sandbox_url=url or sandbox.base_url)
        # The callback on a free port, not the demo app's 8182: a busy port must not fail or
        # skip a browser login, and two suites can run side by side.
        service.config.add_account(dataclasses.replace(account, callback_url=free_callback_url()))
        return name

    return add


@pytest.fixture
def login_direct(service: TokenService, sandbox: SandboxServer) -> Callable[[str], None]:
    """Log an account in through the sandbox's real pages with requests (fast; no web view)."""
    from tdgui.sandbox.driver import login_with_requests

    def login(name: str) -> None:
        pending = service.begin_login(name)
        redirect = login_with_requests(pending.url, sandbox.certs.ca_file)
        service.finish_login(pending, redirect)

    return login


@pytest.fixture
def controller(service: TokenService) -> Iterator[object]:
    from tdgui.qt.controller import Controller
    from tdgui.qt.worker import wait_for_idle

    ctl = Controller(service)
    yield ctl
    ctl.close_logins()
    wait_for_idle(10_000)


@pytest.fixture(autouse=True)
def shells_shut_down(qtbot: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Shell a test made is shut down when it ends, also when it failed half-way.

    A failed test used to leave its shell's scheduler running: it refreshed against the stopped
    sandbox and its answer reached a deleted window during a later test, failing that one too.
    Torn down before qtbot (requested here), so the windows still exist.
    """
    from tdgui.qt.shell import Shell

    made: list[Shell] = []
    original = Shell.__init__

    def tracked(self: Shell, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(Shell, "__init__", tracked)
    yield
    for shell in made:
        shell.shutdown()


@pytest.fixture(autouse=True)
def gc_on_the_gui_thread(qapp: QApplication) -> Iterator[None]:
    """As in the app (tdgui.qt.gui_gc): no Qt object of a test is collected on a worker thread."""
    collector = GuiThreadCollector(qapp)
    yield
    collector.stop()
    collector.deleteLater()


@pytest.fixture(autouse=True)
def no_profile_leaks(qtlog: object) -> Iterator[None]:
    """Fail a test whose web engine teardown left a page behind its profile (Qt warns about it)."""
    yield
    records = getattr(qtlog, "records", [])
    bad = [
        r.message for r in records if "still not deleted" in r.message or "Release of profile" in r.message
    ]
    assert not bad, bad


@pytest.fixture
def manual_service(isolated_config: Path) -> TokenService:
    """A token service on a ManualClock that starts at the real time (the sandbox's clock is real)."""
    import time

    from tdgui.core.clock import ManualClock

    return TokenService(Config(isolated_config), clock=ManualClock(time.time()), store_override=MemoryStore())

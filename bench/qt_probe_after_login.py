"""Row 6 (and row 5) child: tdgui's real app objects log in to the sandbox, then idle in the tray.

    TD_CONFIG_DIR=... python bench/qt_probe_after_login.py ACCOUNT [--settle SECONDS]

The parent (bench/bench_qt.py) has started a sandbox (its certificates in TD_CONFIG_DIR) and
added ACCOUNT to that config. This script builds what `tdgui --minimized` runs
(tdgui.qt.shell.Shell: controller, hidden main window, tray icon, refresh scheduler; the tray
is forced on because the offscreen platform has no tray host) and logs in the way the tray
menu does, `Controller.open_login(ACCOUNT)`.

Two designs of the login view are handled:

- a login *child process* (tdgui.qt.login.parent, `tdgui --login-child`): the page is known
  to be shown when the child saves its screenshot (the app's own `screenshot` option); that
  login is cancelled, and a second one with the app's sandbox autofill completes the login;
- an in-process LoginWindow (older tdgui.qt.login): the forms are filled through
  LoginWindow.run_sandbox_script, which works on the sandbox's page only.

Stages, one word a line on stdout; after each the script waits for a line on stdin:

    STARTED       the app runs in the tray, statuses loaded, no login yet
    LOGIN_PAGE    the login window shows the sandbox's login page (web engine running)
    READY {...}   the login succeeded, the login window and its engine are gone (child
                  exited, or view/page/profile deleted), and SECONDS (default 3) passed;
                  a JSON object with details follows the word

End of file on stdin at any point ends the script. FAILED <reason> is printed on an error.
"""

from __future__ import annotations

import inspect
import json
import sys
import tempfile
import time
from pathlib import Path

FILL_LOGIN = (
    "document.getElementById('username').value='demo';"
    "document.getElementById('password').value='demo';"
    "document.getElementById('submit').click();"
)
CLICK_ALLOW = "document.getElementById('allow').click();"


def main(argv: list[str]) -> int:
    name = argv[1]
    settle = float(argv[argv.index("--settle") + 1]) if "--settle" in argv else 3.0

    from tdgui.qt.controller import Controller

    child_design = "autofill_sandbox" in inspect.signature(Controller.open_login).parameters
    if not child_design:
        import PySide6.QtWebEngineWidgets  # noqa: F401 - before the QApplication, as run_gui did
    import shiboken6
    from PySide6.QtCore import QObject, QSocketNotifier, QTimer
    from PySide6.QtWidgets import QApplication

    from tdgui.core.config import Settings
    from tdgui.core.environment import Environment
    from tdgui.core.root import build_core
    from tdgui.qt.app import build_shell

    app = QApplication(argv[:1])
    app.setQuitOnLastWindowClosed(False)
    settings = Settings()
    # The app's own wiring (tdgui.qt.app.run_gui builds the same): token work in child processes.
    shell = build_shell(
        build_core(Environment.from_os()), settings, use_tray=True, open_add_on_first_run=False
    )
    controller = shell.controller
    state: dict[str, object] = {"stage": "starting", "code": 0}
    logins: list[QObject] = []
    #: in-process design: the login's view, page and profile, watched (not owned) until deleted.
    engine: list[QObject] = []
    scratch = Path(tempfile.mkdtemp(prefix="tdgui-probe-"))
    started = time.monotonic()

    def say(line: str) -> None:
        print(line, flush=True)

    def fail(reason: str) -> None:
        say(f"FAILED {reason}")
        state["code"] = 1
        app.quit()

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if not line:
            app.quit()
            return
        stage = state["stage"]
        if stage == "STARTED":
            open_first_login()
        elif stage == "LOGIN_PAGE":
            state["stage"] = "logging in"
            if child_design:
                state["cancelling"] = True
                logins[-1].cancel()  # type: ignore[attr-defined]  # then log in with autofill
            else:
                logins[-1].run_sandbox_script(FILL_LOGIN)  # type: ignore[attr-defined]
        elif stage == "READY":
            app.quit()

    def on_statuses() -> None:
        if state["stage"] == "starting":
            state["stage"] = "STARTED"
            say("STARTED")

    # -- first login: show the page -----------------------------------------------------------
    def open_first_login() -> None:
        state["stage"] = "opening"
        state["opened_at"] = time.monotonic()
        if child_design:
            shot = scratch / "page.png"
            logins.append(controller.open_login(name, autofill_sandbox=False, screenshot=shot))
            wait_for_file(shot, time.monotonic() + 60.0)
        else:
            window = controller.open_login(name)
            logins.append(window)
            window.page_loaded.connect(on_page)  # type: ignore[attr-defined]

    def wait_for_file(path: Path, deadline: float) -> None:
        if path.exists() and path.stat().st_size > 0:
            # The child saves the screenshot 0.3 s after the page's loadFinished.
            state["click_to_page"] = round(time.monotonic() - float(state["opened_at"]) - 0.3, 3)  # type: ignore[arg-type]
            state["stage"] = "LOGIN_PAGE"
            say("LOGIN_PAGE")
        elif time.monotonic() > deadline:
            fail("the login child never showed the page (no screenshot)")
        else:
            QTimer.singleShot(50, lambda: wait_for_file(path, deadline))

    def on_page(_url: str) -> None:  # in-process design
        stage = state["stage"]
        if stage == "opening":
            window = logins[-1]
            engine.extend(o for o in (window.view, window.page, window.profile) if o is not None)  # type: ignore[attr-defined]
            state["click_to_page"] = round(time.monotonic() - float(state["opened_at"]), 3)  # type: ignore[arg-type]
            state["stage"] = "LOGIN_PAGE"
            say("LOGIN_PAGE")
        elif stage == "logging in":
            state["stage"] = "consent"
            logins[-1].run_sandbox_script(CLICK_ALLOW)  # type: ignore[attr-defined]

    # -- the login ------------------------------------------------------------------------------
    def on_login_finished(result: object) -> None:
        if state.pop("cancelling", False):
            # Child design: the page-showing login was cancelled; wait for its child to exit,
            # then log in for real with the app's sandbox autofill.
            wait_until(lambda: not logins[-1].is_running(), second_login, "the first login child")  # type: ignore[attr-defined]
            return
        if not result.ok:  # type: ignore[attr-defined]
            fail(f"login {result.outcome.value}: {result.message}")  # type: ignore[attr-defined]
            return
        state["stage"] = "settling"
        state["login_seconds"] = round(result.seconds, 3)  # type: ignore[attr-defined]
        if child_design:
            wait_until(lambda: not logins[-1].is_running(), settled, "the login child")  # type: ignore[attr-defined]
        else:
            wait_until(lambda: not any(shiboken6.isValid(o) for o in engine), settled, "the web engine")

    def second_login() -> None:
        logins.append(controller.open_login(name, autofill_sandbox=True))

    def wait_until(done: object, then: object, what: str, deadline: float | None = None) -> None:
        deadline = deadline if deadline is not None else time.monotonic() + 30.0
        if done():  # type: ignore[operator]
            then()  # type: ignore[operator]
        elif time.monotonic() > deadline:
            fail(f"{what} did not go away")
        else:
            QTimer.singleShot(50, lambda: wait_until(done, then, what, deadline))

    def settled() -> None:
        QTimer.singleShot(int(settle * 1000), ready)

    def ready() -> None:
        state["stage"] = "READY"
        state["guard"].stop()  # type: ignore[attr-defined]
        details = {
            "design": "login child process" if child_design else "in-process login window",
            "login_seconds": state.get("login_seconds"),
            "click_to_page": state.get("click_to_page"),
            "main_window_visible": shell.window.isVisible(),
            "engine_objects_alive": sum(1 for o in engine if shiboken6.isValid(o)),
            "since_start": round(time.monotonic() - started, 2),
        }
        say("READY " + json.dumps(details))

    controller.statuses_changed.connect(on_statuses)
    controller.login_finished.connect(on_login_finished)
    notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)
    notifier.activated.connect(on_stdin)

    def watchdog() -> None:
        if state["stage"] not in ("STARTED", "LOGIN_PAGE", "READY"):  # not waiting for the parent
            fail(f"stuck at stage {state['stage']}")

    # Stopped at READY: the idle measurement that follows must see none of this script's timers.
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(watchdog)
    guard.start(120_000)
    state["guard"] = guard
    shell.start(show=False)
    app.exec()
    shell.shutdown()
    code = state["code"]
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

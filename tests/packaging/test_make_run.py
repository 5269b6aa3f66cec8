"""`make run` / `tdgui` on a machine without a display, and Ctrl-C (issue 14, defect 4)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.signals import with_default_signals

ROOT = Path(__file__).resolve().parents[2]
STAMP = ".venv/.stamp-installed"
NO_DISPLAY_VARS = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
#: Seconds to let a started app settle before Ctrl-C.
IDLE = 3.0


def headless_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NO_DISPLAY_VARS}
    env["HOME"] = str(tmp_path / "home")
    return env


def make_run(*extra: str) -> list[str]:
    # -o: the venv is set up already; `make run` must not reinstall it inside a test.
    return ["make", "-s", "-C", str(ROOT), "-o", "setup", "-o", STAMP, "run", *extra]


def wait_until_running(isolated_config: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Until the app's single-instance server answers (it is up and in its event loop).

    The callers take pytest-qt's `qapp`: a bare QCoreApplication made here would outlive the
    test, and every later test's QWidget would abort ("Must construct a QApplication")."""
    from tdgui.qt.single_instance import SingleInstance, instance_key

    probe = SingleInstance(instance_key(isolated_config))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if probe.notify_running(200):
            return
        time.sleep(0.2)
    pytest.fail("the app did not come up")


def signal_and_wait(
    proc: subprocess.Popen[str], number: int = signal.SIGINT, *, group: bool = False, timeout: float = 20
) -> float:
    """Send `number` and wait for the exit. `group`: to the whole foreground process group, as a
    terminal sends Ctrl-C; otherwise to the app's process alone, as a session manager or `kill`."""
    started = time.monotonic()
    if group:
        os.killpg(proc.pid, number)
    else:
        proc.send_signal(number)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        pytest.fail(f"signal {number} did not stop it within {timeout:g} s")
    return time.monotonic() - started


def test_tdgui_without_a_display_says_so_and_exits_2(tmp_path: Path) -> None:
    env = headless_env(tmp_path)
    argv = [sys.executable, "-m", "tdgui"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tdgui: no display found"), lines
    assert "tdgui --help" in lines[0]


def test_make_run_without_a_display_refuses_and_names_the_xvfb_option(tmp_path: Path) -> None:
    started = time.monotonic()
    env = headless_env(tmp_path)
    result = subprocess.run(make_run(), env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no display found" in result.stderr and "make run XVFB=1" in result.stderr, result.stderr
    assert time.monotonic() - started < 60  # it stops; it does not sit on an invisible screen


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda n: n.name)
def test_quit_signals_quit_the_running_app(
    qapp: object, tmp_path: Path, isolated_config: Path, number: signal.Signals
) -> None:
    """Ctrl-C (SIGINT to the group), logout or `kill` (SIGTERM), the terminal closed (SIGHUP)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"))
    proc = subprocess.Popen(
        with_default_signals([sys.executable, "-m", "tdgui"]),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        wait_until_running(isolated_config, proc)
        time.sleep(IDLE)  # the start-up's own work is over: the loop idles, as a user's app does
        seconds = signal_and_wait(proc, number, group=number == signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    print(f"\n{number.name}: the app quit {seconds:.2f} s later")
    assert proc.returncode == 0, (proc.returncode, out, err[-2000:])


def test_make_run_xvfb_starts_on_request_and_ctrl_c_stops_it(
    qapp: object, tmp_path: Path, isolated_config: Path
) -> None:
    assert shutil.which("xvfb-run"), "xvfb-run is missing: scripts/system-deps.sh installs it"
    proc = subprocess.Popen(
        make_run("XVFB=1"),
        env=headless_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until_running(isolated_config, proc)
        time.sleep(IDLE)
        signal_and_wait(proc, signal.SIGINT, group=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    assert "invisible Xvfb" in out


def test_nohup_keeps_the_app_through_a_hangup(qapp: object, tmp_path: Path, isolated_config: Path) -> None:
    """`nohup tdgui &` asked for SIGHUP to be ignored: the app keeps it ignored (and runs on)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"))
    proc = subprocess.Popen(
        with_default_signals([sys.executable, "-m", "tdgui"], ignore_hup=True),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until_running(isolated_config, proc)
        proc.send_signal(signal.SIGHUP)
        time.sleep(IDLE)
        assert proc.poll() is None, "the app quit on a SIGHUP that nohup had it ignore"
        signal_and_wait(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.communicate()
    # Only the SIGTERM quit it: the app never acted on the hangup (not even slowly).
    log = (Path(os.environ["TD_LOG_DIR"]) / "tdgui.log").read_text()
    assert f"signal {int(signal.SIGTERM)}: quitting" in log, log[-2000:]
    assert f"signal {int(signal.SIGHUP)}: quitting" not in log, log[-2000:]

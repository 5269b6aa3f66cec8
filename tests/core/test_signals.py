"""core.signals.critical_section holds quit signals, and leaves one ignored on entry ignored."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

#: Runs in a fresh interpreter: it changes signal handlers, which pytest's own process keeps.
CHILD = textwrap.dedent(
    """
    import signal, sys
    from tdgui.core import signals
    notices = []
    signals.set_notice(notices.append)
    if sys.argv[1] == "ignored":
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under `nohup`
    try:
        with signals.critical_section("the token refresh"):
            signal.raise_signal(signal.SIGHUP)
            print("survived the block", flush=True)
    except BaseException as exc:
        print("raised", type(exc).__name__, flush=True)
    print("after the block", len(notices), signal.getsignal(signal.SIGHUP) is signal.SIG_IGN, flush=True)
    """
)


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )


def test_a_held_signal_is_delivered_after_the_block() -> None:
    result = _run("default")
    assert result.stdout.splitlines() == ["survived the block"], result.stderr
    assert result.returncode == -signal.SIGHUP  # delivered once the block ended, with its default


def test_a_signal_ignored_on_entry_stays_ignored_without_a_notice() -> None:
    result = _run("ignored")
    assert result.returncode == 0, result.stderr
    # No "finishing ... first" notice for a signal nobody will act on; SIGHUP still ignored.
    assert result.stdout.splitlines() == ["survived the block", "after the block 0 True"], result.stderr

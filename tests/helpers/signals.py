"""Children that are sent a signal start with it at its default, whatever the suite was started under."""

from __future__ import annotations

from collections.abc import Sequence


def with_default_signals(argv: Sequence[str], *, ignore_hup: bool = False) -> list[str]:
    """`argv` started with INT/TERM/HUP at their defaults, as from a terminal (SIGHUP ignored,
    as under `nohup`, with `ignore_hup`).

    Signals ignored on entry cannot be trapped by a shell (POSIX), and tdgui keeps them ignored
    too: a suite started under `nohup` made row 36's SIGHUP case wait out its child's 60 s
    sleep. coreutils' env, not a preexec_fn: the suite's process runs Qt's threads, and code
    between fork and exec is unsafe there.
    """
    prefix = ["env", "--default-signal=INT,TERM,HUP"]
    if ignore_hup:
        prefix.append("--ignore-signal=HUP")
    return [*prefix, *argv]

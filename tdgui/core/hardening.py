"""Process hardening for processes that hold secrets: no core dumps, not dumpable (issue 11 #15)."""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

#: <linux/prctl.h>
PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def disable_core_dumps(*, library: bool = False) -> None:
    """RLIMIT_CORE 0 (soft and hard), and on Linux PR_SET_DUMPABLE 0; `library`: soft limit only.

    An aborted tray app left an 85 MB core holding the refresh token (issue 11 #15). Lowering
    the hard limit too means nothing later in the process (a plugin, Qt) can raise it again.
    Non-dumpable also covers cores written by a core_pattern pipe (systemd-coredump ignores
    RLIMIT_CORE when it is piped) and blocks same-user ptrace (gdb, py-spy) and
    /proc/PID/mem reads, which is the point: that is how another program of the same user
    would read the tokens out of memory. `library=True` is for the Python API, where the
    process is the user's own script: only the soft limit goes to 0 (they may raise it again)
    and it stays dumpable, so they can still attach a debugger to their own program.
    Best effort: a platform without these calls is left as it is, with a DEBUG line.
    """
    try:
        import resource
    except ImportError:  # Windows: no core dumps in the POSIX sense
        resource = None  # type: ignore[assignment]
    if resource is not None:
        try:
            hard = resource.getrlimit(resource.RLIMIT_CORE)[1] if library else 0
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
        except (OSError, ValueError) as exc:
            log.debug("could not set RLIMIT_CORE to 0: %s", exc)
    if not library and sys.platform.startswith("linux"):
        _prctl(PR_SET_DUMPABLE, 0)


def is_dumpable() -> bool | None:
    """PR_GET_DUMPABLE on Linux (None elsewhere or if the call fails)."""
    if not sys.platform.startswith("linux"):
        return None
    result = _prctl(PR_GET_DUMPABLE, 0)
    return None if result is None or result < 0 else bool(result)


def _prctl(option: int, arg: int) -> int | None:
    try:
        # CDLL(None): the already-loaded libc (dlopen(NULL)); find_library would spawn ldconfig
        # and slow every `tdgui token` down.
        libc = ctypes.CDLL(None, use_errno=True)
        result = int(libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0))
    except (OSError, AttributeError) as exc:
        log.debug("prctl(%d) unavailable: %s", option, exc)
        return None
    if result < 0:
        log.debug("prctl(%d) failed: errno %d", option, ctypes.get_errno())
    return result

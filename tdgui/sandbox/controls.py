"""The sandbox's control API (faults, clock, stats under /_sandbox/), open only with the run's secret.

Anyone on the machine can connect to 127.0.0.1, so a control request must also carry the
secret this sandbox run made at start (issue 11, finding 17: another local user queued an
`invalid_grant` fault and the owner's account showed "login required"). The secret is kept
in the sandbox object and in a 0600 file in its 0700 state dir, which only the user can read.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import secrets
from pathlib import Path

from tdgui.core.fsutil import atomic_write
from tdgui.sandbox.model import State
from tdgui.sandbox.transport import Handler

LOG = logging.getLogger(__name__)

CONTROL_PREFIX = "/_sandbox/"
#: The request header carrying the run's control secret.
CONTROL_HEADER = "X-Sandbox-Secret"
_LOCAL_ADDRESSES = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def new_control_secret() -> str:
    return secrets.token_urlsafe(32)


def control_secret_file(state_dir: Path, port: int) -> Path:
    """Where the sandbox on `port` keeps its control secret (one file per port: several
    sandboxes may share one state dir)."""
    return state_dir / f"control-{port}.secret"


def write_control_secret(state_dir: Path, port: int, secret: str) -> Path:
    path = control_secret_file(state_dir, port)
    atomic_write(path, secret + "\n")  # 0600 in a 0700 dir
    return path


def read_control_secret(state_dir: Path, port: int) -> str:
    """The control secret of the sandbox running on `port` with this state dir (OSError if none)."""
    return control_secret_file(state_dir, port).read_text(encoding="ascii").strip()


def remove_control_secret(state_dir: Path, port: int, secret: str) -> None:
    """Remove the file if it still holds this run's secret (not a later run's on the same port)."""
    path = control_secret_file(state_dir, port)
    with contextlib.suppress(OSError):
        if hmac.compare_digest(path.read_bytes().strip(), secret.encode()):
            path.unlink()


def authorized(handler: Handler, secret: str) -> bool:
    given = handler.headers.get(CONTROL_HEADER) or ""
    # compare_digest: the time taken must not tell how much of a guess was right.
    return hmac.compare_digest(given.encode("utf-8", "replace"), secret.encode())


def control_endpoint(
    state: State, secret: str, handler: Handler, method: str, path: str, body: bytes
) -> None:
    """Answer one request under /_sandbox/: stats, fault, page-fault, clear-faults, reset-stats,
    advance-clock, answer-delay."""
    if handler.client_address[0] not in _LOCAL_ADDRESSES:
        handler.send_text(403, "sandbox controls answer only 127.0.0.1")
        return
    if not authorized(handler, secret):
        LOG.warning("refused a sandbox control request without the run's secret: %s %s", method, path)
        handler.send_text(
            403,
            f"sandbox controls need this run's secret in the {CONTROL_HEADER} header "
            "(it is in the sandbox state dir, control-PORT.secret)",
        )
        return
    if path == CONTROL_PREFIX + "stats" and method == "GET":
        handler.send_json(200, state.counts())
        return
    if method != "POST":
        handler.send_text(405, "use POST")
        return
    try:
        data = json.loads(body or b"{}")
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        if path == CONTROL_PREFIX + "fault":
            state.faults.add(
                str(data.get("kind")),
                int(data.get("count", 1)),
                None if data.get("retry_after") is None else float(data["retry_after"]),
                float(data.get("hang_seconds", 30)),
            )
        elif path == CONTROL_PREFIX + "page-fault":
            state.faults.add_page(str(data.get("kind")), int(data.get("count", 1)))
        elif path == CONTROL_PREFIX + "clear-faults":
            state.faults.clear()
        elif path == CONTROL_PREFIX + "reset-stats":
            state.reset_stats()
        elif path == CONTROL_PREFIX + "advance-clock":
            state.advance_clock(float(data["seconds"]))
        elif path == CONTROL_PREFIX + "answer-delay":
            state.faults.set_answer_delay(float(data["seconds"]))
        else:
            handler.send_text(404, f"no such control: {path}")
            return
    except (ValueError, TypeError, KeyError) as exc:
        handler.send_json(400, {"error": "invalid_request", "error_description": str(exc)})
        return
    handler.send_json(200, {"ok": True})

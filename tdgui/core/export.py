"""Token files other tools read: schwab-py / tda-api (`client_from_token_file`) and plain JSON."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from tdgui.core.errors import UsageError
from tdgui.core.fsutil import NotRegularFile, atomic_write
from tdgui.core.tokens import TokenSet

FORMATS = ("schwab-py", "tda-api", "json")


def render(tokens: TokenSet, fmt: str) -> dict[str, Any]:
    """The JSON object for one format (docs/design.md §4)."""
    if fmt in ("schwab-py", "tda-api"):
        # authlib's OAuth2Token (used by both) reads expires_at; without it the access token
        # is assumed fresh. schwab-py refuses a file without creation_timestamp.
        token = dict(tokens.response)
        token.update(
            access_token=tokens.access_token,
            token_type=tokens.token_type,
            expires_in=max(0, int(tokens.access_expires_at - tokens.received_at)),
            expires_at=int(tokens.access_expires_at),
        )
        if tokens.refresh_token:
            token["refresh_token"] = tokens.refresh_token
        if tokens.scope:
            token["scope"] = tokens.scope
        return {"creation_timestamp": int(tokens.login_at), "token": token}
    if fmt == "json":
        return {
            "access_token": tokens.access_token,
            "token_type": tokens.token_type,
            "access_expires_at": tokens.access_expires_at,
            "refresh_token": tokens.refresh_token,
            "refresh_expires_at": tokens.refresh_expires_at,
            "login_at": tokens.login_at,
            "scope": tokens.scope,
        }
    raise UsageError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")


def target_path(path: Path) -> Path:
    """The absolute path an export is written to and recorded as, links NOT resolved.

    Issue 11 #5: `resolve()` turned a symlink planted at the target (or on the way, in a
    shared sticky directory) into the path of another file, which the export then replaced
    (and `--keep-synced` replaced again after every refresh). abspath only normalises text.
    """
    return Path(os.path.abspath(path.expanduser()))


def write_export(tokens: TokenSet, fmt: str, path: Path) -> None:
    """Write atomically, 0600 (the file holds live tokens), never through a symlink."""
    body = render(tokens, fmt)
    target = target_path(path)
    try:
        atomic_write(target, json.dumps(body, indent=2) + "\n", own_dir=False)
    except NotRegularFile as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.errno == errno.ELOOP:
            reason += "; tdgui does not follow it"
        raise UsageError(f"cannot write {target}: {reason}") from None

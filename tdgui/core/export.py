"""Token files other tools read: schwab-py / tda-api (`client_from_token_file`) and plain JSON."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from tdgui.core.config import Account, Config, ExportTarget
from tdgui.core.errors import TdguiError, UsageError
from tdgui.core.fsutil import NotRegularFile, atomic_write, read_private_text
from tdgui.core.tokens import TokenSet, TokenTimes

log = logging.getLogger(__name__)

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


class KeptExports:
    """The `--keep-synced` token files of one config dir, and which tokens they last got.

    Every write of them happens under the account's refresh lock (the caller holds it), with
    tokens read under that lock: a refresh cannot slip between reading and writing, so a file
    never ends with a refresh token the provider has already rotated out (issue 11 #8: 2 of 90
    exports racing a rotating refresh did). A marker per account (`synced/NAME.json`, no secret:
    the tokens' login and receipt times) says what the files hold, so tokens refreshed by
    another machine sharing the store are written here when this machine first reads them
    (issue 12), and so are tokens whose refreshing process was killed before it wrote them.
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    def _marker(self, name: str) -> Path:
        return self.config.directory / "synced" / f"{name}.json"

    def written(self, name: str) -> str | None:
        """The stamp of the tokens the files last got (None: unknown, treated as stale)."""
        try:
            body = json.loads(read_private_text(self._marker(name), 4096))
        except (OSError, ValueError):
            return None
        stamp = body.get("tokens") if isinstance(body, dict) else None
        return stamp if isinstance(stamp, str) else None

    def stale(self, account: Account, times: TokenTimes) -> bool:
        """Whether `account` has kept files that do not hold the tokens with these times."""
        return bool(account.exports) and self.written(account.name) != stamp(times)

    def rewrite(self, name: str, tokens: TokenSet) -> None:
        """Write every kept file of `name` (as registered now) with `tokens`; refresh lock held.

        A file that cannot be written is reported in the log and skipped: the refresh that
        brought the tokens has succeeded and stays so. The marker then stays behind, so the
        next read tries that file again instead of leaving it with a rotated-out token.
        """
        account = self.config.find(name)  # now: an export registered a moment ago is included
        if account is None:
            return
        failed = 0
        for target in account.exports:
            try:
                write_export(tokens, target.format, Path(target.path))
            except TdguiError as exc:
                failed += 1
                log.warning("could not update the token file %s: %s", target.path, exc)
        if not failed:
            self._mark(name, tokens.times())

    def forget(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._marker(name).unlink()

    def export(self, name: str, tokens: TokenSet, fmt: str, path: Path, *, keep_synced: bool) -> None:
        """`tdgui export`: write `path`; with `keep_synced` register it (read-modify-write under
        the config lock: 5 of 40 concurrent exports were lost when the list was read before it,
        issue 11 #8). The caller holds the refresh lock and read `tokens` under it."""
        target = ExportTarget(format=fmt, path=str(target_path(path)))
        write_export(tokens, fmt, Path(target.path))
        if not keep_synced:
            return
        with self.config.editing() as data:
            account = data.accounts.get(name)
            if account is None:
                raise UsageError(f"no account named {name!r}")
            kept = (*tuple(e for e in account.exports if e.path != target.path), target)
            data.accounts[name] = replace(account, exports=kept).validate()
        if self.stale(data.accounts[name], tokens.times()):
            self.rewrite(name, tokens)  # the other kept files still hold older tokens

    def _mark(self, name: str, times: TokenTimes) -> None:
        try:
            atomic_write(self._marker(name), json.dumps({"tokens": stamp(times)}) + "\n")
        except OSError as exc:  # the files are written; next time they are merely rewritten
            log.warning("could not record which tokens the exported files of %s hold: %s", name, exc)


def stamp(times: TokenTimes) -> str:
    """Which tokens these are, without any secret: every login and refresh gets new times."""
    return f"{times.login_at!r}/{times.access_received_at!r}"

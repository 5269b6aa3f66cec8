"""The status record: non-secret bookkeeping per account (times, last refresh, login required)."""

from __future__ import annotations

import errno
import json
import logging
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from tdgui.core.clock import boot_reference
from tdgui.core.errors import StoreUnavailable
from tdgui.core.fsutil import STATUS_LIMIT, atomic_write, read_private_text
from tdgui.core.tokens import TokenTimes

log = logging.getLogger(__name__)

#: The wall clock may lag real time by this much before tdgui stops believing it (NTP steps).
CLOCK_TOLERANCE = 30.0
#: At most this many answer warnings are kept (each is already sanitized and bounded).
MAX_WARNINGS = 8


@dataclass(frozen=True)
class RefreshRecord:
    """Kept beside the config (not in the token store): status and the scheduler read it instead of
    the keyring, saving a D-Bus round trip (and any unlock prompt) per account."""

    last_refresh_at: float | None = None
    last_refresh_ok: bool | None = None
    last_error: str | None = None
    login_required: bool = False
    #: A copy of the stored tokens' times (no token).
    times: TokenTimes | None = None
    #: Set just before a refresh request is sent, cleared when its outcome is recorded: still
    #: set afterwards means a process died with the request out, and the provider may have
    #: rotated the refresh token without anyone receiving the new one.
    refresh_started_at: float | None = None
    #: clock.boot_reference() when the access token arrived: how much real time has passed since,
    #: whatever the wall clock says now (a clock set back must not make an expired token look new).
    received_boot_id: str | None = None
    received_boottime: float | None = None
    #: What was odd about the answer the stored tokens came from (TokenSet.warnings: a bad
    #: lifetime replaced by the provider's default, extra fields dropped), for `status`.
    warnings: tuple[str, ...] = ()
    #: The last refresh was sent and its answer lost (oauth.RefreshOutcomeUnknown): the provider
    #: may have rotated the refresh token; kept until a refresh succeeds or the grant is dead.
    outcome_unknown: bool = False

    def failed(
        self, at: float, error: str, *, login_required: bool, outcome_unknown: bool = False
    ) -> RefreshRecord:
        """This record after a failed refresh: the tokens' times stay, a dead grant stays dead."""
        dead = login_required or self.login_required
        return replace(
            self,
            last_refresh_at=at,
            last_refresh_ok=False,
            last_error=error,
            login_required=dead,
            refresh_started_at=None,
            outcome_unknown=outcome_unknown or (self.outcome_unknown and not dead),
        )

    def interrupted_note(self) -> str | None:
        """What to tell the user about a refresh that never recorded its outcome, or lost its answer."""
        from tdgui.core.text import fmt_time

        if self.refresh_started_at is not None:
            return (
                f"a refresh started at {fmt_time(self.refresh_started_at)} never finished (the "
                "process was killed or lost power with the request out); if the provider rotated "
                "the refresh token then, a new login is needed"
            )
        if self.outcome_unknown:
            at = fmt_time(self.last_refresh_at) if self.last_refresh_at else "an earlier time"
            return (
                f"the answer to the refresh at {at} was lost after it was sent; if the provider "
                "rotated the refresh token then, a new login is needed"
            )
        return None

    @classmethod
    def succeeded(cls, times: TokenTimes, warnings: tuple[str, ...] = ()) -> RefreshRecord:
        boot = boot_reference()
        return cls(
            last_refresh_at=times.access_received_at,
            last_refresh_ok=True,
            times=times,
            received_boot_id=boot[0] if boot else None,
            received_boottime=boot[1] if boot else None,
            warnings=tuple(warnings)[:MAX_WARNINGS],
        )

    def real_now(self, times: TokenTimes, wall_now: float) -> float:
        """`wall_now`, or later if real time since these tokens arrived says the clock went back."""
        boot = boot_reference()
        if boot is None or self.times != times or self.received_boottime is None:
            return wall_now
        if boot[0] != self.received_boot_id:
            return wall_now  # another boot: the wall clock is all there is
        real_elapsed = boot[1] - self.received_boottime
        if real_elapsed - (wall_now - times.access_received_at) > CLOCK_TOLERANCE:
            return times.access_received_at + real_elapsed
        return wall_now


def _times_ok(body: object) -> bool:
    if not isinstance(body, dict) or set(body) != {f.name for f in fields(TokenTimes)}:
        return False
    numbers = [body["access_expires_at"], body["access_received_at"], body["login_at"]]
    if body["refresh_expires_at"] is not None:
        numbers.append(body["refresh_expires_at"])
    return all(type(n) in (int, float) and math.isfinite(n) for n in numbers) and (
        type(body["has_refresh_token"]) is bool
    )


def _record_types_ok(record: RefreshRecord) -> bool:
    """The JSON types RefreshRecord promises (a hand-edited or damaged file may break them)."""
    at, started = record.last_refresh_at, record.refresh_started_at
    return (
        (at is None or (type(at) in (int, float) and math.isfinite(at)))
        and (started is None or (type(started) in (int, float) and math.isfinite(started)))
        and (record.received_boot_id is None or type(record.received_boot_id) is str)
        and (record.received_boottime is None or type(record.received_boottime) in (int, float))
        and (record.last_refresh_ok is None or type(record.last_refresh_ok) is bool)
        and (record.last_error is None or type(record.last_error) is str)
        and type(record.login_required) is bool
        and type(record.outcome_unknown) is bool
        and type(record.warnings) is tuple
        and len(record.warnings) <= MAX_WARNINGS
        and all(type(w) is str and len(w) <= 1000 for w in record.warnings)
    )


def record_to_json(record: RefreshRecord) -> str:
    return json.dumps(asdict(record))


def record_from_json(text: str) -> RefreshRecord:
    """The record in `text`; a damaged one reads as empty (bookkeeping only, rebuilt on write)."""
    try:
        body = json.loads(text)
        if not isinstance(body, dict):
            return RefreshRecord()
        times = body.pop("times", None)
        if times is not None and not _times_ok(times):
            times = None
        warnings = body.pop("warnings", ())
        if isinstance(warnings, list):
            warnings = tuple(warnings)
        record = RefreshRecord(**body, times=TokenTimes(**times) if times else None, warnings=warnings)
    except (ValueError, TypeError, RecursionError):
        return RefreshRecord()
    if not _record_types_ok(record):
        return RefreshRecord()
    return record


class StatusRecords:
    """`status/NAME.json` under one config directory; a damaged record reads as empty."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        return self.directory / "status" / f"{name}.json"

    def read(self, name: str) -> RefreshRecord:
        try:
            return record_from_json(read_private_text(self.path(name), STATUS_LIMIT))
        except FileNotFoundError:
            return RefreshRecord()
        except (OSError, ValueError):
            return RefreshRecord()  # bookkeeping only: a damaged file is rebuilt on next write

    def save(self, name: str, record: RefreshRecord, *, before_refresh: bool = False) -> None:
        """Write the record; a failure is only logged (bookkeeping must not fail `token`), except
        a full disk `before_refresh`: the new tokens could not be stored either, and under
        rotation the grant would be lost, so that is StoreUnavailable and no refresh is sent."""
        try:
            atomic_write(self.path(name), record_to_json(record))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if before_refresh and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreUnavailable(
                    f"cannot write {self.path(name)}: the disk is full ({reason}); the refresh was "
                    "not sent, so the stored tokens still work once there is space again"
                ) from None
            log.warning("could not write the status record of %s: %s", name, reason)

    def delete(self, name: str) -> None:
        try:
            self.path(name).unlink(missing_ok=True)
        except OSError as exc:  # status/ unusable (not a directory, read-only): bookkeeping only
            log.warning("could not delete the status record of %s: %s", name, exc.strerror or exc)

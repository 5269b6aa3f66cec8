"""What the status view and the scheduler read of each account: statuses and plans, kept
apart from the token lifecycle that writes them (tdgui.core.service)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from tdgui.core import fsutil, schedule
from tdgui.core.config import Account
from tdgui.core.db_setup import store_place
from tdgui.core.errors import StoredDataError, StoreUnavailable, TdguiError
from tdgui.core.records import RefreshRecord
from tdgui.core.service_stores import StoreWiring
from tdgui.core.status import AccountPlan, AccountStatus, plan_of, status_of
from tdgui.core.tokens import TokenTimes

if TYPE_CHECKING:
    from tdgui.core.tokens import TokenSet


class StatusReading(StoreWiring):
    """Mixed into TokenService, which sets these attributes and defines the record methods."""

    lead: float
    status_from_records_only: bool

    if TYPE_CHECKING:

        def read_tokens(self, account: Account) -> TokenSet | None: ...
        def _shares_records(self, account: Account) -> bool: ...
        def _record_for(self, account: Account) -> RefreshRecord: ...
        def _catch_up_exports(self, account: Account, times: TokenTimes) -> None: ...

    # -- status ---------------------------------------------------------------------------
    def status(self, name: str) -> AccountStatus:
        return self._status_of(self.account(name), self._login_soon())

    def statuses(self) -> list[AccountStatus]:
        login_soon = self._login_soon()
        return [self._status_of(a, login_soon) for a in self.config.accounts()]

    def _login_soon(self) -> float:
        """The user's first warning lead, so the state turns "login soon" when they are told."""
        from tdgui.core.background import WarnPolicy  # not on `tdgui token`'s path

        try:
            return WarnPolicy.from_settings(self.config.settings()).login_soon
        except TdguiError:
            return schedule.WARN_WINDOW  # a broken settings file: config reports it elsewhere

    def _status_of(self, account: Account, login_soon: float) -> AccountStatus:
        now = self.clock.now()
        provider = self.provider(account)
        read_error = times = None
        record = RefreshRecord()
        try:
            record = self._record_for(account)  # from the database for a shared account
            times = self._times(account, record)
        except (StoreUnavailable, StoredDataError) as exc:
            read_error = str(exc)
        interrupted = record.refresh_started_at is not None and not self._refresh_running(account)
        if times is not None and not self.status_from_records_only:
            self._catch_up_exports(account, times)
        kind = self.store_kind(account)
        status = status_of(
            account.name,
            account.provider,
            kind,
            provider,
            record,
            times,
            now,
            self.lead,
            read_error=read_error,
            interrupted=interrupted,
            login_soon=login_soon,
        )
        return replace(status, store_place=store_place(account, kind))

    def _refresh_running(self, account: Account) -> bool:
        """Whether a process holds this account's refresh lock now (a marked refresh whose lock
        is free was cut off: its process died, the kernel released the lock)."""
        if not self._shares_records(account):
            return False
        from filelock import Timeout

        try:
            with fsutil.kernel_lock(self.directory / "locks" / f"{account.name}.lock", 0):
                return False
        except Timeout:
            return True
        except fsutil.LockUnavailable:
            return True  # cannot tell: say nothing rather than cry "interrupted"

    def plans(self) -> list[AccountPlan]:
        """Per account: the next refresh and the next expiry warning (schedule.py), read once."""
        now = self.clock.now()
        plans = []
        for account in self.config.accounts():
            try:
                record = self._record_for(account)
                times = self._times(account, record)
                provider = self.provider(account)
            except TdguiError as exc:
                plans.append(AccountPlan(account.name, None, None, False, False, str(exc)))
                continue
            plans.append(plan_of(account.name, provider, record, times, now, self.lead))
        return plans

    def _times(self, account: Account, record: RefreshRecord) -> TokenTimes | None:
        """Token times from the status record when the tokens live in a durable store."""
        if self._shares_records(account) and (record.times is not None or self.status_from_records_only):
            return record.times
        tokens = self.read_tokens(account)
        return tokens.times() if tokens else None

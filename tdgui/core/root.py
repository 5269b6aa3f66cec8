"""The composition root: every entry point builds its core objects here, from one Environment."""

from __future__ import annotations

from dataclasses import dataclass

from tdgui.core import schedule
from tdgui.core.accounts import AccountManager
from tdgui.core.clock import SYSTEM_CLOCK, Clock
from tdgui.core.config import Config
from tdgui.core.environment import Environment
from tdgui.core.service import TokenService
from tdgui.core.stores.base import TokenStore


@dataclass(frozen=True)
class Core:
    """The objects an entry point works with, wired once."""

    env: Environment
    config: Config
    service: TokenService
    accounts: AccountManager


def build_core(
    env: Environment,
    *,
    clock: Clock = SYSTEM_CLOCK,
    lead: float = schedule.DEFAULT_LEAD,
    store_override: TokenStore | None = None,
) -> Core:
    config = Config(env.config_dir, sandbox_url=env.sandbox_url)
    service = TokenService(config, clock=clock, lead=lead, store_override=store_override, http=env.http)
    return Core(env=env, config=config, service=service, accounts=AccountManager(service))

"""Prepare a login in the app: the pending state (kept in this process) and the child's LoginSpec. No Qt."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tdgui.core import flow
from tdgui.core.accounts import device_dir
from tdgui.core.fsutil import private_dir
from tdgui.core.ops import TokenOps
from tdgui.core.providers import Provider, host_of
from tdgui.core.service import TokenService
from tdgui.qt.login.protocol import LoginSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A started login: the pending state (kept here, in the parent) and the child's spec."""

    pending: flow.PendingLogin
    provider: Provider
    pinned_sha256: str | None
    pinned_host: str | None
    #: the account remembers its device: where its cookies live (tdgui.core.accounts)
    device_dir: str | None = None

    def spec(self, account: str, timeout: float) -> LoginSpec:
        return LoginSpec(
            account=account,
            url=self.pending.url,
            redirect_uri=self.pending.redirect_uri,
            login_domains=tuple(self.provider.login_domains),
            provider=self.provider.name,
            pinned_sha256=self.pinned_sha256,
            pinned_host=self.pinned_host,
            timeout=timeout,
            device_dir=self.device_dir,
        )


def certificate_pin(provider: Provider) -> tuple[str | None, str | None]:
    """(SHA-256 of the one leaf the view may accept, its host): only a profile that pins one
    (the sandbox's travels on its provider profile) gets an exception to the certificate check."""
    if provider.pinned_cert_file is None:
        return None, None
    return provider.pinned_sha256(), host_of(provider.authorize_url).lower()


def prepare(service: TokenService, ops: TokenOps, name: str) -> Prepared:
    """Worker thread: the authorization URL (`ops`: the store and client secret are checked
    there, maybe in a child process) and the pin (from the provider profile, no keyring)."""
    account = service.account(name)
    provider = service.provider(account)
    pending = ops.begin_login(name)
    device = None
    if account.remember_device:
        device = str(private_dir(device_dir(service.config.directory, name)).resolve())
    return Prepared(pending, provider, *certificate_pin(provider), device_dir=device)

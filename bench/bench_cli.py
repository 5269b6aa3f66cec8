"""Benchmarks of the script paths: redirect→stored, `tdgui token` (valid / refresh due), status at scale."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import PYTHON, Result, alternate, isolated_config, median_and_spread, timed_process
from tdgui.core.config import Account, Config, sandbox_account
from tdgui.core.service import TokenService
from tdgui.core.stores import open_store
from tdgui.core.tokens import TokenSet
from tdgui.sandbox import SandboxServer, sandbox_state_dir
from tdgui.sandbox.driver import login_with_requests

RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def _sandbox(config: Path) -> SandboxServer:
    return SandboxServer(sandbox_state_dir(config)).start()


def _add(name: str, server: SandboxServer, store: str = "keyring") -> Account:
    base = sandbox_account(name, "schwab", server.base_url)
    account = Account(**{**base.to_dict(), "store": store, "scopes": (), "exports": ()})
    Config().add_account(account)
    return account


def _login(service: TokenService, name: str, ca: Path) -> TokenSet:
    pending = service.begin_login(name)
    return service.finish_login(pending, login_with_requests(pending.url, ca))


def _make_due(service: TokenService, name: str) -> None:
    account = service.account(name)
    tokens = service.read_tokens(account)
    assert tokens is not None
    due = dataclasses.replace(tokens, access_expires_at=time.time() + 30)
    service.store(account).write(f"{name}/tokens", due.to_json())


def bench_redirect_to_stored(config: Path, server: SandboxServer) -> Result:
    """Row 2: redirect caught → tokens in the keyring, vs one POST + one keyring write by hand."""
    import keyring
    import requests

    from tdgui.core import providers

    ca = config / "sandbox" / "ca.pem"
    _add("r2", server)
    service = TokenService()

    def ours() -> float:
        pending = service.begin_login("r2")
        redirect = login_with_requests(pending.url, ca)
        start = time.perf_counter()
        service.finish_login(pending, redirect)
        return time.perf_counter() - start

    def baseline() -> float:
        pending = service.begin_login("r2")
        redirect = login_with_requests(pending.url, ca)
        code = redirect.split("code=", 1)[1].split("&", 1)[0].replace("%40", "@")
        start = time.perf_counter()
        response = requests.post(
            server.base_url + "/v1/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": pending.redirect_uri,
                "code_verifier": pending.code_verifier or "",
            },
            auth=(providers.SANDBOX_SCHWAB_CLIENT_ID, providers.SANDBOX_SCHWAB_CLIENT_SECRET),
            verify=str(ca),
            timeout=10,
        )
        response.raise_for_status()
        keyring.set_password("tdgui-bench", "r2", response.text)
        return time.perf_counter() - start

    samples = alternate(RUNS, ours=ours, baseline=baseline)
    value, spread = median_and_spread(samples["ours"])
    base, _ = median_and_spread(samples["baseline"])
    return Result(
        "2",
        "redirect caught → tokens stored (keyring)",
        "POST + keyring write",
        base,
        value,
        "s",
        "≤ 1.2×",
        value / base <= 1.2,
        spread,
    )


def bench_token(config: Path, server: SandboxServer) -> list[Result]:
    """Rows 3 and 4: the whole `tdgui token NAME` process, valid and refresh-due."""
    ca = config / "sandbox" / "ca.pem"
    _add("r3", server)
    service = TokenService()
    tokens = _login(service, "r3", ca)
    env = dict(os.environ)
    token_cmd = [PYTHON, "-m", "tdgui", "token", "r3"]
    read_one = [PYTHON, "-c", "import keyring; keyring.get_password('tdgui', 'r3/tokens')"]

    # No Qt on this path: checked with -X importtime on the real command.
    trace = subprocess.run(
        [PYTHON, "-X", "importtime", *token_cmd[1:]], env=env, capture_output=True, text=True, check=True
    )
    qt_modules = [line for line in trace.stderr.splitlines() if "PySide6" in line]

    samples = alternate(
        RUNS, ours=lambda: timed_process(token_cmd, env), baseline=lambda: timed_process(read_one, env)
    )
    value, spread = median_and_spread(samples["ours"])
    base, _ = median_and_spread(samples["baseline"])
    row3 = Result(
        "3",
        "`tdgui token` with a valid stored token",
        "python -c keyring read",
        base,
        value,
        "s",
        "≤ 1.5×; no Qt",
        value / base <= 1.5 and not qt_modules,
        spread,
        f"{len(qt_modules)} Qt modules imported",
    )

    refresh_by_hand = (
        "import keyring, requests\n"
        "keyring.get_password('tdgui', 'r3/tokens')\n"
        f"r = requests.post({server.base_url + '/v1/oauth/token'!r}, data={{'grant_type': 'refresh_token', "
        f"'refresh_token': {tokens.refresh_token!r}}}, auth=({service.account('r3').client_id!r}, "
        f"{__import__('tdgui.core.providers', fromlist=['x']).SANDBOX_SCHWAB_CLIENT_SECRET!r}), "
        f"verify={str(ca)!r}, timeout=10)\n"
        "r.raise_for_status()\n"
    )
    baseline_cmd = [PYTHON, "-c", refresh_by_hand]

    def ours_due() -> float:
        _make_due(service, "r3")
        return timed_process(token_cmd, env)

    samples = alternate(RUNS, ours=ours_due, baseline=lambda: timed_process(baseline_cmd, env))
    value, spread = median_and_spread(samples["ours"])
    base, _ = median_and_spread(samples["baseline"])
    row4 = Result(
        "4",
        "`tdgui token` when a refresh is due",
        "keyring read + refresh POST",
        base,
        value,
        "s",
        "≤ 1.5×",
        value / base <= 1.5,
        spread,
    )
    return [row3, row4]


def bench_status_scale(config: Path, server: SandboxServer) -> list[Result]:
    """Row 7: `tdgui status --json` and the scheduler's per-wake-up work for 1, 10, 100 accounts."""
    env = dict(os.environ)
    service = TokenService()
    ca = config / "sandbox" / "ca.pem"
    template = _login(service, _add("s0", server).name, ca)
    results = []
    created = 1
    per_account: list[float] = []
    for count in (1, 10, 100):
        while created < count:
            account = _add(f"s{created}", server)
            open_store("keyring", config).write(f"{account.name}/tokens", template.to_json())
            # What a login leaves beside the tokens: the status record with their times.
            shutil.copy(config / "status" / "s0.json", config / "status" / f"{account.name}.json")
            created += 1
        samples = alternate(
            max(3, RUNS // 2), ours=lambda: timed_process([PYTHON, "-m", "tdgui", "status", "--json"], env)
        )
        value, spread = median_and_spread(samples["ours"])

        def wake() -> float:
            start = time.perf_counter()
            TokenService().plans()
            return time.perf_counter() - start

        wake_med, _ = median_and_spread(alternate(3, ours=wake)["ours"])
        per_account.append(value / count)
        met = value < 1.0 if count == 100 else None
        results.append(
            Result(
                "7",
                f"`status --json`, {count} account(s)",
                "—",
                None,
                value,
                "s",
                "< 1 s at 100; linear" if count == 100 else "linear",
                met,
                spread,
                f"scheduler wake-up {wake_med * 1000:.1f} ms",
            )
        )
    return results


def run() -> list[Result]:
    with isolated_config() as config:
        server = _sandbox(config)
        try:
            return [
                bench_redirect_to_stored(config, server),
                *bench_token(config, server),
                *bench_status_scale(config, server),
            ]
        finally:
            server.stop()


if __name__ == "__main__":
    for result in run():
        print(result)

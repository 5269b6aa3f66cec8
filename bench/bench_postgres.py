"""Benchmark of `tdgui token` on a postgres account (valid token) vs a bare psycopg connect + SELECT.

    scripts/with-keyring.sh .venv/bin/python bench/bench_postgres.py

Starts the test suite's private PostgreSQL server (tests/helpers/postgres.py: needs the
Debian packages `scripts/system-deps.sh` installs), shares a sandbox account into it with the
key in a file (as on a headless server), then alternates the two processes. Both connect over
TLS (verify-full against the test CA) with SCRAM to 127.0.0.1; the baseline reads one row.
Both run from one private bytecode cache, as an installed tdgui would (see run()).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from common import PYTHON, ROOT, Result, alternate, isolated_config, median_and_spread, timed_process

sys.path.insert(0, str(ROOT / "tests"))

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
TARGET = 1.3

BASELINE = """
import sys, psycopg
with psycopg.connect(sys.argv[1], password=sys.argv[2], connect_timeout=2) as conn:
    row = conn.execute(
        "SELECT key_id, ciphertext FROM tdgui.records WHERE account = %s AND name = %s", ("demo", "tokens")
    ).fetchone()
    assert row is not None
    sys.stdout.write(bytes(row[1]).hex()[:8] + "\\n")
"""


def run() -> list[Result]:
    from helpers.postgres import start_server
    from tdgui.core.config import Account, Config, sandbox_account
    from tdgui.core.service import TokenService
    from tdgui.core.sharing import DbChoice, share
    from tdgui.sandbox import SandboxServer, sandbox_state_dir
    from tdgui.sandbox.driver import login_with_requests

    server = start_server()
    pycache = Path(tempfile.mkdtemp(prefix="tdgui-bench-pyc-"))
    try:
        with isolated_config() as config:
            sandbox = SandboxServer(sandbox_state_dir(config)).start()
            try:
                base = sandbox_account("demo", "schwab", sandbox.base_url)
                Config().add_account(Account(**{**base.to_dict(), "store": "file"}))
                service = TokenService()
                pending = service.begin_login("demo")
                service.finish_login(pending, login_with_requests(pending.url, config / "sandbox" / "ca.pem"))
                url = server.url()
                share(service, "demo", DbChoice(url=url, password=server.password, secrets="file"))
                # Bytecode as an installed tdgui has it (pip compiles on install): this box sets
                # PYTHONDONTWRITEBYTECODE, so tdgui's ~40 modules were compiled from source on
                # every run while psycopg's came from site-packages' .pyc files. Both processes
                # share one private cache, filled by an untimed first run of each.
                env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(pycache))
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                cases = {
                    "tdgui": lambda: timed_process([PYTHON, "-m", "tdgui", "token", "demo"], env),
                    "bare": lambda: timed_process([PYTHON, "-c", BASELINE, url, server.password], env),
                }
                for case in cases.values():
                    case()
                samples = alternate(RUNS, **cases)
            finally:
                sandbox.stop()
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)
        shutil.rmtree(pycache, ignore_errors=True)
    ours, spread = median_and_spread(samples["tdgui"])
    bare, bare_spread = median_and_spread(samples["bare"])
    return [
        Result(
            "9",
            "`tdgui token` on a postgres account, valid token (process wall time)",
            "python -c: psycopg connect + SELECT one row",
            bare,
            ours,
            "s",
            f"≤ {TARGET}x",
            ours / bare <= TARGET,
            spread,
            f"baseline {bare_spread}; TLS verify-full + SCRAM to 127.0.0.1 in both; bytecode cached for both",
        )
    ]


if __name__ == "__main__":
    for result in run():
        print(result, f"ratio {result.ratio:.2f}" if result.ratio else "")

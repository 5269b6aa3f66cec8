"""Bench row 10: 50 clients on 2 machines asking for a token every second for 60 s across forced expiries.

    scripts/with-keyring.sh .venv/bin/python bench/bench_pg_clients.py

Starts the test suite's private PostgreSQL (tests/helpers/postgres.py) and a rotating sandbox
whose access tokens live BENCH_PG_TTL seconds (default 20; tdgui refreshes BENCH_PG_LEAD = 5 s
before expiry), shares a sandbox account into the database from machine A and joins it on
machine B (two config dirs, sharing only the database), then runs two worker processes
(bench/pg_clients_worker.py), 25 client threads each, every thread its own TokenService. The
sandbox counts refresh requests; the baseline is a bare SELECT of the token row on an open
psycopg connection, measured by the same clients in the same seconds.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PYTHON, ROOT, Result, isolated_config

sys.path.insert(0, str(ROOT / "tests"))

CLIENTS = int(os.environ.get("BENCH_PG_CLIENTS", "50"))
SECONDS = float(os.environ.get("BENCH_PG_SECONDS", "60"))
TTL = int(os.environ.get("BENCH_PG_TTL", "20"))
LEAD = float(os.environ.get("BENCH_PG_LEAD", "5"))
JOIN_OPTIONS = ("--db-password-stdin", "--db-secrets", "file")
WORKER = Path(__file__).with_name("pg_clients_worker.py")


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def run() -> list[Result]:
    from helpers.postgres import start_server
    from tdgui.core.config import Account, Config, sandbox_account
    from tdgui.core.service import TokenService
    from tdgui.core.sharing import DbChoice, share
    from tdgui.sandbox import SandboxServer, sandbox_state_dir
    from tdgui.sandbox.driver import login_with_requests

    server = start_server()
    other = Path(tempfile.mkdtemp(prefix="tdgui-bench-b-"))
    try:
        with isolated_config() as config:
            sandbox = SandboxServer(sandbox_state_dir(config), access_ttl=TTL, rotate=True).start()
            try:
                base = sandbox_account("demo", "schwab", sandbox.base_url)
                Config().add_account(Account(**{**base.to_dict(), "store": "file"}))
                service = TokenService()
                pending = service.begin_login("demo")
                service.finish_login(pending, login_with_requests(pending.url, config / "sandbox" / "ca.pem"))
                url = server.url()
                key = share(service, "demo", DbChoice(url=url, password=server.password, secrets="file"))
                env_a = dict(os.environ, PYTHONPATH=str(ROOT))
                env_b = dict(env_a, HOME=str(other / "home"), TD_CONFIG_DIR=str(other / "config"))
                env_b["TD_LOG_DIR"] = str(other / "logs")
                joined = subprocess.run(
                    [PYTHON, "-m", "tdgui", "join", "demo", "--key-stdin", "--db", url, *JOIN_OPTIONS],
                    input=f"{key.encode()}\n{server.password}\n",
                    env=env_b,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if joined.returncode != 0:
                    raise RuntimeError(f"join failed: {joined.stderr.strip()[-300:]}")
                go = other / "go"
                procs = [
                    subprocess.Popen(
                        [
                            PYTHON,
                            str(WORKER),
                            "demo",
                            str(n),
                            str(SECONDS),
                            str(LEAD),
                            str(go),
                            url,
                            server.password,
                        ],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    for env, n in ((env_a, CLIENTS // 2), (env_b, CLIENTS - CLIENTS // 2))
                ]
                for proc in procs:
                    assert proc.stdout is not None
                    if proc.stdout.readline().strip() != "ready":
                        raise RuntimeError(f"a worker did not start: {proc.communicate()[1][-400:]}")
                sandbox.reset_stats()
                go.touch()
                outs = []
                for proc in procs:
                    out, err = proc.communicate(timeout=SECONDS + 180)
                    if proc.returncode != 0:
                        raise RuntimeError(f"a worker failed: {err.strip()[-400:]}")
                    outs.append(json.loads(out.strip().splitlines()[-1]))
                stats = sandbox.stats()
                answers = sandbox.refresh_answers()
            finally:
                sandbox.stop()
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)
        shutil.rmtree(other, ignore_errors=True)
    latency = [v for o in outs for v in o["latency"]]
    baseline = [v for o in outs for v in o["baseline"]]
    failures = [v for o in outs for v in o["failures"]]
    tokens = {v for o in outs for v in o["seen"]}
    refreshes = stats["refresh_requests"]
    processed = sorted(p for p, _ in answers)
    gaps = [b - a for a, b in itertools.pairwise(processed)]
    # One refresh per lifetime: as many as tokens after the first, and never two within one
    # lifetime's refresh window (TTL - LEAD apart, give or take a second of scheduling).
    one_per_lifetime = refreshes == len(tokens) - 1 and all(g > TTL - LEAD - 1.5 for g in gaps)
    lifetimes = SECONDS / (TTL - LEAD)
    ours, bare = p99(latency), p99(baseline)
    return [
        Result(
            "10",
            f"{CLIENTS} clients on 2 machines, a token every second for {SECONDS:g} s, access tokens "
            f"of {TTL} s (p99 latency of get_token)",
            "p99 of a bare SELECT of the token row, same clients, same seconds",
            bare,
            ours,
            "s",
            "0 failures, 1 refresh per lifetime",
            not failures and one_per_lifetime and stats["revoked_grants"] == 0,
            f"median {sorted(latency)[len(latency) // 2]:.3g} s, max {max(latency):.3g} s (n={len(latency)})",
            f"{len(failures)} failures{(' (' + failures[0] + ')') if failures else ''}; {refreshes} refresh "
            f"requests for {len(tokens)} access tokens seen (~{lifetimes:.1f} lifetimes), refreshes "
            f"{min(gaps, default=0):.1f}–{max(gaps, default=0):.1f} s apart; "
            f"{stats['revoked_grants']} grants revoked",
        )
    ]


if __name__ == "__main__":
    for result in run():
        print(result, f"ratio {result.ratio:.2f}" if result.ratio else "")

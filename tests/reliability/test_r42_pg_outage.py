"""Row 42: long-running consumers ride out a short database outage while their access token is valid.

`tdgui.session(NAME)` in one process on machine B calls the sandbox API four times a second
while the PostgreSQL server is stopped for a few seconds; core's scheduler inputs
(`service.plans()`, what the tray's timer reads) stay typed; a new CLI process, which has
nothing to ride on, says within 3 s that the database is down (exit 5, naming it and the way
out); and a consumer whose access token has expired meanwhile gets the same typed error.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.postgres import PgServer, TwoMachines
from rel_support import add_sandbox_account, log_in, start_sandbox_for_test
from tdgui.core.config import Config
from tdgui.core.errors import StoreUnavailable
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer

OUTAGE = 4.0

CONSUMER = """
import pathlib, sys, time
import tdgui
session = tdgui.session("demo")
stop = pathlib.Path(sys.argv[2])
while not stop.exists():
    try:
        print(session.get(sys.argv[1] + "/v1/userinfo", timeout=5).status_code, flush=True)
    except Exception as exc:
        print("ERR", type(exc).__name__, str(exc)[:200].replace("\\n", " "), flush=True)
    time.sleep(0.25)
"""


@pytest.fixture
def pair(
    postgres_server: PgServer, tmp_path: Path, isolated_config: Path
) -> Iterator[tuple[TwoMachines, SandboxServer]]:
    schema = postgres_server.fresh_schema()
    sandbox = start_sandbox_for_test(rotate=True)
    try:
        add_sandbox_account(sandbox, "demo", store="file")
        log_in(TokenService(), "demo")
        m = TwoMachines(postgres_server, tmp_path, isolated_config, schema)
        m.share_and_join()
        yield m, sandbox
    finally:
        sandbox.stop()
        if not postgres_server.data_dir.joinpath("postmaster.pid").exists():
            postgres_server.start()
        postgres_server.drop_schema(schema)


def test_session_and_scheduler_ride_out_a_short_outage(
    pair: tuple[TwoMachines, SandboxServer], tmp_path: Path, figure: Callable[[str], None]
) -> None:
    m, sandbox = pair
    stop = tmp_path / "stop"
    consumer = subprocess.Popen(
        [sys.executable, "-c", CONSUMER, sandbox.base_url, str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=m.env("B"),
        text=True,
    )
    desktop = TokenService(Config())  # machine A in process: what the tray's scheduler asks
    try:
        assert consumer.stdout is not None and consumer.stdout.readline().strip() == "200"
        assert not [p for p in desktop.plans() if p.error]
        desktop.get_token("demo")  # the tray's service has read the tokens once
        m.server.stop()
        down = time.monotonic()
        started = time.monotonic()
        cli = m.run("B", "token", "demo")
        cli_took = time.monotonic() - started
        plans = desktop.plans()
        served = desktop.get_token("demo")  # the desktop's own service rides on what it read
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))
        m.server.start()
        back = time.monotonic()
        time.sleep(1.0)
        after = desktop.plans()
    finally:
        stop.touch()
        out, err = consumer.communicate(timeout=30)
    lines = ["200", *out.split("\n")]
    answers = [x for x in lines if x.strip()]
    assert answers and all(x == "200" for x in answers), [x for x in answers if x != "200"][:3] or err
    assert cli.returncode == 5, cli.stderr
    assert cli_took < 3 + 1.5  # 3 s for the database, the rest is the interpreter starting
    assert f"PostgreSQL on 127.0.0.1:{m.server.port}" in cli.stderr and "server is running" in cli.stderr
    assert served.access_token == m.tokens().access_token
    assert plans and all("PostgreSQL on 127.0.0.1" in (p.error or "") for p in plans), plans
    assert not [p for p in after if p.error], after
    for secret in (served.access_token, m.server.password, m.key.encode()):
        assert secret not in cli.stderr and secret not in err
    figure(
        f"row 42: database stopped {back - down:.1f} s: tdgui.session made {len(answers)} API calls, "
        f"all 200; a new `tdgui token` exit 5 in {cli_took:.2f} s naming the database; the "
        f"scheduler's plans typed errors, normal again 1 s after the restart"
    )


def test_an_expired_access_token_during_an_outage_is_a_typed_error(
    pair: tuple[TwoMachines, SandboxServer], figure: Callable[[str], None]
) -> None:
    m, _sandbox = pair
    service = TokenService(Config())
    service.get_token("demo")
    m.expire_access_token()
    service.read_tokens(service.account("demo"))  # what it holds is now expired
    m.server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"PostgreSQL on 127\.0\.0\.1") as caught:
            service.get_token("demo")
        took = time.monotonic() - started
    finally:
        m.server.start()
    assert took < 3
    assert m.server.password not in str(caught.value)
    assert service.get_token("demo").access_token  # refreshed once the database is back
    figure(
        f"row 42: expired access token during the outage: StoreUnavailable naming the database "
        f"in {took:.2f} s"
    )

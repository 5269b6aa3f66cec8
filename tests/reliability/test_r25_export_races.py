"""Row 25 (issue 11 #8): `tdgui export --keep-synced` racing a rotating refresh, and many at once.

1. A `tdgui refresh --force` and a `tdgui export --keep-synced` subprocess start together (in
   either order, up to 0.4 s apart) while the sandbox rotates the refresh token and holds each
   refresh answer 0.5 s. Must hold: every exported file ends with the refresh token the store
   holds (the newest: the sandbox revokes the grant when a rotated-out one comes back), i.e.
   0 stale files. Before the fix the export read the tokens without the refresh lock and
   wrote them after the refresh had rotated them (2 of 90 in the issue's runs).
2. 40 `tdgui export --keep-synced` subprocesses to 40 paths, released at once. Must hold: all 40
   are registered in accounts.json (before the fix each wrote back the list it had read before
   taking the config lock: 5 of 40 were lost).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from rel_support import add_sandbox_account, log_in, scale
from tdgui.core.config import Config
from tdgui.core.service import TokenService
from tdgui.sandbox import SandboxServer

RACES = scale(24, 90)
CONCURRENT = 40
#: Seconds the sandbox holds each processed refresh answer: the window an export must not cut.
ANSWER_DELAY = 0.5

#: Imports everything first, says "ready", then waits for the go file: the exports run at once.
RACER = """
import pathlib, sys, time
import tdgui.cli, tdgui.core.service, tdgui.core.stores.file  # noqa: F401 - warm, before the race
print("ready", flush=True)
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.002)
raise SystemExit(tdgui.cli.main(sys.argv[2:]))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TD_LOG_LEVEL", None)
    env.pop("BROWSER", None)
    return env


def _tdgui(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tdgui", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(),
    )


def _export_args(path: Path) -> list[str]:
    return ["export", "r25c", "--format", "schwab-py", "--output", str(path), "--keep-synced"]


def _exported_refresh_token(path: Path) -> str:
    return str(json.loads(path.read_text())["refresh_token"])


def test_export_racing_a_rotating_refresh_never_keeps_a_rotated_token(
    rotating_sandbox: SandboxServer, tmp_path: Path, figure
) -> None:
    add_sandbox_account(rotating_sandbox, "r25", "schwab", store="file")
    service = TokenService(Config())
    log_in(service, "r25")
    rotating_sandbox.set_answer_delay(ANSWER_DELAY)
    rng = random.Random(25)
    stale = export_first = 0
    started = time.monotonic()
    for i in range(RACES):
        path = tmp_path / f"export-{i}.json"
        export = ["export", "r25", "--format", "json", "--output", str(path), "--keep-synced"]
        refresh = ["refresh", "r25", "--force"]
        first, second = (export, refresh) if i % 2 else (refresh, export)
        export_first += first is export
        procs = [_tdgui(*first)]
        time.sleep(rng.uniform(0.0, 0.4))
        procs.append(_tdgui(*second))
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode(errors="replace")
        stored = service.read_tokens(service.account("r25"))
        assert stored is not None and stored.refresh_token
        stale += _exported_refresh_token(path) != stored.refresh_token
    elapsed = time.monotonic() - started
    # Every kept file, not only the last run's: each later refresh rewrote them all.
    stored = service.read_tokens(service.account("r25"))
    assert stored is not None
    behind = sum(
        _exported_refresh_token(tmp_path / f"export-{i}.json") != stored.refresh_token for i in range(RACES)
    )
    stats = rotating_sandbox.stats()
    figure(
        f"row 25: {RACES} export --keep-synced / refresh --force races ({export_first} export "
        f"started first, 0-0.4 s apart, answer held {ANSWER_DELAY} s): files ending with a "
        f"rotated-out refresh token {stale} (at the end: {behind} of {RACES}), "
        f"grants revoked {stats['revoked_grants']} ({elapsed:.0f} s)"
    )
    assert stale == 0, f"{stale} exported files hold a refresh token the provider rotated out"
    assert behind == 0, f"{behind} kept files were not rewritten by the refreshes after them"
    assert stats["revoked_grants"] == 0


def test_concurrent_keep_synced_exports_are_all_registered(
    sandbox: SandboxServer, tmp_path: Path, figure
) -> None:
    add_sandbox_account(sandbox, "r25c", "schwab", store="file")
    log_in(TokenService(Config()), "r25c")
    go = tmp_path / "go"
    paths = [tmp_path / f"kept-{i}.json" for i in range(CONCURRENT)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(go), *_export_args(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        for path in paths
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    started = time.monotonic()
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode(errors="replace")
    elapsed = time.monotonic() - started
    registered = {e.path for e in Config().account("r25c").exports}
    figure(
        f"row 25: {CONCURRENT} concurrent `export --keep-synced` processes: "
        f"{len(registered & {str(p) for p in paths})} registered, {sum(p.exists() for p in paths)} "
        f"files written ({elapsed:.1f} s)"
    )
    assert registered == {str(p) for p in paths}

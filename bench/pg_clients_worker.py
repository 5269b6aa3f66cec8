"""One "machine" of the 50-client bench: N client threads, each its own TokenService, asking every second.

    python bench/pg_clients_worker.py NAME THREADS SECONDS LEAD GO_FILE DB_URL DB_PASSWORD

Each second each client does the baseline (a SELECT of the account's token row on its own
open psycopg connection) and then `service.get_token(NAME)`, timing both. Prints "ready",
waits for GO_FILE, then prints one JSON line: latencies, failures and SHA-256 prefixes of the
access tokens seen (never a token).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import psycopg

from tdgui.core.config import Config
from tdgui.core.service import TokenService


def client(
    name: str, seconds: float, lead: float, go: threading.Event, url: str, password: str, out: dict[str, list]
) -> None:
    service = TokenService(Config(), lead=lead)
    service.get_token(name)  # connected and warm before the clock starts, like a running bot
    conn = psycopg.connect(url, password=password, autocommit=True)
    go.wait()
    started = time.monotonic()
    tick = 0
    while True:
        at = started + tick
        if at - started >= seconds:
            break
        time.sleep(max(0.0, at - time.monotonic()))
        t0 = time.perf_counter()
        conn.execute("SELECT ciphertext FROM tdgui.records WHERE account = %s AND name = 'tokens'", (name,))
        out["baseline"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        try:
            token = service.get_token(name).access_token
            out["latency"].append(time.perf_counter() - t0)
            out["seen"].append(hashlib.sha256(token.encode()).hexdigest()[:12])
        except Exception as exc:  # every failure is counted, never hidden
            out["failures"].append(f"{type(exc).__name__}: {str(exc)[:160]}")
        tick += 1
    conn.close()


def main() -> None:
    name, threads, seconds, lead, go_file, url, password = sys.argv[1:8]
    go = threading.Event()
    results: list[dict[str, list]] = []
    workers = []
    for _ in range(int(threads)):
        out: dict[str, list] = {"baseline": [], "latency": [], "seen": [], "failures": []}
        results.append(out)
        worker = threading.Thread(
            target=client, args=(name, float(seconds), float(lead), go, url, password, out), daemon=True
        )
        worker.start()
        workers.append(worker)
    print("ready", flush=True)
    while not Path(go_file).exists():
        time.sleep(0.005)
    go.set()
    for worker in workers:
        worker.join()
    merged = {k: [v for r in results for v in r[k]] for k in ("baseline", "latency", "seen", "failures")}
    print(json.dumps(merged), flush=True)


if __name__ == "__main__":
    main()

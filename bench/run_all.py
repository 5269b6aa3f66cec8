"""`make bench`: every benchmark in turn; prints the table and writes docs/benchmarks.md.

    scripts/with-keyring.sh .venv/bin/python bench/run_all.py      (what `make bench` runs)

A benchmark that fails becomes a row saying why, and the others still run. Knobs:
BENCH_RUNS (CLI rows, default 7), BENCH_QT_RUNS (Qt and bundle rows, default 5),
BENCH_IDLE_SECONDS (row 5's window, default 120), BENCH_REUSE_DIST=1 (row 8 measures the
bundles in dist/ instead of building them).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import subprocess
import sys
import time
import traceback

from common import ROOT, Result, write_report

SUITES = [
    ("bench_cli", "2, 3, 4, 7", "script paths: redirect, token, status"),
    ("bench_qt", "1, 6, 5", "desktop app: login view, memory, idle tray"),
    ("bench_bundle", "8", "PyInstaller bundle: size and start-up"),
    ("bench_postgres", "9", "postgres account: `tdgui token` vs bare psycopg"),
    ("bench_pg_clients", "10", "postgres: 50 clients on 2 machines across forced expiries"),
]


def _row_key(result: Result) -> tuple[int, str]:
    match = re.match(r"\d+", result.row)
    return (int(match.group()) if match else 99, result.row)


def _line(r: Result) -> str:
    value = "failed" if math.isnan(r.value) else f"{r.value:.3g} {r.unit}"
    base = "" if r.baseline_value is None else f" vs {r.baseline_value:.3g} {r.unit} ({r.baseline})"
    ratio = "" if r.ratio is None or math.isnan(r.ratio) else f" = {r.ratio:.2f}x"
    met = {True: "met", False: "NOT MET", None: "info"}[r.met]
    return f"{r.row:>3}  {r.what}: {value}{base}{ratio}  [{r.target}: {met}]  {r.spread}"


def main() -> int:
    started = time.monotonic()
    print(f"run_all: load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    # tdgui's .pyc files, as a pip install has them: where PYTHONDONTWRITEBYTECODE=1 is set,
    # every child would otherwise compile tdgui from source (see bench_qt.compile_bytecode).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "tdgui")], check=False)
    results: list[Result] = []
    for module_name, rows, what in SUITES:
        t0 = time.monotonic()
        try:
            module = importlib.import_module(module_name)
            got = list(module.run())
        except Exception as exc:  # a broken benchmark is a row with the reason, not an abort
            traceback.print_exc()
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            got = [Result(rows, what, "—", None, float("nan"), "", "—", False, "", f"failed: {reason}")]
        print(f"run_all: {module_name} ({what}) took {time.monotonic() - t0:.0f} s", flush=True)
        for result in got:
            print("  " + _line(result), flush=True)
        results.extend(got)
    results.sort(key=_row_key)
    report = ROOT / "docs" / "benchmarks.md"
    write_report(results, report)
    print()
    print("\n".join(_line(r) for r in results))
    print(
        f"\nrun_all: {len(results)} rows in {time.monotonic() - started:.0f} s "
        f"(load average now {os.getloadavg()[0]:.2f}); written to {report.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

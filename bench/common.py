"""Benchmark helpers: alternate baseline and subject in one run, report median and spread."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Result:
    row: str
    what: str
    baseline: str
    baseline_value: float | None
    value: float
    unit: str
    target: str
    met: bool | None
    spread: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        return self.value / self.baseline_value


def median_and_spread(samples: list[float]) -> tuple[float, str]:
    """Median, and the spread as min–max around it (no hidden outliers)."""
    med = statistics.median(samples)
    return med, f"{min(samples):.3g}–{max(samples):.3g} (n={len(samples)})"


def alternate(runs: int, **cases: Callable[[], float]) -> dict[str, list[float]]:
    """Run each case `runs` times, alternating the order so drift hits both alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(runs):
        order = names if i % 2 == 0 else list(reversed(names))
        for name in order:
            samples[name].append(cases[name]())
    return samples


def timed_process(argv: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    """Wall seconds for one whole process (start to exit); fails loudly on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return elapsed


@contextmanager
def isolated_config() -> Iterator[Path]:
    """A throwaway TD_CONFIG_DIR for this process and its children."""
    old = os.environ.get("TD_CONFIG_DIR")
    with tempfile.TemporaryDirectory(prefix="tdgui-bench-") as tmp:
        os.environ["TD_CONFIG_DIR"] = tmp
        os.environ["TD_LOG_DIR"] = str(Path(tmp) / "logs")
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("TD_CONFIG_DIR", None)
            else:
                os.environ["TD_CONFIG_DIR"] = old


def machine_facts() -> list[str]:
    facts = [f"Python {platform.python_version()} on {platform.platform()}", f"{os.cpu_count()} cores"]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts.append(line.split(":", 1)[1].strip())
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        facts.append(f"{int(mem) // 1024 // 1024} GiB memory")
    except OSError:
        pass
    try:
        import PySide6
        from PySide6 import QtCore

        facts.append(f"PySide6 {PySide6.__version__}, Qt {QtCore.qVersion()}")
    except ImportError:
        pass
    return facts


def write_report(results: list[Result], path: Path) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (bench/run_all.py). Each figure is the median of several runs; "
        "baseline and tdgui alternate within one run, so both see the same machine load. "
        "Figures, not pass/fail gates.",
        "",
        "Machine: " + "; ".join(machine_facts()),
        "",
        "| # | what | baseline | baseline | tdgui | ratio | target | met | spread (tdgui) | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = "—" if r.baseline_value is None else f"{r.baseline_value:.3g} {r.unit}"
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        met = {True: "yes", False: "**no**", None: "—"}[r.met]
        lines.append(
            f"| {r.row} | {r.what} | {r.baseline} | {base} | {r.value:.3g} {r.unit} | {ratio} | "
            f"{r.target} | {met} | {r.spread} | {r.note} |"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else ""
    marker = "\n## Notes"
    notes = existing[existing.find(marker) :] if marker in existing else ""
    path.write_text("\n".join(lines) + "\n" + notes)

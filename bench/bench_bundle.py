"""Row 8: the PyInstaller bundle's size and its start-up, against a bare QWebEngineView bundle.

Builds dist/tdgui (build.spec) and dist/bare_webengine (bench/bare_webengine.spec) with
PyInstaller into a temporary --distpath/--workpath, so the repository's dist/ is left alone;
with BENCH_REUSE_DIST=1 it uses the bundles already in dist/ (`make package` /
`scripts/package.sh --bare`) instead.

Start-up is timed as a whole `tdgui --self-test` process (offscreen): start, main window,
login window on a private sandbox, login, refresh, exit; bundled `dist/tdgui/tdgui` against
the unbundled `python -m tdgui`. The bare app, bundled against unbundled (start → about:blank
loaded), shows what the bundle format alone costs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import PYTHON, ROOT, Result, alternate, median_and_spread, timed_process

RUNS = int(os.environ.get("BENCH_QT_RUNS", "5"))
REUSE = os.environ.get("BENCH_REUSE_DIST") == "1"
QUIET_QT = "qt.webenginecontext.debug=false;qt.qpa.*=false;qt.rhi.*=false"


def build(spec: str, dist: Path, work: Path) -> float:
    """One PyInstaller build; returns its wall seconds."""
    argv = [PYTHON, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN"]
    argv += ["--distpath", str(dist), "--workpath", str(work), str(ROOT / spec)]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pyinstaller {spec} exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return time.monotonic() - started


def du_bytes(folder: Path) -> int:
    """`du -sb`: apparent size of everything in the folder, as scripts/package.sh reports it."""
    out = subprocess.run(["du", "-sb", str(folder)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def _component(rel: Path) -> str:
    """The package or library a bundled file belongs to (_internal/<top>/..., or the file)."""
    if rel.parts == ("tdgui",):
        return "executable (its archive holds the Python modules)"
    parts = rel.parts[1:] if rel.parts and rel.parts[0] == "_internal" else rel.parts
    if not parts:
        return str(rel)
    top = parts[0]
    if len(parts) == 1:
        top = re.sub(r"\.so(\.[0-9]+)*$", ".so", top)
    return re.sub(r"-[0-9][^/]*\.dist-info$", ".dist-info", top)


def extra_by_component(ours: Path, base: Path) -> list[tuple[str, int]]:
    """What tdgui's bundle holds beyond the bare one, by component, largest first."""
    sizes: dict[str, int] = defaultdict(int)
    base_files = {p.relative_to(base).as_posix(): p.lstat().st_size for p in base.rglob("*") if p.is_file()}
    for path in ours.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(ours)
        key = "bare_webengine" if rel.as_posix() == "tdgui" else rel.as_posix()  # the executables
        extra = path.lstat().st_size - base_files.get(key, 0)
        if extra > 0:
            sizes[_component(rel)] += extra
    return sorted(sizes.items(), key=lambda kv: -kv[1])


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        path = home / var.lower()
        path.mkdir(exist_ok=True)
        env[var] = str(path)
    env.update(QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1", QT_LOGGING_RULES=QUIET_QT)
    for var in ("TD_CONFIG_DIR", "TD_LOG_DIR", "TD_SANDBOX_URL"):  # the self-test makes its own
        env.pop(var, None)
    return env


def measure(dist: Path, build_note: str) -> list[Result]:
    ours_dir, bare_dir = dist / "tdgui", dist / "bare_webengine"
    for folder in (ours_dir, bare_dir):
        if not (folder / folder.name).is_file():
            raise RuntimeError(f"no bundle at {folder} (build it with scripts/package.sh --bare)")
    size, base_size = du_bytes(ours_dir), du_bytes(bare_dir)
    extra = extra_by_component(ours_dir, bare_dir)
    extra_text = ", ".join(f"{name} {n / 1e6:.1f}" for name, n in extra[:6])
    size_row = Result(
        "8",
        "bundle size (du -sb)",
        "bare QWebEngineView bundle",
        base_size / 1e6,
        size / 1e6,
        "MB",
        "≤ 1.1×",
        size <= 1.1 * base_size,
        "",
        f"{build_note}; tdgui's extra {(size - base_size) / 1e6:.1f} MB, largest parts (MB): {extra_text}",
    )

    with tempfile.TemporaryDirectory(prefix="tdgui-bench-bundle-") as tmp:
        env = _env(Path(tmp))
        bundled = [str(ours_dir / "tdgui"), "--self-test"]
        unbundled = [PYTHON, "-m", "tdgui", "--self-test"]
        # Warm-up: both read ~200 MB of libraries; the page cache must not favour the second.
        timed_process(bundled, env), timed_process(unbundled, env)
        samples = alternate(
            RUNS, ours=lambda: timed_process(bundled, env), baseline=lambda: timed_process(unbundled, env)
        )
        value, spread = median_and_spread(samples["ours"])
        base, base_spread = median_and_spread(samples["baseline"])
        start_row = Result(
            "8",
            "bundled `tdgui --self-test`, whole process (offscreen)",
            "unbundled `python -m tdgui --self-test`",
            base,
            value,
            "s",
            "≤ 1.2×",
            value <= 1.2 * base,
            spread,
            f"baseline spread {base_spread}; the self-test starts the app, shows the main window, logs "
            "in to a private sandbox in the login window, refreshes once and exits",
        )

        def load_seconds(argv: list[str]) -> float:
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
            return float(proc.stdout.strip().splitlines()[-1])

        bare_bundled = [str(bare_dir / "bare_webengine"), "about:blank", "--quit-after-load"]
        bare_app = str(ROOT / "bench" / "bare_webengine_app.py")
        bare_plain = [PYTHON, bare_app, "about:blank", "--quit-after-load"]
        load_seconds(bare_bundled), load_seconds(bare_plain)
        bare = alternate(
            RUNS, ours=lambda: load_seconds(bare_bundled), baseline=lambda: load_seconds(bare_plain)
        )
        b_value, b_spread = median_and_spread(bare["ours"])
        b_base, _ = median_and_spread(bare["baseline"])
        bare_row = Result(
            "8",
            "bare app bundled: start → about:blank loaded",
            "the same app unbundled",
            b_base,
            b_value,
            "s",
            "—",
            None,
            b_spread,
            "what the one-folder bundle format costs by itself (bootloader, archive unpacking)",
        )
    return [size_row, start_row, bare_row]


def run() -> list[Result]:
    from bench_qt import compile_bytecode

    compile_bytecode()  # the unbundled app reads .pyc files, as an installed copy does
    if REUSE:
        return measure(ROOT / "dist", "bundles reused from dist/ (BENCH_REUSE_DIST=1)")
    with tempfile.TemporaryDirectory(prefix="tdgui-bench-pyi-") as tmp:
        dist, work = Path(tmp) / "dist", Path(tmp) / "work"
        bare_s = build("bench/bare_webengine.spec", dist, work)
        ours_s = build("build.spec", dist, work)
        return measure(dist, f"built now with PyInstaller: tdgui {ours_s:.0f} s, bare {bare_s:.0f} s")


if __name__ == "__main__":
    for result in run():
        print(result)
    sys.exit(0)

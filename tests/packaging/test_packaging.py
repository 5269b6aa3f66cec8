"""The PyInstaller bundles: build.spec (dist/tdgui) and its baseline bench/bare_webengine.spec.

Both are built once per session into a temporary dist/work dir (about 25 s each here), then
checked: what must not ship (build-machine GTK, QML/Quick Python modules), size against the
bare QWebEngineView app, and that the frozen executables run offscreen.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import tdgui

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(900)  # the first test also pays for the two builds

# Libraries that belong to the user's desktop, not to the bundle (build.spec drops them).
DESKTOP_LIBRARY = re.compile(
    r"^lib(gtk-|gdk-|gdk_pixbuf|gtk-x11|gdk-x11|atk-|atk-bridge|atspi|pango|cairo|epoxy)", re.IGNORECASE
)


@dataclass
class Bundle:
    name: str
    folder: Path
    executable: Path
    size: int
    build_seconds: float
    log: str


def _build(spec: str, name: str, tmp: Path) -> Bundle:
    if shutil.which("objdump") is None:
        pytest.fail("PyInstaller needs objdump: apt-get install binutils (scripts/system-deps.sh)")
    dist, work = tmp / "dist", tmp / "work"
    started = time.monotonic()
    argv = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN"]
    argv += ["--distpath", str(dist), "--workpath", str(work), str(ROOT / spec)]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    seconds = time.monotonic() - started
    log = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"pyinstaller {spec} failed ({result.returncode}):\n{log[-6000:]}")
    folder = dist / name
    size = sum(p.lstat().st_size for p in folder.rglob("*"))
    print(f"\n{spec}: {folder} {size / 1e6:.1f} MB, built in {seconds:.1f} s")
    return Bundle(name, folder, folder / name, size, seconds, log)


@pytest.fixture(scope="module")
def bare_bundle(tmp_path_factory) -> Bundle:
    return _build("bench/bare_webengine.spec", "bare_webengine", tmp_path_factory.mktemp("pyi-bare"))


@pytest.fixture(scope="module")
def tdgui_bundle(tmp_path_factory) -> Bundle:
    return _build("build.spec", "tdgui", tmp_path_factory.mktemp("pyi-tdgui"))


@pytest.fixture(params=["bare_bundle", "tdgui_bundle"])
def bundle(request) -> Bundle:
    """Each bundle in turn (built on first use, so a broken app build leaves the baseline's tests)."""
    return request.getfixturevalue(request.param)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() or p.is_symlink()]


def _is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def _needed(path: Path) -> list[str]:
    """DT_NEEDED entries of an ELF file (objdump is there: PyInstaller requires it)."""
    out = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True).stdout
    return [line.split()[1] for line in out.splitlines() if line.split()[:1] == ["NEEDED"]]


def _offscreen_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        path = tmp_path / var.lower()
        path.mkdir(exist_ok=True)
        env[var] = str(path)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["QTWEBENGINE_DISABLE_SANDBOX"] = "1"  # CI runs as root; never set in the shipped app
    return env


# --- what must not ship ----------------------------------------------------------------------


@pytest.mark.slow
def test_no_desktop_toolkit_libraries(bundle):
    files = _files(bundle.folder)
    shipped = sorted(str(p.relative_to(bundle.folder)) for p in files if DESKTOP_LIBRARY.match(p.name))
    assert shipped == [], f"build-machine GUI libraries in {bundle.name}: {shipped}"
    assert not [p for p in files if p.name == "libqgtk3.so"], "the gtk3 platform theme ships"
    # ... and nothing that does ship needs one of them (the filter broke nothing).
    needing = {
        f"{p.relative_to(bundle.folder)} -> {lib}"
        for p in files
        if _is_elf(p)
        for lib in _needed(p)
        if DESKTOP_LIBRARY.match(lib)
    }
    assert not needing, sorted(needing)


@pytest.mark.slow
def test_every_linked_library_ships_or_is_left_to_the_host(bundle):
    """What a shipped binary links is in the bundle, or is a library PyInstaller always takes
    from the host (glibc, GL/EGL, libxcb, wayland, ...): the filters removed nothing needed."""
    from PyInstaller.depend import dylib

    files = _files(bundle.folder)
    names = {p.name for p in files}
    unmet = {
        f"{p.relative_to(bundle.folder)} -> {lib}"
        for p in files
        if _is_elf(p)
        for lib in _needed(p)
        if lib not in names and dylib.include_library(lib) and not lib.startswith("ld-linux")
    }
    assert not unmet, sorted(unmet)


@pytest.mark.slow
def test_no_qml_or_quick_modules(bundle):
    files = _files(bundle.folder)
    internal = bundle.folder / "_internal"
    # PySide6's Python modules for QML/Quick/Quick3D/... and the QML import tree stay out.
    py_modules = sorted(
        p.name for p in (internal / "PySide6").glob("Qt*.so") if re.match(r"Qt(Qml|Quick)", p.name)
    )
    assert py_modules == []
    assert not (internal / "PySide6" / "Qt" / "qml").exists()
    assert not [p for p in files if "VirtualKeyboard" in p.name]
    # libQt6Qml*/libQt6Quick* themselves may ship only because a shipped library links them
    # (libQt6WebEngineCore links Quick and Qml; readelf -d).
    needed = {lib for p in files if _is_elf(p) for lib in _needed(p)}
    qml_libs = {p.name for p in files if re.match(r"libQt6(Qml|Quick)", p.name)}
    assert qml_libs <= needed, f"unused QML/Quick libraries: {sorted(qml_libs - needed)}"


@pytest.mark.slow
def test_webengine_is_complete_and_trimmed(bundle):
    qt = bundle.folder / "_internal" / "PySide6" / "Qt"
    assert (qt / "libexec" / "QtWebEngineProcess").is_file()
    for name in ("icudtl.dat", "qtwebengine_resources.pak", "v8_context_snapshot.bin"):
        assert (qt / "resources" / name).is_file(), name
    locales = sorted(p.name for p in (qt / "translations" / "qtwebengine_locales").iterdir())
    assert locales == ["en-US.pak"]
    assert not list((qt / "translations").glob("*.qm"))


@pytest.mark.slow
def test_no_dangling_symlinks(bundle):
    dangling = [str(p) for p in bundle.folder.rglob("*") if p.is_symlink() and not p.exists()]
    assert dangling == []


@pytest.mark.slow
def test_tdgui_bundle_carries_its_resources(tdgui_bundle):
    resources = tdgui_bundle.folder / "_internal" / "tdgui" / "resources"
    for name in ("tdgui.svg", "tray-ok.svg", "tray-warn.svg", "tray-error.svg", "tdgui.desktop"):
        assert (resources / name).is_file(), name
    assert (resources / "icons" / "hicolor" / "256x256" / "apps" / "tdgui.png").is_file()


@pytest.mark.slow
def test_tdgui_is_at_most_110_percent_of_the_bare_webengine_app(tdgui_bundle, bare_bundle):
    ratio = tdgui_bundle.size / bare_bundle.size
    print(
        f"\ndist/tdgui {tdgui_bundle.size / 1e6:.1f} MB (built in {tdgui_bundle.build_seconds:.1f} s), "
        f"dist/bare_webengine {bare_bundle.size / 1e6:.1f} MB "
        f"(built in {bare_bundle.build_seconds:.1f} s): {ratio:.1%}"
    )
    assert ratio <= 1.10


# --- the frozen executables run --------------------------------------------------------------


@pytest.mark.slow
def test_bare_bundle_starts_offscreen(bare_bundle, tmp_path):
    result = subprocess.run(
        [str(bare_bundle.executable), "about:blank", "--quit-after-load"],
        capture_output=True,
        text=True,
        env=_offscreen_env(tmp_path),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seconds = float(result.stdout.strip())
    print(f"\nbare_webengine bundle: about:blank loaded {seconds:.3f} s after process start")
    assert 0 < seconds < 60


@pytest.mark.slow
def test_tdgui_bundle_prints_its_version(tdgui_bundle, tmp_path):
    result = subprocess.run(
        [str(tdgui_bundle.executable), "--version"],
        capture_output=True,
        text=True,
        env=_offscreen_env(tmp_path),
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"tdgui {tdgui.__version__}"


@pytest.mark.slow
def test_tdgui_bundle_runs_cli_subcommands(tdgui_bundle, tmp_path):
    """The same executable is the CLI: subcommands print to the terminal."""
    result = subprocess.run(
        [str(tdgui_bundle.executable), "token", "--help"],
        capture_output=True,
        text=True,
        env=_offscreen_env(tmp_path),
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage: tdgui token" in result.stdout


@pytest.mark.slow
def test_tdgui_bundle_self_test_offscreen(tdgui_bundle, tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        [str(tdgui_bundle.executable), "--self-test"],
        capture_output=True,
        text=True,
        env=_offscreen_env(tmp_path),
        timeout=240,
    )
    print(f"\ntdgui --self-test (bundle): exit {result.returncode} in {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]

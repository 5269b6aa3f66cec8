"""Desktop integration: resources/ (icons, .desktop files, AppStream) and scripts/install-desktop.sh.

desktop-file-validate (Debian: desktop-file-utils, installed by scripts/system-deps.sh) is
required: a missing validator fails these tests instead of skipping them.
"""

from __future__ import annotations

import configparser
import os
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import tdgui

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "resources"
INSTALL = ROOT / "scripts" / "install-desktop.sh"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
METAINFO = "io.github.tdgui.tdgui.metainfo.xml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- helpers ---------------------------------------------------------------------------------


def validator() -> str:
    path = shutil.which("desktop-file-validate")
    if path is None:
        pytest.fail(
            "desktop-file-validate is not installed: `apt-get install desktop-file-utils` "
            "(scripts/system-deps.sh installs it; `make test` runs that)"
        )
    return path


def assert_valid_desktop_file(path: Path) -> None:
    """desktop-file-validate accepts it: exit 0, no errors, no warnings (hints are allowed)."""
    result = subprocess.run([validator(), str(path)], capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert ": error:" not in output, output
    assert ": warning:" not in output, output


def read_desktop_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


def exec_argv(value: str) -> list[str]:
    """Decode an Exec value as a launcher does (Desktop Entry spec, "The Exec key")."""
    # 1. String-value escapes.
    unescaped, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            unescaped.append({"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(value[i + 1], value[i + 1]))
            i += 2
            continue
        unescaped.append(c)
        i += 1
    text = "".join(unescaped)
    # 2. Arguments: whitespace-separated, double quotes group, \ escapes " ` $ \ inside them.
    argv: list[str] = []
    current: list[str] | None = None
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
                current.append(text[i + 1])  # type: ignore[union-attr]
                i += 2
                continue
            if c == '"':
                quoted = False
            else:
                current.append(c)  # type: ignore[union-attr]
        elif c in " \t":
            if current is not None:
                argv.append("".join(current))
                current = None
        elif c == '"':
            quoted = True
            current = current if current is not None else []
        else:
            current = current if current is not None else []
            current.append(c)
        i += 1
    assert not quoted, f"unterminated quote in Exec={value!r}"
    if current is not None:
        argv.append("".join(current))
    # 3. %% is a literal %.
    return [arg.replace("%%", "%") for arg in argv]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG format puts first."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def png_is_rgba(data: bytes) -> bool:
    return data[25] == 6  # IHDR colour type 6: truecolour with alpha


def run_install(*args: str, data_home: Path, home: Path, path: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_") and k not in ("HOME",)}
    env.update(HOME=str(home), XDG_DATA_HOME=str(data_home))
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, env=env, timeout=60)


def installed_files(data_home: Path) -> list[Path]:
    return [
        data_home / "applications" / "tdgui.desktop",
        data_home / "metainfo" / METAINFO,
        data_home / "icons" / "hicolor" / "scalable" / "apps" / "tdgui.svg",
        *(data_home / "icons" / "hicolor" / f"{n}x{n}" / "apps" / "tdgui.png" for n in SIZES),
    ]


# --- the resources themselves ----------------------------------------------------------------


def test_desktop_file_is_valid_and_complete():
    path = RESOURCES / "tdgui.desktop"
    assert_valid_desktop_file(path)
    entry = read_desktop_entry(path)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "tdgui"
    assert entry["GenericName"] == "Broker API token manager"
    assert entry["Exec"] == "tdgui"
    assert entry["Icon"] == "tdgui"
    assert entry["Terminal"] == "false"
    assert entry["StartupWMClass"] == "tdgui"
    assert {"Office", "Finance"} <= set(entry["Categories"].split(";"))
    assert "Schwab" in entry["Keywords"].split(";")


def test_autostart_template_is_valid():
    path = RESOURCES / "tdgui-autostart.desktop"
    assert_valid_desktop_file(path)
    entry = read_desktop_entry(path)
    assert exec_argv(entry["Exec"]) == ["tdgui", "--minimized"]
    assert entry["X-GNOME-Autostart-enabled"] == "true"
    assert entry["Icon"] == "tdgui"


def test_metainfo_matches_the_desktop_file_and_version():
    root = ET.parse(RESOURCES / METAINFO).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == "io.github.tdgui.tdgui"
    assert root.findtext("launchable[@type='desktop-id']") == "tdgui.desktop"
    assert root.findtext("icon[@type='stock']") == "tdgui"
    assert root.findtext("provides/binary") == "tdgui"
    versions = [r.get("version") for r in root.iter("release")]
    assert tdgui.__version__ in versions, "add a <release> for the new version to the metainfo"
    appstreamcli = shutil.which("appstreamcli")
    if appstreamcli:  # optional tool: validate when it is there
        result = subprocess.run(
            [appstreamcli, "validate", "--no-net", str(RESOURCES / METAINFO)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_icon_pngs_have_their_nominal_sizes():
    for n in SIZES:
        data = (RESOURCES / "icons" / "hicolor" / f"{n}x{n}" / "apps" / "tdgui.png").read_bytes()
        assert png_size(data) == (n, n)
        assert png_is_rgba(data)
    for state in ("ok", "warn", "error"):
        assert png_size((RESOURCES / f"tray-{state}.png").read_bytes()) == (64, 64)


def test_svgs_are_well_formed():
    for name in ("tdgui.svg", "tray-ok.svg", "tray-warn.svg", "tray-error.svg"):
        root = ET.parse(RESOURCES / name).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg", name
        assert root.get("viewBox"), name


def test_windows_icon_holds_png_images_16_to_256():
    data = (RESOURCES / "tdgui.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind) == (0, 1)
    sizes = []
    for i in range(count):
        width, height, _, _, planes, bits, length, offset = struct.unpack(
            "<BBBBHHII", data[6 + 16 * i : 22 + 16 * i]
        )
        nominal = width or 256
        assert (width, height, planes, bits) == (width, width, 1, 32)
        assert png_size(data[offset : offset + length]) == (nominal, nominal)
        sizes.append(nominal)
    assert sorted(sizes) == [16, 24, 32, 48, 64, 128, 256]


def test_macos_icon_is_an_icns_of_pngs():
    data = (RESOURCES / "tdgui.icns").read_bytes()
    assert data[:4] == b"icns"
    assert struct.unpack(">I", data[4:8])[0] == len(data)
    kinds, offset = {}, 8
    while offset < len(data):
        kind, length = struct.unpack(">4sI", data[offset : offset + 8])
        kinds[kind] = png_size(data[offset + 8 : offset + length])[0]
        offset += length
    assert kinds[b"ic10"] == 1024 and kinds[b"ic07"] == 128 and kinds[b"icp4"] == 16


# --- scripts/install-desktop.sh -------------------------------------------------------------


def test_install_then_uninstall(tmp_path):
    data_home, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    result = run_install("/some/fake/tdgui", data_home=data_home, home=home)
    assert result.returncode == 0, result.stdout + result.stderr

    for path in installed_files(data_home):
        assert path.is_file(), f"{path} was not installed"
    desktop = data_home / "applications" / "tdgui.desktop"
    assert_valid_desktop_file(desktop)
    entry = read_desktop_entry(desktop)
    assert exec_argv(entry["Exec"]) == ["/some/fake/tdgui"]
    # Everything but Exec is the repository's file, unchanged.
    original = read_desktop_entry(RESOURCES / "tdgui.desktop")
    assert {k: v for k, v in entry.items() if k != "Exec"} == {
        k: v for k, v in original.items() if k != "Exec"
    }
    for n in SIZES:
        icon = data_home / "icons" / "hicolor" / f"{n}x{n}" / "apps" / "tdgui.png"
        assert png_size(icon.read_bytes()) == (n, n)
    assert (data_home / "metainfo" / METAINFO).read_bytes() == (RESOURCES / METAINFO).read_bytes()
    assert not (home / ".local").exists(), "XDG_DATA_HOME was not honoured"

    # Installing again (an update) works and still points at the given launcher.
    again = run_install("/other/tdgui", data_home=data_home, home=home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert exec_argv(read_desktop_entry(desktop)["Exec"]) == ["/other/tdgui"]

    result = run_install("--uninstall", data_home=data_home, home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in installed_files(data_home):
        assert not path.exists(), f"{path} was not removed"
    leftovers = [p for p in data_home.rglob("*") if p.is_file() and "tdgui" in p.name.lower()]
    assert leftovers == []


def test_exec_quotes_awkward_launcher_paths(tmp_path):
    data_home, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    launcher = str(tmp_path / 'My Apps/td "gui" $HOME 100% \\ `x`/tdgui')
    result = run_install(launcher, data_home=data_home, home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    desktop = data_home / "applications" / "tdgui.desktop"
    assert_valid_desktop_file(desktop)
    assert exec_argv(read_desktop_entry(desktop)["Exec"]) == [launcher]


def test_relative_launcher_becomes_absolute(tmp_path):
    data_home, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(data_home))
    result = subprocess.run(
        ["bash", str(INSTALL), "dist/tdgui/tdgui"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    entry = read_desktop_entry(data_home / "applications" / "tdgui.desktop")
    assert exec_argv(entry["Exec"]) == [str(tmp_path / "dist/tdgui/tdgui")]


def test_default_launcher_is_tdgui_on_path(tmp_path):
    data_home, home, bin_dir = tmp_path / "data", tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    fake = bin_dir / "tdgui"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    result = run_install(data_home=data_home, home=home, path=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 0, result.stdout + result.stderr
    entry = read_desktop_entry(data_home / "applications" / "tdgui.desktop")
    assert exec_argv(entry["Exec"]) == [str(fake)]


def test_default_data_home_is_dot_local_share(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env["HOME"] = str(home)
    result = subprocess.run(
        ["bash", str(INSTALL), "/some/fake/tdgui"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (home / ".local/share/applications/tdgui.desktop").is_file()
    assert (home / ".local/share/icons/hicolor/48x48/apps/tdgui.png").is_file()


def test_works_without_the_optional_cache_tools(tmp_path):
    """No update-desktop-database / gtk-update-icon-cache on PATH: still installs, exit 0."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    needed = (
        "bash", "dirname", "mkdir", "mktemp", "awk", "chmod", "mv", "install", "rm", "rmdir",
        "desktop-file-validate",
    )  # fmt: skip
    for tool in needed:
        found = shutil.which(tool)
        assert found, f"{tool} is missing on this machine"
        (bin_dir / tool).symlink_to(found)
    data_home, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    result = run_install("/some/fake/tdgui", data_home=data_home, home=home, path=str(bin_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (data_home / "applications" / "tdgui.desktop").is_file()
    assert not (data_home / "icons" / "hicolor" / "icon-theme.cache").exists()
    result = run_install("--uninstall", data_home=data_home, home=home, path=str(bin_dir))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_option_is_an_error(tmp_path):
    result = run_install("--frobnicate", data_home=tmp_path / "data", home=tmp_path)
    assert result.returncode != 0
    assert "unknown option" in result.stderr

"""The wheel ships the top-level resources/ as tdgui/resources/ and names every package (issue 14).

The slow end-to-end check (an installed wheel finds its SVG icons) is in test_fresh_venv.py.
"""

from __future__ import annotations

from pathlib import Path

import tomllib

from tdgui.qt import icons

ROOT = Path(__file__).resolve().parents[2]


def _setuptools() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_the_explicit_package_list_names_every_tdgui_package() -> None:
    # Listed by hand because a package-dir mapping is not discovered: a new subpackage missing
    # from the list would be missing from the wheel.
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "tdgui").rglob("__init__.py")
    }
    assert set(_setuptools()["packages"]) == on_disk | {"tdgui.resources"}


def test_resources_are_mapped_into_the_package_with_the_svg_icons() -> None:
    config = _setuptools()
    assert config["package-dir"] == {"tdgui.resources": "resources"}
    patterns = config["package-data"]["tdgui.resources"]
    for svg in ("tdgui.svg", "tray-ok.svg", "tray-warn.svg", "tray-error.svg"):
        assert (ROOT / "resources" / svg).is_file()
        assert "*.svg" in patterns


def test_a_source_checkout_finds_the_top_level_resources() -> None:
    assert icons.resources_dir() == ROOT / "resources"
    assert icons.resource("tray-ok.svg") == ROOT / "resources" / "tray-ok.svg"

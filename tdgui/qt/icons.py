"""Icons: the SVG master (a PNG only where no SVG is), otherwise painted fallbacks (never a missing icon)."""

from __future__ import annotations

import logging
import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

import tdgui

log = logging.getLogger(__name__)

LEVEL_COLOURS = {"ok": "#2e7d32", "warn": "#f9a825", "error": "#c62828", "none": "#9e9e9e"}


def resources_dir() -> Path | None:
    """The app's resources/: where a wheel or the PyInstaller bundle put it, else the checkout's.

    - installed wheel: <site-packages>/tdgui/resources/ (pyproject.toml maps the top-level
      resources/ to the data package tdgui.resources);
    - PyInstaller bundle: <sys._MEIPASS>/tdgui/resources/ (build.spec's DATAS), which is also
      beside the frozen package;
    - source checkout (and the editable install): <repo>/resources/, beside the package.
    A folder counts only if it holds the app icon: site-packages/resources/ may belong to
    another distribution.
    """
    here = Path(tdgui.__file__).resolve().parent
    candidates = [here / "resources"]
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates += [Path(bundle) / "tdgui" / "resources", Path(bundle) / "resources"]
    candidates.append(here.parent / "resources")
    for candidate in candidates:
        if (candidate / "tdgui.svg").is_file():
            return candidate
    log.warning("no resources folder with tdgui.svg in %s: using painted icons", candidates)
    return None


def resource(name: str) -> Path | None:
    base = resources_dir()
    if base is None:
        return None
    path = base / name
    return path if path.is_file() else None


def _svg_icon(path: Path) -> QIcon | None:
    """An icon that renders the SVG at whatever size and device pixel ratio is asked (200 % scale).

    QIcon(path) does that through Qt's SVG icon engine plugin; where that plugin is missing (a
    trimmed bundle) the icon is made of QSvgRenderer renders at the usual sizes instead of a
    blown-up 16/32 px bitmap.
    """
    icon = QIcon(str(path))
    if not icon.isNull() and not icon.pixmap(32, 32).isNull():
        return icon
    return rendered_svg_icon(path)


def rendered_svg_icon(path: Path) -> QIcon | None:
    """The SVG rendered with QSvgRenderer at the usual icon sizes, up to 512 px (no plugin needed)."""
    renderer = QSvgRenderer(str(path))
    if not renderer.isValid():
        return None
    icon = QIcon()
    for size in (16, 22, 24, 32, 44, 48, 64, 96, 128, 256, 512):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        icon.addPixmap(pixmap)
    return icon


def _file_icon(*names: str) -> QIcon | None:
    for name in names:
        path = resource(name)
        if path is None:
            continue
        if path.suffix == ".svg":
            found = _svg_icon(path)
            if found is not None:
                return found
            continue
        icon = QIcon(str(path))
        if not icon.isNull() and not icon.pixmap(32, 32).isNull():
            return icon
    return None


def dot_icon(colour: str, size: int = 64) -> QIcon:
    """A painted filled circle: the fallback tray icon and the per-account state marker."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(colour))
    painter.setPen(QColor("#333333"))
    margin = size // 8
    painter.drawEllipse(margin, margin, size - 2 * margin, size - 2 * margin)
    painter.end()
    return QIcon(pixmap)


@cache
def tray_icon(level: str) -> QIcon:
    """The tray icon for 'ok', 'warn' or 'error'."""
    found = _file_icon(f"tray-{level}.svg", f"tray-{level}.png")
    return found if found is not None else dot_icon(LEVEL_COLOURS.get(level, LEVEL_COLOURS["none"]))


@cache
def app_icon() -> QIcon:
    found = _file_icon("tdgui.svg", "icons/hicolor/256x256/apps/tdgui.png")
    return found if found is not None else dot_icon(LEVEL_COLOURS["ok"])


@cache
def level_icon(level: str) -> QIcon:
    return dot_icon(LEVEL_COLOURS.get(level, LEVEL_COLOURS["none"]), 16)

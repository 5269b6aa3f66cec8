"""Icons: the app's SVG/PNG resources when present, otherwise painted fallbacks (never a missing icon)."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

import tdgui

LEVEL_COLOURS = {"ok": "#2e7d32", "warn": "#f9a825", "error": "#c62828", "none": "#9e9e9e"}


def resources_dir() -> Path | None:
    """resources/ beside the package (source tree), inside it (wheel) or in a PyInstaller bundle."""
    here = Path(tdgui.__file__).resolve().parent
    candidates = [here / "resources", here.parent / "resources"]
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.insert(0, Path(bundle) / "resources")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def resource(name: str) -> Path | None:
    base = resources_dir()
    if base is None:
        return None
    path = base / name
    return path if path.is_file() else None


def _file_icon(*names: str) -> QIcon | None:
    for name in names:
        path = resource(name)
        if path is None:
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

#!/usr/bin/env python3
"""Render tdgui's icons from the hand-written SVG masters in resources/.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/render-icons.py

Writes (outputs are committed; run again after editing an SVG):

- resources/icons/hicolor/<N>x<N>/apps/tdgui.png   N = 16 24 32 48 64 128 256 512
- resources/tdgui.ico   Windows icon, PNG-compressed entries 16..256 (Vista and later)
- resources/tdgui.icns  macOS icon, PNG entries 16..512@2x (10.7 and later)
- resources/tray-{ok,warn,error}.png   64 px tray icons

Only PySide6 is needed (QSvgRenderer); the ICO and ICNS containers are written by hand,
they are a directory of PNG blobs each.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parent.parent
RES = ROOT / "resources"

HICOLOR_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # ICO cannot describe more than 256 px
# ICNS element types holding PNG data, by pixel size (several types share a size: @2x).
ICNS_TYPES = (
    (b"icp4", 16),
    (b"icp5", 32),
    (b"ic11", 32),  # 16@2x
    (b"icp6", 64),
    (b"ic12", 64),  # 32@2x
    (b"ic07", 128),
    (b"ic08", 256),
    (b"ic13", 256),  # 128@2x
    (b"ic09", 512),
    (b"ic14", 512),  # 256@2x
    (b"ic10", 1024),  # 512@2x
)
TRAY_STATES = ("ok", "warn", "error")
TRAY_SIZE = 64


def render_png(svg: Path, size: int) -> bytes:
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"render-icons: cannot parse {svg}")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise SystemExit(f"render-icons: cannot encode {svg} at {size} px")
    buffer.close()
    return bytes(data.data())


def ico_container(pngs: dict[int, bytes]) -> bytes:
    """ICONDIR + ICONDIRENTRY per image + the PNG blobs (a 0 byte means 256 px)."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, blobs = b"", b""
    for size in sizes:
        blob = pngs[size]
        dim = 0 if size >= 256 else size
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset)
        blobs += blob
        offset += len(blob)
    return header + entries + blobs


def icns_container(pngs: dict[int, bytes]) -> bytes:
    """'icns' + total length, then (type, length incl. 8-byte header, PNG) per element."""
    body = b""
    for kind, size in ICNS_TYPES:
        blob = pngs[size]
        body += kind + struct.pack(">I", len(blob) + 8) + blob
    return b"icns" + struct.pack(">I", len(body) + 8) + body


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data:
        return
    path.write_bytes(data)
    print(f"wrote {path.relative_to(ROOT)} ({len(data)} bytes)")


def main() -> int:
    _app = QGuiApplication(sys.argv[:1])
    master = RES / "tdgui.svg"
    sizes = sorted({*HICOLOR_SIZES, *ICO_SIZES, *(s for _, s in ICNS_TYPES)})
    pngs = {size: render_png(master, size) for size in sizes}
    for size in HICOLOR_SIZES:
        write(RES / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "tdgui.png", pngs[size])
    write(RES / "tdgui.ico", ico_container({s: pngs[s] for s in ICO_SIZES}))
    write(RES / "tdgui.icns", icns_container(pngs))
    for state in TRAY_STATES:
        write(RES / f"tray-{state}.png", render_png(RES / f"tray-{state}.svg", TRAY_SIZE))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

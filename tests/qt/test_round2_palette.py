"""Issue 14, defect 12 (banner part): the notice banner stays readable under a dark palette."""

from __future__ import annotations

from collections import Counter

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tdgui.qt.banner import Banner


def luminance(colour: QColor) -> float:
    """WCAG 2.1 relative luminance."""

    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = channel(colour.redF()), channel(colour.greenF()), channel(colour.blueF())
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(a: QColor, b: QColor) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in (
        (QPalette.ColorRole.Window, "#202124"),
        (QPalette.ColorRole.WindowText, "#e8eaed"),
        (QPalette.ColorRole.Base, "#17181a"),
        (QPalette.ColorRole.Text, "#e8eaed"),
        (QPalette.ColorRole.Button, "#303134"),
        (QPalette.ColorRole.ButtonText, "#e8eaed"),
        (QPalette.ColorRole.ToolTipBase, "#3c4043"),
        (QPalette.ColorRole.ToolTipText, "#e8eaed"),
        (QPalette.ColorRole.Mid, "#5f6368"),
    ):
        palette.setColor(role, QColor(colour))
    return palette


@pytest.mark.parametrize("dark", [True, False])
def test_banner_text_is_readable_in_dark_and_light_palettes(qtbot: QtBot, dark: bool) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    saved = app.palette()
    if dark:
        app.setPalette(dark_palette())
    try:
        banner = Banner()
        qtbot.addWidget(banner)
        banner.show_notice("alpha", "W" * 30)  # wide glyphs: many text pixels
        banner.resize(700, 60)
        banner.show()
        qtbot.waitExposed(banner)
        row = banner.rows["alpha"]
        # The banner as drawn (its background behind the label), over the label's area.
        area = QRect(row.label.mapTo(banner, QPoint(0, 0)), row.label.size())
        image = banner.grab(area).toImage()
        counts: Counter[int] = Counter(
            image.pixel(x, y) for x in range(image.width()) for y in range(image.height())
        )
        background = QColor.fromRgb(counts.most_common(1)[0][0])
        text = max((QColor.fromRgb(p) for p in counts), key=lambda c: contrast(c, background))
        assert contrast(text, background) >= 4.5, (background.name(), text.name())
    finally:
        app.setPalette(saved)

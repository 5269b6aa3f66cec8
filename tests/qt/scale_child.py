"""Run only by tests/qt/test_round2_scale.py, in a pytest child with QT_SCALE_FACTOR=2 (200 % scale).

Not named test_*.py on purpose: the scale factor must be set before the QApplication
exists, so these checks cannot run in the main test process.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from qt.test_round2_window_fit import test_token_rows_are_not_clipped_at_the_minimum_window_size as rows_fit
from tdgui.core.service import TokenService
from tdgui.qt import icons


def _svg_render(name: str, size: int) -> QImage:
    path = icons.resource(name)
    assert path is not None, f"resources/{name} not found from {icons.resources_dir()}"
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    QSvgRenderer(str(path)).render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image


def _distance(a: QImage, b: QImage) -> float:
    """Mean absolute difference per channel (0-255) of two images of one size."""
    a = a.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    b = b.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    assert a.size() == b.size(), (a.size(), b.size())
    total = sum(abs(x - y) for x, y in zip(a.constBits().tobytes(), b.constBits().tobytes(), strict=True))
    return total / (a.width() * a.height() * 4)


def test_the_scale_factor_is_two(qapp: QApplication) -> None:
    assert qapp.devicePixelRatio() == 2.0


@pytest.mark.parametrize(
    ("which", "svg"),
    [("app", "tdgui.svg"), ("ok", "tray-ok.svg"), ("warn", "tray-warn.svg"), ("error", "tray-error.svg")],
)
@pytest.mark.parametrize("logical", [32, 64])
@pytest.mark.parametrize("engine", ["app", "renderer"])
def test_icons_are_rendered_from_the_svg_at_device_pixels(
    qapp: QApplication, which: str, svg: str, logical: int, engine: str
) -> None:
    if engine == "app":  # what the window and the tray use
        icon: QIcon | None = icons.app_icon() if which == "app" else icons.tray_icon(which)
    else:  # the fallback where Qt's SVG icon engine plugin is missing
        path = icons.resource(svg)
        assert path is not None
        icon = icons.rendered_svg_icon(path)
    assert icon is not None
    pixmap = icon.pixmap(QSize(logical, logical))
    physical = logical * 2
    assert pixmap.devicePixelRatio() == 2.0
    assert (pixmap.width(), pixmap.height()) == (physical, physical)
    sharp = _svg_render(svg, physical)
    # What a half-size bitmap blown up to this size looks like: the blur to tell apart.
    blown_up = _svg_render(svg, logical).scaled(
        physical, physical, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    got, blur = _distance(pixmap.toImage(), sharp), _distance(blown_up, sharp)
    assert got < blur / 3, f"{which} at {logical} px: {got:.2f} from the SVG, an upscale is {blur:.2f}"


def test_token_rows_are_not_clipped_at_the_minimum_window_size_at_200_percent(
    qapp: QApplication,
    qtbot: QtBot,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
    login_direct: Callable[[str], None],
) -> None:
    assert qapp.devicePixelRatio() == 2.0
    rows_fit(qtbot, service, add_sandbox_account, login_direct)

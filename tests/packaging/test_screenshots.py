"""`tdgui --self-test --screenshot DIR` shoots the window in the light and in a dark palette."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage


def mean_brightness(path: Path) -> float:
    """Mean lightness (0-255) over a 64x40 thumbnail: enough to tell a light window from a dark one."""
    image = QImage(str(path))
    assert not image.isNull(), path
    small = image.scaled(64, 40)
    values = [small.pixelColor(x, y).lightness() for x in range(small.width()) for y in range(small.height())]
    return sum(values) / len(values)


def test_self_test_writes_light_and_dark_screenshots(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"))
    result = subprocess.run(
        [sys.executable, "-m", "tdgui", "--self-test", "--screenshot", str(shots)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    light, dark = shots / "status.png", shots / "status-dark.png"
    assert light.stat().st_size > 2_000 and dark.stat().st_size > 2_000
    light_mean, dark_mean = mean_brightness(light), mean_brightness(dark)
    print(f"\nmean lightness: status.png {light_mean:.0f}, status-dark.png {dark_mean:.0f}")
    assert light_mean > 150 and dark_mean < 100, (light_mean, dark_mean)

"""Readable at 200 % scale (issue 14, build 5): crisp SVG icons and unclipped token rows at QT_SCALE_FACTOR=2.

The scale factor is read when the QApplication is made, so the checks run in a pytest child
(tests/qt/scale_child.py) started with QT_SCALE_FACTOR=2 on the offscreen platform.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test_icons_and_token_rows_at_200_percent_scale() -> None:
    env = dict(os.environ, QT_SCALE_FACTOR="2", QT_QPA_PLATFORM="offscreen")
    env.pop("QT_SCREEN_SCALE_FACTORS", None)
    env.pop("QT_ENABLE_HIGHDPI_SCALING", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "scale_child.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    # Every check ran (none skipped or deselected): 1 + 4 icons x 2 sizes x 2 engines + 1.
    assert "18 passed" in out and "skipped" not in out, out[-3000:]

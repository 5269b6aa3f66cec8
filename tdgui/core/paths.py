"""Where tdgui keeps its files: platform dirs from platformdirs, overridable by environment."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "tdgui"


def config_dir() -> Path:
    """`TD_CONFIG_DIR`, else the platform's user config dir (e.g. ~/.config/tdgui)."""
    override = os.environ.get("TD_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def log_dir() -> Path:
    override = os.environ.get("TD_LOG_DIR")
    if override:
        return Path(override).expanduser()
    if os.environ.get("TD_CONFIG_DIR"):
        return config_dir() / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))

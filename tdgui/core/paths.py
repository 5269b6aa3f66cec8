"""Where tdgui keeps its files: platform dirs from platformdirs, overridable by environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP_NAME = "tdgui"


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`TD_CONFIG_DIR`, else the platform's user config dir (e.g. ~/.config/tdgui).

    `environ` is an entry point's environment (tdgui.core.environment); None: this process's.
    """
    env = os.environ if environ is None else environ
    override = env.get("TD_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def log_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`TD_LOG_DIR`, else `logs` in `TD_CONFIG_DIR` when that is set, else the platform's."""
    env = os.environ if environ is None else environ
    override = env.get("TD_LOG_DIR")
    if override:
        return Path(override).expanduser()
    if env.get("TD_CONFIG_DIR"):
        return config_dir(env) / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))

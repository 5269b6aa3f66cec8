"""Launch at login: the XDG autostart entry ~/.config/autostart/tdgui.desktop (Linux desktops)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tdgui.core.fsutil import atomic_write
from tdgui.qt.icons import resource

FILE_NAME = "tdgui.desktop"
_FALLBACK = """[Desktop Entry]
Type=Application
Name=tdgui
Comment=Keeps Schwab / TD Ameritrade API tokens fresh
Exec={exec}
Icon=tdgui
Terminal=false
X-GNOME-Autostart-enabled=true
"""


def autostart_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autostart" / FILE_NAME


_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`%")


def desktop_quote(arg: str) -> str:
    """Quote one Exec argument per the Desktop Entry spec ("The Exec key"), not shell rules.

    Inside double quotes `"`, backquote, `$` and backslash are backslash-escaped; then the
    string-value rule doubles every backslash again, and `%` becomes `%%` (a field code).
    """
    if arg and not set(arg) & _RESERVED:
        return arg
    for char in ("\\", '"', "`", "$"):
        arg = arg.replace(char, "\\" + char)
    return f'"{arg}"'.replace("\\", "\\\\").replace("%", "%%")


def launch_command() -> str:
    """The command that starts this app minimized (a frozen bundle runs its own executable)."""
    if getattr(sys, "frozen", False):
        return f"{desktop_quote(sys.executable)} --minimized"
    installed = shutil.which("tdgui")
    if installed:
        return f"{desktop_quote(installed)} --minimized"
    return f"{desktop_quote(sys.executable)} -m tdgui --minimized"


def desktop_entry() -> str:
    template = resource("tdgui-autostart.desktop")
    command = launch_command()
    if template is None:
        return _FALLBACK.format(exec=command)
    lines = []
    for line in template.read_text(encoding="utf-8").splitlines():
        lines.append(f"Exec={command}" if line.startswith("Exec=") else line)
    return "\n".join(lines) + "\n"


def is_enabled() -> bool:
    return autostart_path().is_file()


def set_enabled(enabled: bool) -> Path:
    """Write or remove the autostart entry; returns its path."""
    path = autostart_path()
    if enabled:
        atomic_write(path, desktop_entry(), own_dir=False)
    else:
        path.unlink(missing_ok=True)
    return path

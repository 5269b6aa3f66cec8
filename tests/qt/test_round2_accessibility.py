"""Issue 14, build 5: every control in the main window, dialogs and tray menu has an accessible name."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QProgressBar,
    QWidget,
)
from pytestqt.qtbot import QtBot

from tdgui.core.config import Settings
from tdgui.core.service import TokenService
from tdgui.qt.shell import Shell

CONTROLS = (QAbstractButton, QLineEdit, QComboBox, QAbstractItemView, QProgressBar, QAbstractSpinBox, QLabel)


def nameless(root: QWidget) -> list[str]:
    """Controls a screen reader would announce without a name (what QAccessible reports)."""
    missing = []
    for widget in [root, *root.findChildren(QWidget)]:
        if not isinstance(widget, CONTROLS) or not widget.isVisibleTo(root):
            continue
        if isinstance(widget, QLabel) and not widget.text():
            continue  # an empty label is not announced
        if isinstance(widget.parent(), QAbstractSpinBox):
            continue  # the spin box's own editor: announced as the spin box, checked as such
        interface = QAccessible.queryAccessibleInterface(widget)
        name = interface.text(QAccessible.Text.Name) if interface is not None else ""
        if not name.strip():
            missing.append(f"{type(widget).__name__}({widget.objectName() or '?'}) in {type(root).__name__}")
    return missing


def test_every_control_has_an_accessible_name(
    qtbot: QtBot,
    service: TokenService,
    add_sandbox_account: Callable[..., str],
    login_direct: Callable[[str], None],
) -> None:
    shell = Shell(service, Settings(), use_tray=True, quit_app=lambda: None)
    qtbot.addWidget(shell.window)
    with qtbot.waitSignal(shell.controller.statuses_changed, timeout=10_000):
        shell.start()
    window = shell.window
    problems = nameless(window)  # the welcome page
    add_sandbox_account("alpha")
    login_direct("alpha")
    with qtbot.waitSignal(shell.controller.statuses_changed, timeout=10_000):
        shell.controller.reload()
    window.show_notice("alpha", "The refresh token of alpha expires in 1h 30m.")
    problems += nameless(window)  # the status page with a banner
    add = window.open_add_dialog()
    problems += nameless(add)
    add.reject()
    edit = window.open_edit_dialog()
    assert edit is not None
    problems += nameless(edit)
    edit.reject()
    box = window.confirm_remove()
    assert box is not None
    problems += nameless(box)
    box.reject()
    settings = shell.open_settings()
    problems += nameless(settings)
    settings.reject()
    about = shell.open_about()
    problems += nameless(about)
    about.reject()
    for action in shell.tray.menu.actions():
        if not action.isSeparator():
            assert action.text().strip(), "a tray menu entry without a name"
    assert problems == [], problems
    shell.shutdown()

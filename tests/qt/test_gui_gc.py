"""tdgui.qt.gui_gc: a Qt object in a reference cycle is collected on the GUI thread, never a worker's."""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject, QTimer
from pytestqt.qtbot import QtBot


class CycleWithTimer(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.me = self  # only the cyclic collector frees it
        self.timer = QTimer(self)
        self.timer.start(60_000)  # destroyed on another thread, Qt says "Timers cannot be stopped"


def test_a_cycle_of_qt_objects_is_collected_on_the_gui_thread(qtbot: QtBot) -> None:
    assert not gc.isenabled()  # the conftest's collector, as in the app
    gc.collect()
    destroyed_on: list[threading.Thread] = []
    garbage = CycleWithTimer()
    garbage.destroyed.connect(lambda: destroyed_on.append(threading.current_thread()))
    del garbage
    kept: list[list[int]] = []
    # A worker allocates far past the threshold: automatic collection would run right there.
    worker = threading.Thread(target=lambda: kept.extend([] for _ in range(20 * gc.get_threshold()[0])))
    worker.start()
    worker.join()
    assert destroyed_on == []
    qtbot.waitUntil(lambda: destroyed_on != [], timeout=5_000)
    assert destroyed_on == [threading.main_thread()]

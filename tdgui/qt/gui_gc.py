"""Python's cyclic garbage collection, pinned to the GUI thread while Qt runs.

The collector runs in whichever thread crosses its allocation threshold: with a worker pool
(keyring, network, disk) that is often a worker. A Qt object caught in a reference cycle is
then destroyed on the worker, which Qt forbids ("QObject::killTimer: Timers cannot be stopped
from another thread", seen in this suite) and which can crash a later turn of the event loop
(a full suite run segfaulted once in pytest-qt's event processing). The cure is the one
calibre, pyqtgraph and others use (riverbankcomputing.com/pipermail/pyqt/2011-August/030378.html):
automatic collection off, and the same generational thresholds checked by a GUI-thread timer.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer, Slot

#: How often the thresholds are checked; a collection of the youngest generation takes well
#: under a millisecond here, and garbage waits at most this long.
CHECK_INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """Create on the GUI thread; `stop()` gives collection back to Python."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.was_enabled = gc.isenabled()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(CHECK_INTERVAL_MS)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    @Slot()
    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds, as Python would."""
        young, middle, old = gc.get_count()
        if young > self.threshold[0]:
            gc.collect(0)
            if middle > self.threshold[1]:
                gc.collect(1)
                if old > self.threshold[2]:
                    gc.collect(2)

    def stop(self) -> None:
        self.timer.stop()
        gc.collect()  # here, on the GUI thread, before a worker could
        if self.was_enabled:
            gc.enable()

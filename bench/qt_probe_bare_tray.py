"""Row 6 baseline child: the smallest PySide6 tray app (QApplication + QSystemTrayIcon + a hidden QWidget).

    python bench/qt_probe_bare_tray.py

Prints READY once the event loop runs, then idles until stdin reaches end of file (or gets
a line), and exits 0. No web engine is imported: this is what any Qt tray app costs.
"""

from __future__ import annotations

import sys


def main() -> int:
    from PySide6.QtCore import QSocketNotifier, QTimer
    from PySide6.QtGui import QColor, QIcon, QPixmap
    from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    pixmap = QPixmap(32, 32)
    pixmap.fill(QColor("#1b5e20"))
    tray = QSystemTrayIcon(QIcon(pixmap))
    tray.setToolTip("bare tray")
    tray.show()
    window = QWidget()
    window.setWindowTitle("bare tray")
    window.resize(640, 480)  # built, never shown (like a tray app's main window)

    notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)
    notifier.activated.connect(app.quit)
    QTimer.singleShot(0, lambda: print("READY", flush=True))
    code = app.exec()
    tray.hide()
    del window
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main())

"""run_in_background: answers on the GUI thread, none to a deleted window, nothing left behind."""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject
from pytestqt.qtbot import QtBot

from tdgui.qt.worker import run_in_background, wait_for_idle


def relays() -> int:
    app = QCoreApplication.instance()
    assert app is not None
    return sum(1 for child in app.children() if type(child).__name__ == "_Relay")


def settle(qtbot: QtBot) -> None:
    assert wait_for_idle(10_000)
    qtbot.wait(50)  # the queued answers
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_answers_and_errors_arrive_on_the_gui_thread_and_the_relays_go(qtbot: QtBot) -> None:
    before = relays()
    seen: list[tuple[str, Any, bool]] = []
    gui = threading.current_thread()

    def worker_thread() -> bool:
        return threading.current_thread() is not gui

    def fail() -> None:
        raise ValueError("no")

    def answer(kind: str) -> Any:
        return lambda value: seen.append((kind, str(value), threading.current_thread() is gui))

    for _ in range(20):
        run_in_background(worker_thread, answer("done"))
    run_in_background(fail, None, answer("error"))
    qtbot.waitUntil(lambda: len(seen) == 21, timeout=10_000)
    assert seen.count(("done", "True", True)) == 20  # ran on a worker, answered on the GUI thread
    assert ("error", "no", True) in seen
    settle(qtbot)
    assert relays() == before  # each relay deleted after its answer, on the GUI thread


def test_no_answer_to_a_deleted_context(qtbot: QtBot) -> None:
    before = relays()
    context = QObject()
    started, release = threading.Event(), threading.Event()
    seen: list[object] = []

    def slow() -> int:
        started.set()
        release.wait(10)
        return 1

    run_in_background(slow, seen.append, seen.append, context=context)
    assert started.wait(10)
    context.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    release.set()
    settle(qtbot)
    assert seen == [] and relays() == before

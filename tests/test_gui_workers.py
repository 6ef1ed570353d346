"""Job and JobRunner: outcomes, progress throttling, cancel, joined threads."""
from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QObject, Slot

from fsprec.core.errors import Cancelled, FsprecError
from fsprec.gui.workers import Job, JobRunner

pytestmark = pytest.mark.usefixtures("no_dangling_threads")


def run_job(qtbot, fn):
    """Run ``fn`` as a job; returns the outcome signal name and its payload."""
    runner = JobRunner()
    job = Job("Test job", fn)
    outcome = {}
    job.finished.connect(lambda result: outcome.update(finished=result))
    job.failed.connect(lambda message: outcome.update(failed=message))
    job.cancelled.connect(lambda message: outcome.update(cancelled=message))
    with qtbot.waitSignal(job.ended, timeout=10_000):
        runner.start(job)
    qtbot.waitUntil(lambda: not runner.running(), timeout=10_000)
    assert len(outcome) == 1
    return next(iter(outcome.items()))


def test_result_error_and_cancel_outcomes(qtbot):
    assert run_job(qtbot, lambda task: 42) == ("finished", 42)

    def refuse(task):
        raise FsprecError("That folder holds two models.")
    assert run_job(qtbot, refuse) == ("failed", "That folder holds two models.")

    def crash(task):
        raise ZeroDivisionError("division by zero")
    kind, message = run_job(qtbot, crash)
    assert kind == "failed" and message.startswith("Test job failed unexpectedly")

    def stop(task):
        task.cancel()
        task.check()
    assert run_job(qtbot, stop)[0] == "cancelled"

    def late_cancel(task):  # the work completed before it looked at the flag again
        task.cancel()
        return "done"
    assert run_job(qtbot, late_cancel) == ("finished", "done")
    assert issubclass(Cancelled, FsprecError)


class Receiver(QObject):
    """A GUI-thread object, as the window is: its slots run on the GUI thread."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int, int]] = []
        self.threads: set[int] = set()

    @Slot(str, int, int)
    def progress(self, stage: str, done: int, total: int) -> None:
        self.seen.append((stage, done, total))
        self.threads.add(threading.get_ident())


def test_progress_reaches_the_gui_thread_throttled(qtbot):
    receiver = Receiver()
    seen = receiver.seen

    def work(task):
        for done in range(1, 2001):
            task.progress("Counting", done, 2000)
        return "ok"

    runner = JobRunner()
    job = Job("Progress", work)
    job.progress.connect(receiver.progress)
    with qtbot.waitSignal(job.ended, timeout=10_000):
        runner.start(job)
    qtbot.waitUntil(lambda: seen and seen[-1] == ("Counting", 2000, 2000), timeout=10_000)
    assert 1 <= len(seen) < 200  # throttled, and the last report always arrives
    assert seen[0] == ("Counting", 1, 2000)
    assert receiver.threads == {threading.get_ident()}
    qtbot.waitUntil(lambda: not runner.running(), timeout=10_000)


def test_shutdown_cancels_and_joins(qtbot):
    started = threading.Event()

    def wait_for_cancel(task):
        started.set()
        while True:
            task.check()
            threading.Event().wait(0.005)

    runner = JobRunner()
    job = Job("Endless", wait_for_cancel)
    runner.start(job)
    assert started.wait(10)
    runner.shutdown()
    assert runner.running() == []

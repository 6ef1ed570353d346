"""Job, JobRunner and LatestJob: typed outcomes, progress throttling, cancel, joined threads,
and the latest-job-wins rule."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Slot

from fsprec.core.errors import FsprecError
from fsprec.gui.job_status import JobStatus
from fsprec.gui.latest_job import LatestJob
from fsprec.gui.outcomes import Cancelled, Done, Failed, Refused
from fsprec.gui.workers import Job, JobRunner

pytestmark = pytest.mark.usefixtures("no_dangling_threads")
TIMEOUT_MS = 10_000


def run_job(qtbot, fn):
    """Run ``fn`` as a job; returns its one outcome."""
    runner = JobRunner()
    job = Job("Test job", fn)
    outcomes = []
    job.outcome.connect(outcomes.append)
    with qtbot.waitSignal(job.ended, timeout=TIMEOUT_MS):
        runner.start(job)
    qtbot.waitUntil(lambda: not runner.running(), timeout=TIMEOUT_MS)
    assert len(outcomes) == 1
    return outcomes[0]


def test_result_refusal_failure_and_cancel_outcomes(qtbot, capfd):
    assert run_job(qtbot, lambda task: 42) == Done(42)

    def refuse(task):
        raise FsprecError("That folder holds two models.")
    refused = run_job(qtbot, refuse)
    assert refused == Refused("That folder holds two models.")
    assert isinstance(refused.error, FsprecError)

    def crash(task):
        raise ZeroDivisionError("division by zero")
    failed = run_job(qtbot, crash)
    assert isinstance(failed, Failed) and isinstance(failed.error, ZeroDivisionError)
    assert failed.message == "Test job failed unexpectedly: division by zero"
    assert "Traceback" in failed.details and "in crash" in failed.details
    assert capfd.readouterr().err == ""  # the details go to the user, not to stderr

    def stop(task):  # core's Cancelled is a FsprecError, and still reads as a cancel
        task.cancel()
        task.check()
    assert isinstance(run_job(qtbot, stop), Cancelled)

    def late_cancel(task):  # the work completed before it looked at the flag again
        task.cancel()
        return "done"
    assert run_job(qtbot, late_cancel) == Done("done")


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
    with qtbot.waitSignal(job.ended, timeout=TIMEOUT_MS):
        runner.start(job)
    qtbot.waitUntil(lambda: seen and seen[-1] == ("Counting", 2000, 2000), timeout=TIMEOUT_MS)
    assert 1 <= len(seen) < 200  # throttled, and the last report always arrives
    assert seen[0] == ("Counting", 1, 2000)
    assert receiver.threads == {threading.get_ident()}
    qtbot.waitUntil(lambda: not runner.running(), timeout=TIMEOUT_MS)


def wait_for_cancel(started: threading.Event):
    """A job function that runs until it is cancelled."""
    def work(task):
        started.set()
        while True:
            task.check()
            threading.Event().wait(0.005)
    return work


def test_shutdown_cancels_and_joins(qtbot):
    started = threading.Event()
    runner = JobRunner()
    job = Job("Endless", wait_for_cancel(started))
    outcomes = []
    job.outcome.connect(outcomes.append)
    runner.start(job)
    assert started.wait(10)
    runner.shutdown()
    assert runner.running() == [] and not runner.owns(job)
    qtbot.waitUntil(lambda: bool(outcomes), timeout=TIMEOUT_MS)
    assert len(outcomes) == 1 and isinstance(outcomes[0], Cancelled)


def blocked_until(release: threading.Event, value):
    """A job function that ignores cancel and returns ``value`` once ``release`` is set."""
    def work(task):
        assert release.wait(10)
        return value
    return work


def test_a_superseded_job_is_cancelled_and_its_result_dropped(qtbot):
    runner, release = JobRunner(), threading.Event()
    slot, handled = LatestJob(runner), []
    first = slot.start("First", blocked_until(release, "first"), handled.append)
    slot.start("Second", lambda task: "second", handled.append)
    qtbot.waitUntil(lambda: bool(handled), timeout=TIMEOUT_MS)
    assert first.task.cancelled  # it was asked to stop...
    release.set()  # ...but finished anyway: its result must not count
    qtbot.waitUntil(lambda: not runner.running(), timeout=TIMEOUT_MS)
    assert handled == [Done("second")]


def test_a_result_for_a_model_no_longer_open_is_dropped(qtbot):
    runner, release = JobRunner(), threading.Event()
    open_model: list[Path | None] = [Path("/models/a")]
    slot, handled = LatestJob(runner, open_model=lambda: open_model[0]), []
    slot.start("About a", blocked_until(release, "about a"), handled.append)
    open_model[0] = Path("/models/b")
    release.set()
    qtbot.waitUntil(lambda: not runner.running(), timeout=TIMEOUT_MS)
    assert handled == []
    slot.start("About b", lambda task: "about b", handled.append)
    qtbot.waitUntil(lambda: not runner.running(), timeout=TIMEOUT_MS)
    assert handled == [Done("about b")]


def test_an_outcome_after_shutdown_is_dropped(qtbot):
    runner, started = JobRunner(), threading.Event()
    slot, handled, ended = LatestJob(runner), [], []
    job = slot.start("Endless", wait_for_cancel(started), handled.append)
    job.ended.connect(lambda: ended.append(True))
    assert started.wait(10)
    runner.shutdown()
    qtbot.waitUntil(lambda: bool(ended), timeout=TIMEOUT_MS)
    assert handled == []


def test_one_foreground_job_at_a_time(qtbot):
    runner, status, release = JobRunner(), JobStatus(), threading.Event()
    declined, handled, idle_when_handled = [], [], []
    status.declined.connect(declined.append)
    opening, scanning = LatestJob(runner, status), LatestJob(runner, status)

    def handle(outcome):
        idle_when_handled.append(not status.busy)
        handled.append(outcome)
    assert opening.start("Opening", blocked_until(release, "opened"), handle) is not None
    assert scanning.start("Scanning weights", lambda task: "scanned", handle) is None
    assert declined == ["Busy with opening; try again when it ends."]
    with qtbot.waitSignal(status.ended, timeout=TIMEOUT_MS):
        release.set()
    assert handled == [Done("opened")] and idle_when_handled == [True]
    qtbot.waitUntil(lambda: not runner.running(), timeout=TIMEOUT_MS)

"""One writer at a time: 2-8 processes converting and restoring one folder at once."""
from __future__ import annotations

import os
import random

import pytest

from concurrency import trial

TRIALS = int(os.environ.get("FSPREC_CONCURRENCY_TRIALS", "3"))


@pytest.mark.parametrize("processes", [2, 4, 8])
@pytest.mark.parametrize("number", range(TRIALS))
def test_parallel_writers_leave_a_consistent_folder(tmp_path, processes, number):
    """The others exit 2 with "Another fsprec is changing this model"; the folder is one a
    sequence of the operations gives, with the true previous version in the .bk."""
    rng = random.Random(processes * 1000 + number)
    assert trial(tmp_path / "m", processes, rng) == []


def test_second_writer_is_refused_with_the_holders_pid(tmp_path):
    from factory import make_keras3
    from fsprec.core import convert, lock
    from fsprec.core.errors import FsprecError
    from fuzz_cases import snapshot

    folder = make_keras3(tmp_path / "m")
    before = snapshot(folder)
    with lock.writing(folder):
        assert lock.busy(folder) == os.getpid()
        with pytest.raises(FsprecError, match=rf"Another fsprec is changing this model "
                                              rf"\(pid {os.getpid()}\); nothing was changed"):
            convert.convert(folder, "mixed_float16")
    assert snapshot(folder) == before and lock.busy(folder) is None


def test_a_second_job_in_the_same_process_is_refused_too(tmp_path):
    """The GUI runs jobs in threads: a double click must not start a second writer."""
    import threading

    from factory import make_keras3
    from fsprec.core import convert, lock
    from fsprec.core.errors import FsprecError

    folder = make_keras3(tmp_path / "m")
    plan = convert.plan(folder, "mixed_float16")
    outcome = []

    def second_click():
        try:
            convert.run(plan)
            outcome.append("ran")
        except FsprecError as err:
            outcome.append(str(err))

    with lock.writing(folder):
        worker = threading.Thread(target=second_click)
        worker.start()
        worker.join()
    assert outcome == [f"Another fsprec is changing this model (pid {os.getpid()}); nothing "
                       "was changed."]
    assert convert.plan(folder, "float32").model.precision == "float32"  # nothing was written


def test_a_lock_taken_on_a_file_its_holder_just_removed_is_taken_again(tmp_path, monkeypatch):
    """A holder letting go removes the lock file, then unlocks: a process that opened the old
    file meanwhile holds a lock nobody else sees, and must lock the new file instead."""
    from factory import make_keras3
    from fsprec.core import lock

    folder = make_keras3(tmp_path / "m")
    path = folder / lock.LOCK_NAME
    real_try_lock, tries = lock._try_lock, []

    def holder_lets_go_first(fd: int) -> bool:
        tries.append(fd)
        if len(tries) == 1:
            path.unlink()  # the previous holder's last step, between our open and our lock
        return real_try_lock(fd)

    monkeypatch.setattr(lock, "_try_lock", holder_lets_go_first)
    with lock.writing(folder):
        assert len(tries) == 2
        monkeypatch.setattr(lock, "_try_lock", real_try_lock)
        assert lock.busy(folder) == os.getpid()  # the lock is on the file the folder shows
    assert not path.exists()


def test_a_file_system_without_locks_refuses_with_a_sentence(tmp_path, monkeypatch):
    import errno

    from factory import make_keras3
    from fsprec.core import convert, lock
    from fsprec.core.errors import FsprecError
    from fuzz_cases import snapshot

    folder = make_keras3(tmp_path / "m")
    before = snapshot(folder)

    def no_locks(fd: int) -> bool:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(lock, "_try_lock", no_locks)
    with pytest.raises(FsprecError, match="cannot lock files .* fsprec cannot make sure it is "
                                          "the only one changing this model. Nothing was"):
        convert.convert(folder, "mixed_float16")
    assert snapshot(folder) == before


@pytest.mark.parametrize("planted", ["hard link to the model", "someone's file"])
def test_a_planted_lock_file_is_refused_and_left_alone(tmp_path, planted):
    """A shared folder (a tar archive keeps hard links) may hold a ``.fsprec.lock`` that is not
    ours: it is never truncated or written, and the switch is refused."""
    from factory import make_keras3
    from fsprec.core import convert, lock
    from fsprec.core.errors import FsprecError
    from fuzz_cases import snapshot

    folder = make_keras3(tmp_path / "m")
    path = folder / lock.LOCK_NAME
    if planted == "hard link to the model":
        os.link(folder / "tiny.keras", path)
    else:
        path.write_text("notes I keep here\n" * 10)
    before = snapshot(folder)
    with pytest.raises(FsprecError, match="is not fsprec's lock file; remove it"):
        convert.convert(folder, "mixed_float16")
    assert snapshot(folder) == before
    assert lock.busy(folder) is None

"""Real Faceswap in the test suite: its source tree, its own venv, and a job runner.

The tests here run Faceswap itself (``../shared/faceswap``, its own Keras 3.14.1 on CPU torch)
as a subprocess in a second venv, ``.fsvenv``, which ``make faceswap-venv`` creates from
``tests/integration/requirements-faceswap.txt`` (``make test`` does it when the Faceswap tree
exists). fsprec itself runs in the test process. Every test here carries the ``faceswap``
marker; when the tree or the venv is missing they skip and say which.
"""
from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CORES_PER_WORKER

REPO = Path(__file__).resolve().parents[2]
FACESWAP = Path(os.environ.get("FSPREC_FACESWAP_SOURCE", REPO.parent / "shared" / "faceswap"))
FSVENV = Path(os.environ.get("FSPREC_FSVENV", REPO / ".fsvenv"))
DRIVER = Path(__file__).with_name("faceswap_driver.py")
_TIMEOUT = 900
WORKERS = max(1, min(2, os.cpu_count() or 1))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faceswap: runs real Faceswap (../shared/faceswap) in "
                                       "its own venv (.fsvenv, `make faceswap-venv`)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.faceswap)


def missing() -> str | None:
    """Why Faceswap cannot run here, or None when it can."""
    if not (FACESWAP / "faceswap.py").is_file():
        return (f"Faceswap's source not found at {FACESWAP} "
                "(set FSPREC_FACESWAP_SOURCE to a Faceswap checkout)")
    python = FSVENV / "bin" / "python"
    if not python.is_file() or not (FSVENV / ".installed").is_file():
        return f"the Faceswap venv {FSVENV} is missing; run `make faceswap-venv`"
    return None


def _threads() -> int:
    """torch's threads in each Faceswap process: this pytest-xdist worker's cores shared out
    among its processes. More threads than cores made every step slower (two processes of two
    threads on 2 cores: a pass of six training jobs took 112 s, 91 s with one thread each)."""
    return max(1, CORES_PER_WORKER // WORKERS)


# glibc's malloc in the Faceswap processes keeps up to 1 GB of what torch frees for its next
# tensors instead of handing each block back to the system at once: a training step
# allocates gigabytes, and every fresh page cost a fault (a dfaker job: 3.3 million faults and
# 14 s of system time; 1.1 million and 5.7 s with these, 52 s a job instead of 40-43 s; the
# integration part 7 min 29 s instead of 8 min 37 s). Numerics are untouched.
_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
           "MALLOC_TOP_PAD_": str(1 << 30)}


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return env | _MALLOC | {"KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": "",
                            "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": str(_threads())}


class _Driver:
    """One Faceswap process (faceswap_driver.py) in its own tree, taking one job at a time."""

    def __init__(self, tree: Path, log: Path) -> None:
        read, write = os.pipe()
        self.log = log
        with open(log, "w", encoding="utf-8") as errors:
            self.proc = subprocess.Popen(
                [str(FSVENV / "bin" / "python"), str(DRIVER), str(write)], cwd=tree,
                env=_environment(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=errors, pass_fds=(write,), text=True)
        os.close(write)
        self.replies = os.fdopen(read, encoding="utf-8")

    def send(self, job: dict) -> None:
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict:
        line = self.replies.readline()
        if not line:
            raise AssertionError(f"Faceswap driver died ({self.proc.wait()}):\n"
                                 f"{self.log.read_text(encoding='utf-8')[-4000:]}")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.replies.close()


class Faceswap:
    """Faceswap processes, one per core for each pass of jobs, each in a writable copy of the
    Faceswap tree (Faceswap writes ``config/train.ini`` there).

    Jobs are independent, so a free process takes the next one, training jobs first (they are
    the longest). The processes end with their pass (or, with ``keep``, with the module's
    next pass), so each test module starts clean: Faceswap keeps some of a plugin's train.ini
    options from one model to the next in a process (a Phaze-A variant built after the switch
    tests' small Phaze-A, in the same process, came out with its decoder filters).
    """

    def __init__(self, tree: Path, work: Path) -> None:
        self.trees = [tree]
        self.work = work
        self._drivers: list[_Driver] = []
        self._runs = 0

    def run(self, jobs: list[dict], keep: bool = False,
            on_report: Callable[[int, dict], None] | None = None) -> list[dict]:
        """Run jobs (see faceswap_driver.py); one report per job, in the jobs' order.
        ``on_report(index, report)`` is called as each arrives (the caller's own work then
        overlaps Faceswap's). The processes end afterwards unless ``keep`` (the same module's
        next pass uses them)."""
        try:
            return self._run(jobs, on_report or (lambda index, report: None))
        finally:
            if not keep:
                self.close()

    def _run(self, jobs: list[dict], on_report: Callable[[int, dict], None]) -> list[dict]:
        while len(self._drivers) < max(1, min(WORKERS, len(jobs))):
            if len(self.trees) <= len(self._drivers):
                tree = self.trees[0].with_name(f"faceswap_{len(self.trees)}")
                shutil.copytree(self.trees[0], tree)
                self.trees.append(tree)
            tree = self.trees[len(self._drivers)]
            self._runs += 1
            self._drivers.append(_Driver(tree, self.work / f"driver_{self._runs}.log"))
        pending = sorted(enumerate(jobs), key=lambda item: -item[1].get("steps", 0))
        reports: list[dict] = [{} for _ in jobs]
        running: dict[_Driver, int] = {}
        with selectors.DefaultSelector() as selector:
            for driver in self._drivers:
                if pending:
                    self._give(driver, pending.pop(0), running, selector)
            while running:
                ready = selector.select(timeout=_TIMEOUT)
                if not ready:
                    raise AssertionError(f"Faceswap did not finish a job in {_TIMEOUT} s")
                for key, _ in ready:
                    driver = key.data
                    selector.unregister(driver.replies)
                    index = running.pop(driver)
                    reports[index] = driver.receive()
                    if pending:
                        self._give(driver, pending.pop(0), running, selector)
                    on_report(index, reports[index])
        return reports

    @staticmethod
    def _give(driver: _Driver, item: tuple[int, dict], running: dict[_Driver, int],
              selector: selectors.BaseSelector) -> None:
        index, job = item
        driver.send(job)
        running[driver] = index
        selector.register(driver.replies, selectors.EVENT_READ, driver)

    def close(self) -> None:
        """End the Faceswap processes."""
        for driver in self._drivers:
            driver.close()
        self._drivers.clear()

    @property
    def tree(self) -> Path:
        """The first tree (for scripts run on their own)."""
        return self.trees[0]


@pytest.fixture(scope="session")
def faceswap(tmp_path_factory: pytest.TempPathFactory) -> Faceswap:
    """Faceswap, ready to run (skips with the reason when it cannot)."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("faceswap")
    tree = root / "faceswap"
    shutil.copytree(FACESWAP, tree, ignore=shutil.ignore_patterns(".git", "tests", "docs"))
    for path in [tree, *tree.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    (tree / "config" / ".faceswap").write_text(json.dumps({"backend": "cpu"}))
    return Faceswap(tree, root)


"""Real Faceswap in the test suite: its source tree, its own venv, and a job runner.

The tests here run Faceswap itself (``../shared/faceswap``, its own Keras 3.14.1 on CPU torch)
as a subprocess in a second venv, ``.fsvenv``, which ``make faceswap-venv`` creates from
``tests/integration/requirements-faceswap.txt`` (``make test`` does it when the Faceswap tree
exists). fsprec itself runs in the test process. Every test here carries the ``faceswap``
marker; when the tree or the venv is missing they skip and say which.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

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


class Faceswap:
    """Writable copies of the Faceswap tree and a way to run driver jobs in its venv.

    Faceswap writes ``config/train.ini`` in its tree, so each concurrent driver process gets a
    tree of its own; jobs are independent, so a run is split over :data:`WORKERS` processes
    (one per core: loading and saving models is single-threaded, and is most of the time).
    """

    def __init__(self, tree: Path, work: Path) -> None:
        self.trees = [tree]
        self.work = work
        self._runs = 0

    def run(self, jobs: list[dict]) -> list[dict]:
        """Run jobs (see faceswap_driver.py) in Faceswap processes; one report per job, in
        the jobs' order."""
        self._runs += 1
        count = max(1, min(WORKERS, len(jobs)))
        while len(self.trees) < count:
            tree = self.trees[0].with_name(f"faceswap_{len(self.trees)}")
            shutil.copytree(self.trees[0], tree)
            self.trees.append(tree)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env |= {"KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}
        running = []
        for worker in range(count):
            jobs_file = self.work / f"jobs_{self._runs}_{worker}.json"
            report_file = self.work / f"reports_{self._runs}_{worker}.json"
            jobs_file.write_text(json.dumps(jobs[worker::count]))
            proc = subprocess.Popen([str(FSVENV / "bin" / "python"), str(DRIVER),
                                     str(jobs_file), str(report_file)], cwd=self.trees[worker],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True)
            running.append((proc, report_file))
        failures, reports = [], [{}] * len(jobs)
        for worker, (proc, report_file) in enumerate(running):
            try:
                _, stderr = proc.communicate(timeout=_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
            if proc.returncode != 0 or not report_file.is_file():
                failures.append(f"Faceswap driver failed ({proc.returncode}):\n{stderr[-4000:]}")
            else:
                reports[worker::count] = json.loads(report_file.read_text())
        if failures:
            raise AssertionError("\n".join(failures))
        return reports

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


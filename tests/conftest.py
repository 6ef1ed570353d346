"""Shared test set-up: offscreen Qt, the shared fixtures, writable copies, folder snapshots."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Under pytest-xdist (one worker per core) each worker's TensorFlow, torch and OpenMP get their
# share of the cores instead of all of them: more threads than cores only wait for each other.
XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
CORES_PER_WORKER = max(1, (os.cpu_count() or 1) // XDIST_WORKERS)
if XDIST_WORKERS > 1:
    for _name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(_name, str(CORES_PER_WORKER))

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("FSPREC_FIXTURES", REPO.parent / "shared" / "fixtures"))
HAVE_FIXTURES = (FIXTURES / "fs3").is_dir()
needs_fixtures = pytest.mark.skipif(
    not HAVE_FIXTURES, reason=f"shared Faceswap fixtures not found at {FIXTURES} "
                              "(set FSPREC_FIXTURES)")


FRAMEWORKS = ("keras", "tensorflow", "torch", "jax")
QT = ("PySide6", "shiboken6", "pyqtgraph")


def import_blocker(names: tuple[str, ...]) -> str:
    """Python code to run first in a child: importing any of ``names`` then raises
    ("blocked: NAME ..."), so a hidden import on a path that must not need it fails loudly."""
    return ("import importlib.abc, sys\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {tuple(names)!r}:\n"
            "            raise ImportError(f'blocked: {name} imported on a path that must not "
            "need it')\n"
            "sys.meta_path.insert(0, Block())\n")


def run_cli_blocked(argv: list[str], env: dict[str, str] | None = None
                    ) -> subprocess.CompletedProcess:
    """``fsprec ARGV`` in a child process where Keras, its backends and Qt cannot be imported."""
    code = import_blocker(FRAMEWORKS + QT) + (
        "from fsprec.core.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)],
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
                               **(env or {})},
                          cwd=REPO, capture_output=True, text=True, check=False)


_KILLED_CONVERSION = """
import importlib, os, sys
folder, count, patched = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls = [0]
def die_after(func):
    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] > count:
            os._exit(9)
        return func(*args, **kwargs)
    return wrapper
for spec in patched:
    module, path = spec.split(":")
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    setattr(owner, name, die_after(getattr(owner, name)))
from fsprec.core import convert
convert.convert(folder, "mixed_float16")
"""


def convert_killed(folder: Path, count: int, *patched: str) -> None:
    """Convert ``folder`` to mixed_float16 in a child process that dies (``os._exit``) at the
    call after ``count`` calls of the functions ``patched`` (``module:attribute.path``); fails
    the test when the child lived to the end (the kill point was never reached)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run([sys.executable, "-c", _KILLED_CONVERSION, str(folder), str(count),
                            *patched], env=env, cwd=REPO, check=False)
    assert child.returncode == 9, f"no kill after {count} calls of {patched}"


def fixture_names(kind: str) -> list[str]:
    """Fixture folder names under ``fs3`` or ``fs2`` ([] when the fixtures are absent)."""
    root = FIXTURES / kind
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def fixture_path(name: str) -> Path:
    """``fs3/original-fp32`` -> its folder, skipping the test when fixtures are absent."""
    path = FIXTURES / name
    if not path.is_dir():
        pytest.skip(f"fixture {name} not found under {FIXTURES}")
    return path


def copy_tree(source: Path, dest: Path) -> Path:
    """A writable copy of a (read-only) fixture folder."""
    shutil.copytree(source, dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return dest


@pytest.fixture
def copy_fixture(tmp_path: Path):
    """Copy a shared fixture folder into tmp and return the copy."""
    def make(name: str) -> Path:
        return copy_tree(fixture_path(name), tmp_path / name.replace("/", "_"))
    return make


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with its sha256 (to prove nothing changed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- GUI tests (test_gui_*.py) -----------------------------------------------------------------
# Qt is imported only by the fixtures below, when a GUI test asks for them.

@pytest.fixture
def no_dangling_threads(monkeypatch):
    """Fail the test if a QThread it started is still running at teardown."""
    from PySide6.QtCore import QThread
    from shiboken6 import isValid

    started = []
    original = QThread.start

    def start(thread, *args):
        started.append(thread)
        return original(thread, *args)

    monkeypatch.setattr(QThread, "start", start)
    yield started
    running = [t.objectName() for t in started if isValid(t) and t.isRunning()]
    assert not running, f"QThreads still running at teardown: {running}"


@pytest.fixture
def gui_settings(tmp_path, qapp):
    """App settings in a throw-away ini file (never the user's own)."""
    from PySide6.QtCore import QSettings

    from fsprec.gui.app import create_app
    from fsprec.gui.prefs import AppSettings

    create_app([])
    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


class MessageBoxes(list):
    """(kind, title, text) of each message box shown; ``details`` holds the detailed text of
    each box that was shown with ``exec``."""

    def __init__(self) -> None:
        super().__init__()
        self.details: list[str] = []


@pytest.fixture
def message_boxes(monkeypatch):
    """Record QMessageBox calls instead of blocking on them; ``question`` answers Yes."""
    from PySide6.QtWidgets import QMessageBox

    shown = MessageBoxes()

    def record(kind, answer=QMessageBox.StandardButton.Ok):
        def show(parent, title, text, *args, **kwargs):
            shown.append((kind, title, text))
            return answer
        return show

    def exec_(box):
        shown.append(("exec", box.windowTitle(), box.text()))
        shown.details.append(box.detailedText())
        return QMessageBox.StandardButton.Ok

    for kind in ("critical", "warning", "information"):
        monkeypatch.setattr(QMessageBox, kind, record(kind))
    monkeypatch.setattr(QMessageBox, "question",
                        record("question", QMessageBox.StandardButton.Yes))
    monkeypatch.setattr(QMessageBox, "exec", exec_)
    return shown


@pytest.fixture
def window(no_dangling_threads, gui_settings, message_boxes, qtbot, tmp_path, monkeypatch):
    """The main window with throw-away settings, data folder and home (its first start looks
    for Faceswap there, never in the user's); closed (jobs joined) after."""
    from fsprec.gui.main_window import MainWindow

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("USERPROFILE", raising=False)

    win = MainWindow(gui_settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()

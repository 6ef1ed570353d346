"""Other programs using a model folder: a running ``faceswap.py train`` on it, or any process
holding its model or state file open (found with psutil, on Linux, Windows and macOS; imported
when first asked, which a conversion does beside its copy)."""
from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType


def _psutil() -> tuple[ModuleType, tuple[type[Exception], ...]]:
    """psutil, and the errors of a process that ended or that this user may not see."""
    import psutil
    return psutil, (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError)


@dataclass(frozen=True)
class Process:
    """A process that uses the model folder."""

    pid: int
    name: str


def _model_dir(cmdline: list[str]) -> str | None:
    """The ``-m/--model-dir`` argument of a ``faceswap.py train`` command line, else None."""
    script = next((i for i, arg in enumerate(cmdline) if Path(arg).name == "faceswap.py"), None)
    if script is None or "train" not in cmdline[script + 1:script + 2]:
        return None
    args = cmdline[script + 2:]
    for index, arg in enumerate(args):
        if arg in ("-m", "--model-dir"):
            return args[index + 1] if index + 1 < len(args) else None
        if arg.startswith("--model-dir="):
            return arg.split("=", 1)[1]
        if arg.startswith("-m") and not arg.startswith("--"):
            return arg[2:]
    return None


def _same(path: str | Path, folder: Path) -> bool:
    with suppress(OSError):
        return os.path.samefile(path, folder)
    return False


def faceswap_training(folder: str | Path) -> Process | None:
    """The ``faceswap.py train`` process whose model folder is ``folder``, else None."""
    folder = Path(folder)
    psutil, gone = _psutil()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with suppress(*gone):
            model_dir = _model_dir(proc.info["cmdline"] or [])
            if model_dir is None:
                continue
            if not os.path.isabs(model_dir):
                model_dir = os.path.join(proc.cwd(), model_dir)
            if _same(model_dir, folder):
                return Process(proc.pid, "faceswap.py train")
    return None


def holding_open(files: Iterable[Path],
                 ours: Callable[[], Collection[int]] = frozenset) -> Process | None:
    """Another process that has one of ``files`` open (as far as this user may see), else None.
    This process does not count, nor the pids ``ours()`` gives (fsprec's own readers). It is
    asked for each process before its files are read (one of ours may end meanwhile) and again
    at a match (one forked while the look goes on may be listed before it is registered)."""
    wanted = set()
    for path in files:
        with suppress(OSError):
            stat = os.stat(path)
            wanted.add((stat.st_dev, stat.st_ino))
    if not wanted:
        return None
    psutil, gone = _psutil()
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.pid == os.getpid() or proc.pid in ours():
            continue
        with suppress(*gone):
            for handle in proc.open_files():
                with suppress(OSError):
                    stat = os.stat(handle.path)
                    if (stat.st_dev, stat.st_ino) in wanted and proc.pid not in ours():
                        return Process(proc.pid, proc.info["name"] or "?")
    return None


def training_message(folder: str | Path) -> str | None:
    """"Faceswap is training this model (pid N)." when it is, else None (for inspect and the
    GUI)."""
    found = faceswap_training(folder)
    return f"Faceswap is training this model (pid {found.pid})." if found else None

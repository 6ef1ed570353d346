"""Find Faceswap model folders under a root folder, quickly (configs only, no weights)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import faceswap
from .errors import FsprecError
from .modelfile import open_model
from .task import Task

_SKIP_DIR = re.compile(rf"(^\.|_logs$|{faceswap.ARCHIVE_DIR.pattern}|^__pycache__$)")


@dataclass
class ScanEntry:
    """One model folder found by :func:`scan`."""

    path: Path
    plugin: str = ""
    format: str = ""
    precision: str = ""
    iterations: int = 0
    size: int = 0
    has_backup: bool = False
    is_snapshot: bool = False
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``fsprec scan --json``."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in vars(self).items()}


def human_size(size: int) -> str:
    """A byte count for people: 1 decimal, binary units (as Windows Explorer shows it)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _looks_like_model_folder(files: list[str]) -> bool:
    return any(name.endswith((".keras", ".h5")) and not name.endswith(("_inference.keras",
                                                                      "_inference.h5"))
               for name in files)


def _entry(folder: Path) -> ScanEntry:
    entry = ScanEntry(folder, is_snapshot=bool(faceswap.SNAPSHOT_DIR.search(folder.name)))
    try:
        model = open_model(folder)
    except FsprecError as err:
        entry.problem = str(err)
        return entry
    entry.plugin, entry.format = model.plugin, model.format
    entry.precision, entry.iterations = model.precision, model.iterations
    entry.size = model.model_file.stat().st_size
    entry.has_backup = any(faceswap.is_model_backup(p) for p in model.backups)
    entry.problem = model.state_problem
    return entry


def scan(root: str | Path, task: Task | None = None) -> list[ScanEntry]:
    """Every model folder under ``root`` (``root`` itself included), sorted by path."""
    task = task or Task()
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FsprecError(f"{root} is not a folder.")
    found: list[ScanEntry] = []
    for visited, (current, dirs, files) in enumerate(os.walk(root, onerror=lambda err: None),
                                                     start=1):
        task.check()
        dirs[:] = sorted(d for d in dirs if not _SKIP_DIR.search(d))
        task.progress("Scanning folders", visited, 0)
        if _looks_like_model_folder(files):
            found.append(_entry(Path(current)))
    return sorted(found, key=lambda e: str(e.path))

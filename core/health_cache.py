"""A small JSON cache of weight checks, keyed by model file path, size and mtime.

It lets the model browser show a health badge after a restart without reading any weights
again. The cache lives in the user's cache folder (``FSPREC_CACHE_DIR`` overrides it), is
replaced atomically (a temp file, then ``os.replace``; no fsync: a cache lost in a power cut is
rebuilt) and holds at most :data:`MAX_ENTRIES` models; a damaged cache is ignored.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from . import atomic

MAX_ENTRIES = 512
FILE_NAME = "health.json"
_LOCK = threading.Lock()  # the GUI checks several models on worker threads


def cache_dir() -> Path:
    """The folder of fsprec's cache files."""
    if os.environ.get("FSPREC_CACHE_DIR"):
        return Path(os.environ["FSPREC_CACHE_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / \
            "fsprec" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "fsprec"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fsprec"


def _key(model_file: Path) -> tuple[str, int, int] | None:
    try:
        info = model_file.stat()
    except OSError:
        return None
    return str(model_file.resolve()), info.st_size, info.st_mtime_ns


class HealthCache:
    """Weight-check results per model file; an entry is valid while size and mtime match."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / FILE_NAME

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, model_file: Path) -> dict[str, Any] | None:
        """The stored check of ``model_file``, or None when absent or out of date."""
        key = _key(model_file)
        if key is None:
            return None
        with _LOCK:
            entry = self._load().get(key[0])
        if not isinstance(entry, dict) or [entry.get("size"), entry.get("mtime_ns")] != \
                [key[1], key[2]]:
            return None
        check = entry.get("check")
        return check if isinstance(check, dict) else None

    def put(self, model_file: Path, check: dict[str, Any]) -> None:
        """Store the check of ``model_file`` (silently skipped where the cache cannot be
        written: it only saves time)."""
        key = _key(model_file)
        if key is None:
            return
        with _LOCK:
            data = self._load()
            data.pop(key[0], None)
            data[key[0]] = {"size": key[1], "mtime_ns": key[2], "check": check}
            while len(data) > MAX_ENTRIES:
                data.pop(next(iter(data)))
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = atomic.temp_path(self.path)
                tmp.write_text(json.dumps(data), "utf-8")
                os.replace(tmp, self.path)
            except OSError:
                pass

"""Faceswap's naming rules for the files of a model folder (facts from its source, no logic).

A folder ``<dir>`` holds ``<plugin>.keras`` (Faceswap 3) or ``<plugin>.h5`` (Faceswap 2),
``<plugin>_state.json``, ``.bk`` backups beside each file, ``<plugin>_logs/session_<N>/``
(TensorBoard) and, after a restore, ``<plugin>_archived_<YYYYmmdd_HHMMSS>``; snapshots are
sibling folders ``<dir>_snapshot_<N>_iters``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

MODEL_SUFFIXES = (".keras", ".h5")
BACKUP_SUFFIX = ".bk"
MODEL_BACKUP_SUFFIXES = tuple(f"{s}{BACKUP_SUFFIX}" for s in MODEL_SUFFIXES)
ARCHIVE_DIR = re.compile(r"_archived_\d{8}_\d{6}$")
SNAPSHOT_DIR = re.compile(r"_snapshot_(\d+)_iters$")


def state_file(folder: Path, plugin: str) -> Path:
    """``<plugin>_state.json`` in ``folder``."""
    return folder / f"{plugin}_state.json"


def logs_dir(folder: Path, plugin: str) -> Path:
    """The TensorBoard folder ``<plugin>_logs`` in ``folder``."""
    return folder / f"{plugin}_logs"


def backup_of(path: Path) -> Path:
    """The ``.bk`` backup Faceswap keeps beside ``path``."""
    return path.with_name(f"{path.name}{BACKUP_SUFFIX}")


def backed_up(backup: Path) -> Path:
    """The file a ``.bk`` backup is the backup of."""
    return backup.with_name(backup.name.removesuffix(BACKUP_SUFFIX))


def is_model_backup(path: Path) -> bool:
    """True for ``<plugin>.keras.bk`` or ``<plugin>.h5.bk``."""
    return path.name.endswith(MODEL_BACKUP_SUFFIXES)


def archive_dir(folder: Path, plugin: str, when: datetime) -> Path:
    """Where a restore archives the live files: ``<plugin>_archived_<YYYYmmdd_HHMMSS>``."""
    return folder / f"{plugin}_archived_{when:%Y%m%d_%H%M%S}"


def snapshot_glob(folder: Path) -> str:
    """A glob, relative to the folder's parent, for its ``<dir>_snapshot_<N>_iters`` folders."""
    return f"{glob_escape(folder.name)}_snapshot_*_iters"


def snapshots_of(folder: Path) -> list[Path]:
    """The snapshot folders beside ``folder``, fewest iterations first."""
    found = [p for p in folder.parent.glob(snapshot_glob(folder))
             if p.is_dir() and SNAPSHOT_DIR.search(p.name)]
    return sorted(found, key=lambda p: int(SNAPSHOT_DIR.search(p.name).group(1)))


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped (folder names may hold ``[``)."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def state_bytes(state: dict[str, Any]) -> bytes:
    """A state document serialised as Faceswap writes it (2-space indent, ASCII, no newline)."""
    return json.dumps(state, indent=2).encode("utf-8")


def state_layer_names(names: list[str]) -> list[str]:
    """``mixed_precision_layers`` as Faceswap's ``State`` holds them once it has loaded them.

    A legacy fix for CLIP layer names rewrites every ``.`` to ``_`` when any stored name has
    a dot (and Faceswap then saves the state so). Layers whose real names keep a dot, like
    Phaze-A's zero-rate Dropouts ``0.0_1``, therefore never match again: Faceswap's switch
    leaves them in their old policy.
    """
    if any("." in name for name in names):
        return [name.replace(".", "_") for name in names]
    return list(names)


STATE_KEYS = ("name", "sessions", "lowest_avg_loss", "iterations", "mixed_precision_layers",
              "lr_finder", "config")


def saved_state(state: dict[str, Any], plugin: str) -> dict[str, Any]:
    """The state document as Faceswap's ``State.save`` writes it after loading ``state``.

    Its keys in Faceswap's order (others dropped, missing ones at Faceswap's defaults), only
    the sessions that trained an iteration, a legacy per-side ``lowest_avg_loss`` summed, the
    layer names as :func:`state_layer_names` holds them.
    """
    sessions = state.get("sessions", {})
    lowest = state.get("lowest_avg_loss", 0.0)
    return {"name": state.get("name", plugin),
            "sessions": {key: value for key, value in sessions.items()
                         if isinstance(value, dict) and value.get("iterations", 0) > 0},
            "lowest_avg_loss": sum(lowest.values()) if isinstance(lowest, dict) else lowest,
            "iterations": state.get("iterations", 0),
            "mixed_precision_layers": state_layer_names(state.get("mixed_precision_layers", [])),
            "lr_finder": state.get("lr_finder", -1.0),
            "config": state.get("config", {})}

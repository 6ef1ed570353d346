"""Faceswap's ``<plugin>_state.json``: read and write it exactly as Faceswap does.

Faceswap writes the state with ``json.dumps(state, indent=2)`` (ASCII, no trailing newline).
Every field we do not change keeps its value and its place in the key order.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import bounds, structure
from .errors import FsprecError
from .faceswap import state_bytes


class State:
    """A ``<plugin>_state.json`` document.

    Mirrors the part of Faceswap's ``State`` that precision work needs:
    ``mixed_precision_layers`` and ``config["mixed_precision"]``.
    """

    def __init__(self, data: dict[str, Any], path: Path | None = None) -> None:
        self.data = data
        self.path = path

    @classmethod
    def load(cls, path: Path) -> State:
        """Read a state file; raise :class:`FsprecError` when it is not a Faceswap state."""
        path = Path(path)
        what = f"The state file {path.name}"
        try:
            with open(path, "rb") as handle:
                raw = handle.read(bounds.MAX_STATE + 1)
        except OSError as err:
            raise FsprecError(f"{what} cannot be read ({err.strerror or err}).") from err
        data = structure.state(bounds.loads(raw, what, bounds.MAX_STATE), what)
        return cls(data, Path(path))

    @property
    def mixed_precision_layers(self) -> list[str]:
        """Layer names that can switch between float32 and a mixed policy."""
        return list(self.data.get("mixed_precision_layers", []))

    def add_mixed_precision_layers(self, names: Iterable[str]) -> None:
        """Store the switchable layer names (Faceswap fills this once and keeps it)."""
        self.data["mixed_precision_layers"] = list(names)

    @property
    def mixed_precision(self) -> bool | None:
        """The ``config.mixed_precision`` flag, or None when the state has none."""
        value = self.data.get("config", {}).get("mixed_precision")
        return None if value is None else bool(value)

    @mixed_precision.setter
    def mixed_precision(self, value: bool) -> None:
        self.data.setdefault("config", {})["mixed_precision"] = bool(value)

    @property
    def iterations(self) -> int:
        """Training iterations recorded in the state (0 when absent)."""
        value = self.data.get("iterations", 0)
        return value if isinstance(value, int) else 0

    @property
    def sessions(self) -> dict[str, Any]:
        """Training sessions keyed by their id (as strings, as stored)."""
        value = self.data.get("sessions", {})
        return value if isinstance(value, dict) else {}

    def to_bytes(self) -> bytes:
        """Serialise exactly as Faceswap's JSON serializer does."""
        return state_bytes(self.data)

"""Faceswap's ``<faceswap>/config/train.ini``: its ``mixed_precision`` option.

At each training start Faceswap applies this option over the model's state and switches the
model back if they differ, so a conversion must either update it or warn about it. Updates
change the value on that one line and keep every other byte of the file.
"""
from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_atomic
from .errors import FsprecError

SECTION = "global"
OPTION = "mixed_precision"


def locate(path: str | Path) -> Path:
    """``train.ini`` from either its own path or a Faceswap folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "config" / "train.ini"
    if not path.is_file():
        raise FsprecError(f"No Faceswap train.ini at {path}; give the Faceswap folder or the "
                          "path of config/train.ini.")
    return path


@dataclass(frozen=True)
class TrainIni:
    """The ``mixed_precision`` setting of a Faceswap ``train.ini``."""

    path: Path
    mixed_precision: bool | None

    def status(self, target_mixed: bool) -> str:
        """One sentence on what Faceswap will do with a model switched to ``target_mixed``."""
        wanted = "on" if target_mixed else "off"
        if self.mixed_precision is None:
            return f"{self.path} has no mixed_precision option; Faceswap will use its default."
        if self.mixed_precision == target_mixed:
            return f"Faceswap's train.ini already has mixed_precision {wanted}."
        return (f"Faceswap's train.ini has mixed_precision "
                f"{'on' if self.mixed_precision else 'off'}: Faceswap will switch the model "
                f"back at the next training start unless it is set {wanted}.")


def read(path: str | Path) -> TrainIni:
    """Read the ``mixed_precision`` option of a ``train.ini`` (or a Faceswap folder)."""
    path = locate(path)
    parser = configparser.ConfigParser(allow_no_value=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as err:
        raise FsprecError(f"{path} is not a readable train.ini: {err}") from err
    if not parser.has_option(SECTION, OPTION):
        return TrainIni(path, None)
    try:
        return TrainIni(path, parser.getboolean(SECTION, OPTION))
    except ValueError as err:
        raise FsprecError(f"{path}: mixed_precision is not a true/false value.") from err


_OPTION_LINE = re.compile(rf"^(\s*{OPTION}\s*[=:]\s*)(\S+)(\s*)$")


def write_mixed_precision(path: str | Path, value: bool) -> TrainIni:
    """Set ``mixed_precision`` in the ``[global]`` section, atomically."""
    path = locate(path)
    current = read(path)
    if current.mixed_precision is None:
        raise FsprecError(f"{path} has no mixed_precision option in [global] to update; "
                          "open Faceswap's training settings once to create it.")
    lines = path.read_bytes().decode("utf-8").splitlines(keepends=True)
    section = None
    for index, line in enumerate(lines):
        header = re.match(r"^\s*\[([^\]]+)\]", line)
        if header:
            section = header.group(1).strip()
            continue
        match = _OPTION_LINE.match(line.rstrip("\r\n"))
        if section == SECTION and match:
            ending = line[len(line.rstrip("\r\n")):]
            lines[index] = f"{match.group(1)}{value}{match.group(3)}{ending}"
            break
    write_atomic(path, "".join(lines).encode("utf-8"))
    return read(path)

"""Faceswap's ``<faceswap>/config/train.ini``: its ``mixed_precision`` option.

At each training start Faceswap applies this option over the model's state and switches the
model back if they differ, so a conversion must either update it or warn about it. Updates
back the file up first (``train.ini.bk``), then change the value on that one line and keep
every other byte of the file.

:func:`find_faceswap` locates a Faceswap install without being told where; :func:`next_start`
says in one line what Faceswap will do with a converted model when it next starts training.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .atomic import write_atomic
from .errors import FsprecError

SECTION = "global"
OPTION = "mixed_precision"
FACESWAP_ENV = "FSPREC_FACESWAP"
DEFAULT_MIXED = False  # Faceswap's default for mixed_precision (its train.ini before any edit)


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
    import configparser  # here: not on every command's start

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
    """Set ``mixed_precision`` in the ``[global]`` section, atomically, after a ``.bk`` copy."""
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
    write_atomic(path.with_name(f"{path.name}.bk"), path.read_bytes())
    write_atomic(path, "".join(lines).encode("utf-8"))
    return read(path)


# --- Where is Faceswap, and what will it do? ------------------------------------------------

def is_faceswap_tree(folder: Path) -> bool:
    """True for a Faceswap install: ``faceswap.py`` and a ``config`` folder side by side."""
    return (folder / "faceswap.py").is_file() and (folder / "config").is_dir()


def usual_places(home: Path | None = None, env: Mapping[str, str] | None = None) -> list[Path]:
    """Where Faceswap's installers put it: ``~/faceswap`` on Linux and macOS (its setup
    scripts), ``%USERPROFILE%\\faceswap`` on Windows (its NSIS installer)."""
    env = os.environ if env is None else env
    homes = [home or Path.home()]
    if env.get("USERPROFILE"):
        homes.append(Path(env["USERPROFILE"]))
    return [h / "faceswap" for h in dict.fromkeys(homes)]


def find_faceswap(model_dir: str | Path | None = None, setting: str | Path | None = None,
                  env: Mapping[str, str] | None = None,
                  places: Iterable[Path] | None = None) -> Path | None:
    """The Faceswap install to check, or None when none is found.

    In order: ``setting`` (the GUI's Faceswap folder), ``$FSPREC_FACESWAP``, a Faceswap tree
    that is the models folder or one of its parents, or a ``faceswap`` folder beside one of
    them, then :func:`usual_places`. ``setting`` and the variable may name the Faceswap folder
    or its ``config/train.ini``.
    """
    env = os.environ if env is None else env
    for given in (setting, env.get(FACESWAP_ENV)):
        if given:
            path = Path(given).expanduser()
            return path.parents[1] if path.is_file() else path
    candidates: list[Path] = []
    if model_dir is not None:
        for folder in [Path(model_dir).expanduser().resolve(),
                       *Path(model_dir).expanduser().resolve().parents]:
            candidates += [folder, folder / "faceswap"]
    candidates += list(places) if places is not None else usual_places(env=env)
    return next((c for c in candidates if is_faceswap_tree(c)), None)


Verdict = Literal["keep", "switch_back", "not_found"]


@dataclass(frozen=True)
class NextStart:
    """What Faceswap will do with a model of some precision at its next training start."""

    verdict: Verdict
    line: str
    faceswap: Path | None = None
    train_ini: Path | None = None  # the file to update (None when there is none to update)

    @property
    def can_update(self) -> bool:
        """True when updating ``train.ini`` would make Faceswap keep the model."""
        return self.verdict == "switch_back" and self.train_ini is not None


def next_start(target_mixed: bool, model_dir: str | Path | None = None,
               setting: str | Path | None = None, env: Mapping[str, str] | None = None,
               places: Iterable[Path] | None = None) -> NextStart:
    """One line on what Faceswap will do with a model switched to ``target_mixed``.

    Raises :class:`FsprecError` when a given Faceswap folder or train.ini is not one.
    """
    folder = find_faceswap(model_dir, setting, env, places)
    if folder is None:
        return NextStart("not_found", "Faceswap not found: it may switch this model back at "
                         "its next start unless its train.ini has mixed_precision "
                         f"{target_mixed}.")
    ini_path = folder / "config" / "train.ini"
    if not ini_path.is_file() and not is_faceswap_tree(folder):
        raise FsprecError(f"{folder} is not a Faceswap folder (no faceswap.py and config/).")
    stored = read(ini_path).mixed_precision if ini_path.is_file() else None
    value = DEFAULT_MIXED if stored is None else stored
    if value == target_mixed:
        return NextStart("keep", f"Faceswap will keep this ({ini_path} has mixed_precision "
                         f"{value}).", folder)
    updatable = ini_path if stored is not None else None
    fix = ("update train.ini (recommended)" if updatable
           else f"set mixed_precision {target_mixed} in Faceswap's training settings")
    return NextStart("switch_back", f"Faceswap will switch the model back at its next start "
                     f"({ini_path} has mixed_precision {value}) — {fix}.", folder, updatable)

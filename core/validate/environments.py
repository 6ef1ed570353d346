"""Find the Python of Faceswap's own environment, to run validation in (no Keras here).

Faceswap's install guide and its Windows installer make a conda environment named
``faceswap`` (under Anaconda, Miniconda or Miniforge); a source install may use a virtual
environment inside the Faceswap folder. These are the candidates, newest conventions first;
only existing interpreters are returned.
"""
from __future__ import annotations

import os
from pathlib import Path

CONDA_ROOTS = ("miniconda3", "anaconda3", "miniforge3", "mambaforge", "MiniConda3", "Anaconda3")
ENV_NAME = "faceswap"
VENV_NAMES = (".venv", "venv", "env")


def _interpreters(prefix: Path) -> list[Path]:
    """Where an environment at ``prefix`` keeps its python (POSIX, then Windows)."""
    return [prefix / "bin" / "python", prefix / "python.exe", prefix / "Scripts" / "python.exe"]


def faceswap_pythons(faceswap_dir: str | Path | None = None,
                     home: str | Path | None = None) -> list[Path]:
    """Existing interpreters that are likely Faceswap's, most likely first."""
    home = Path(home) if home is not None else Path.home()
    prefixes = [home / root / "envs" / ENV_NAME for root in CONDA_ROOTS]
    conda = os.environ.get("CONDA_EXE")  # .../miniconda3/bin/conda
    if conda:
        prefixes.insert(0, Path(conda).resolve().parent.parent / "envs" / ENV_NAME)
    if faceswap_dir is not None:
        prefixes += [Path(faceswap_dir) / name for name in VENV_NAMES]
    found: list[Path] = []
    for prefix in prefixes:
        for python in _interpreters(prefix):
            if python.is_file() and os.access(python, os.X_OK) and python not in found:
                found.append(python)
    return found

"""The architecture's seams, checked at run time (the static ones are lint-imports contracts):
the app's start and the file commands never import a deep-learning framework, and the
validation parent side never loads its child package."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FRAMEWORKS, REPO, fixture_path, import_blocker

# Runs first in the child: importing any framework raises, so a hidden import fails loudly.
BLOCKER = import_blocker(FRAMEWORKS)


def run_blocked(code: str, tmp_path: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    return subprocess.run([sys.executable, "-c", BLOCKER + code], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_validation_parent_side_loads_nothing_of_the_child(tmp_path: Path) -> None:
    child = run_blocked("import sys, fsprec.core.validate\n"
                        "print(sorted(m for m in sys.modules if '.child' in m or "
                        "m.startswith('fsprec.core.keras')))", tmp_path)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [
    ["inspect", "{model}", "--json"],
    ["scan", "{root}"],
    ["nan-scan", "{model}"],
    ["convert", "{model}", "--to", "mixed_float16", "--yes"],
    ["restore", "{model}"],
])
def test_file_commands_need_no_framework(command: list[str], tmp_path: Path,
                                         copy_fixture) -> None:
    model = copy_fixture("fs3/original-fp32-backup")
    argv = [part.format(model=model, root=model.parent) for part in command]
    child = run_blocked(f"from fsprec.core.cli import main\nraise SystemExit(main({argv!r}))",
                        tmp_path)
    assert "blocked:" not in child.stderr, child.stderr
    assert child.returncode == 0, child.stderr


def test_gui_start_needs_no_framework(tmp_path: Path) -> None:
    shot = tmp_path / "window.png"
    child = run_blocked("import os, sys\nfrom fsprec.gui.app import main\n"
                        f"os.environ['FSPREC_SCREENSHOT'] = {str(shot)!r}\n"
                        "raise SystemExit(main(['fsprec-gui', '--demo']))", tmp_path)
    assert "blocked:" not in child.stderr, child.stderr
    assert child.returncode == 0, child.stderr
    assert shot.stat().st_size > 0  # the window came up with the demo model in it


def test_a_framework_import_on_those_paths_would_be_caught(tmp_path: Path) -> None:
    """The blocker itself works: the guard above can fail."""
    child = run_blocked("import keras", tmp_path)
    assert child.returncode != 0 and "blocked: keras" in child.stderr


def test_inspect_a_real_fixture_without_keras(tmp_path: Path) -> None:
    model = fixture_path("fs2/lightweight-fp32")
    child = run_blocked("from fsprec.core.cli import main\n"
                        f"raise SystemExit(main(['inspect', {str(model)!r}]))", tmp_path)
    assert child.returncode == 0, child.stderr
    assert "lightweight" in child.stdout


def test_the_child_contract_names_every_parent_module() -> None:
    """A new parent-side validation module is covered by the import contract."""
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    child = next(c for c in contracts["contracts"] if "validation child" in c["name"]
                 and "fsprec.core.validate.child" in c["forbidden_modules"])
    parent = {f"fsprec.core.validate.{p.stem}" for p in (REPO / "core" / "validate").glob("*.py")
              if p.stem != "__init__"}
    assert parent <= set(child["source_modules"])

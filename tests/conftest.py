"""Shared test set-up: offscreen Qt, the shared fixtures, writable copies, folder snapshots."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("FSPREC_FIXTURES", REPO.parent / "shared" / "fixtures"))
HAVE_FIXTURES = (FIXTURES / "fs3").is_dir()
needs_fixtures = pytest.mark.skipif(
    not HAVE_FIXTURES, reason=f"shared Faceswap fixtures not found at {FIXTURES} "
                              "(set FSPREC_FIXTURES)")


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

"""On a file system that shares extents (XFS, btrfs), a conversion shares the weights' blocks
with the original instead of copying them; elsewhere it copies, silently.

Runs on loop-mounted XFS and btrfs images: needs root, ``mkfs.xfs`` / ``mkfs.btrfs``
(Debian: xfsprogs, btrfs-progs), ``mount`` and ``filefrag``; skips with the reason otherwise.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from factory import PLUGIN, make_keras3
from fsprec.core import atomic, convert, nanscan

MODEL = f"{PLUGIN}.keras"


def _missing(fs: str) -> str | None:
    if not sys.platform.startswith("linux"):
        return "loop mounts are Linux only"
    if os.geteuid() != 0:
        return "mounting a loop image needs root"
    for tool in (f"mkfs.{fs}", "mount", "umount", "filefrag"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: xfsprogs / btrfs-progs / e2fsprogs)"
    return None


@pytest.fixture(params=["xfs", "btrfs"])
def cow_folder(request, tmp_path):
    """An empty folder on a freshly made, loop-mounted XFS or btrfs file system."""
    fs = request.param
    if reason := _missing(fs):
        pytest.skip(reason)
    image, mount = tmp_path / f"{fs}.img", tmp_path / "mnt"
    with open(image, "wb") as handle:
        handle.truncate(512 * 1024 * 1024)
    mount.mkdir()
    made = subprocess.run([f"mkfs.{fs}", "-q", "-f", str(image)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"mkfs.{fs} failed: {made.stderr.strip()[:200]}")
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot loop-mount an image here: {mounted.stderr.strip()[:200]}")
    try:
        yield mount / "model"
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def shared_blocks(path: Path) -> int:
    """How many of ``path``'s blocks are shared with another file (from filefrag)."""
    out = subprocess.run(["filefrag", "-v", str(path)], capture_output=True, text=True,
                         check=True).stdout
    total = 0
    for line in out.splitlines():
        fields = line.split(":")
        if "shared" in line and len(fields) >= 4:
            total += int(fields[3].strip())
    return total


def _weights(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("model.weights.h5")


def test_conversion_shares_the_weights_blocks(cow_folder):
    folder = make_keras3(cow_folder)
    weights = _weights(folder / MODEL)
    convert.convert(folder, "mixed_float16")
    assert _weights(folder / MODEL) == weights
    assert shared_blocks(folder / MODEL) * 4096 >= len(weights) - 2 * 4096
    assert nanscan.scan_weights(folder).clean  # the shared copy reads back, CRC and all


def test_portable_mode_copies_instead(cow_folder, monkeypatch):
    monkeypatch.setenv(atomic.PORTABLE_ENV, "1")
    folder = make_keras3(cow_folder)
    weights = _weights(folder / MODEL)
    convert.convert(folder, "mixed_float16")
    assert _weights(folder / MODEL) == weights and shared_blocks(folder / MODEL) == 0

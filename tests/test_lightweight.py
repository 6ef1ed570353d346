"""The file engine runs on h5py + numpy alone and never reads weight data to inspect."""
from __future__ import annotations

import io
import multiprocessing
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from conftest import REPO, run_cli_blocked
from factory import make_keras3
from fsprec.core import open_model
from fsprec.core.archive import MemberWindow



def test_cli_works_without_keras_or_qt(tmp_path):
    folder = make_keras3(tmp_path / "m")
    for argv in (["inspect", folder], ["convert", folder, "--to", "mixed_float16", "--yes"],
                 ["nan-scan", folder], ["scan", tmp_path], ["restore", folder]):
        run = run_cli_blocked(argv)
        assert run.returncode == 0, run.stderr
    assert open_model(folder).precision == "float32"  # restored


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guard's child is forked "
                    "on Linux only, so the counter reaches it there")
def test_inspection_reads_no_weight_data(tmp_path, monkeypatch):
    """A 64 MB kernel is counted in the parameters without its bytes being read."""
    folder = make_keras3(tmp_path / "m", optimizer=False)
    path = folder / "tiny.keras"
    archive = zipfile.ZipFile(path)
    members = [(i, archive.read(i.filename)) for i in archive.infolist()]
    buffer = io.BytesIO(dict((i.filename, d) for i, d in members)["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        h5["layers/functional/layers/dense/vars"].create_dataset(
            "2", data=np.ones((4096, 4096), "float32"))
    with zipfile.ZipFile(path, "w") as out:
        for info, data in members:
            out.writestr(info, buffer.getvalue() if info.filename == "model.weights.h5" else data)
    read = multiprocessing.get_context("fork").Value("q", 0)  # counted in the guard's child too
    real = MemberWindow.readinto

    def counting(self, buffer):
        count = real(self, buffer)
        with read.get_lock():
            read.value += count
        return count
    monkeypatch.setattr(MemberWindow, "readinto", counting)
    model = open_model(folder)
    dense = next(leaf for leaf in model.leaves() if leaf.path == "encoder/dense")
    assert dense.params == 128 * 16 + 16 + 4096 * 4096
    assert path.stat().st_size > 64_000_000
    assert 0 < read.value < 1_000_000


def test_a_keras3_command_reads_the_hdf5_only_in_the_guard(tmp_path):
    """inspect and convert of a .keras leave h5py and numpy to the guard's child: the main
    process starts ~0.1-0.2 s sooner, and never opens the untrusted HDF5 itself."""
    folder = make_keras3(tmp_path / "m")
    code = ("import sys\nfrom fsprec.core.cli import main\n"
            "for argv in (['inspect', sys.argv[1]],\n"
            "             ['convert', sys.argv[1], '--to', 'mixed_float16', '--yes']):\n"
            "    assert main(argv) == 0, argv\n"
            "print(sorted({'h5py', 'numpy'} & set(sys.modules)))\n")
    run = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                         text=True, cwd=REPO, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"
    assert open_model(folder).precision == "mixed_float16"

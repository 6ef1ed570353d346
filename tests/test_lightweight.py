"""The file engine runs on h5py + numpy alone and never reads weight data to inspect."""
from __future__ import annotations

import io
import zipfile

import h5py
import numpy as np

from conftest import run_cli_blocked
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
    read = [0]
    real = MemberWindow.readinto

    def counting(self, buffer):
        count = real(self, buffer)
        read[0] += count
        return count
    monkeypatch.setattr(MemberWindow, "readinto", counting)
    model = open_model(folder)
    dense = next(leaf for leaf in model.leaves() if leaf.path == "encoder/dense")
    assert dense.params == 128 * 16 + 16 + 4096 * 4096
    assert path.stat().st_size > 64_000_000
    assert 0 < read[0] < 1_000_000

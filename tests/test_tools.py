"""NaN/Inf scan, restore from backup, folder scan, train.ini, and the CLI around them."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import FIXTURES, fixture_path, needs_fixtures, snapshot
from factory import make_keras2, make_keras3
from fsprec.core import FsprecError, convert, nanscan, open_model, restore, scan, traincfg
from fsprec.core.cli import main


def plant_keras3(folder: Path, layer_key: str, values: dict[tuple, float]) -> None:
    """Write non-finite values into one layer's kernel inside the .keras zip."""
    path = folder / "tiny.keras"
    archive = zipfile.ZipFile(path)
    members = [(i, archive.read(i.filename)) for i in archive.infolist()]
    buffer = io.BytesIO(dict((i.filename, d) for i, d in members)["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        kernel = h5[f"layers/{layer_key}/vars/0"]
        data = kernel[()]
        for index, value in values.items():
            data[index] = value
        kernel[()] = data
    with zipfile.ZipFile(path, "w") as out:
        for info, data in members:
            out.writestr(info, buffer.getvalue() if info.filename == "model.weights.h5" else data)


def test_nan_scan_finds_planted_values_per_layer(tmp_path, monkeypatch):
    folder = make_keras3(tmp_path / "m")
    plant_keras3(folder, "functional/layers/dense",
                 {(0, 0): np.nan, (5, 3): np.nan, (127, 15): np.inf})
    monkeypatch.setattr(nanscan, "CHUNK_ELEMENTS", 64)  # many slabs: exercises streaming
    report = nanscan.scan_weights(folder)
    assert not report.clean
    bad = report.bad_layers
    assert [(b.layer, b.nan, b.inf) for b in bad] == [("encoder/dense", 2, 1)]
    assert bad[0].size == 128 * 16 + 16


def test_nan_scan_keras2_and_cli_exit_codes(tmp_path, capsys):
    folder = make_keras2(tmp_path / "m")
    assert main(["nan-scan", str(folder)]) == 0
    assert "are finite" in capsys.readouterr().out
    with h5py.File(folder / "tiny.h5", "r+") as h5:
        h5["model_weights/decoder_b/face_out_b_0_conv2d/bias:0"][1] = -np.inf
    assert main(["nan-scan", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] is False
    bad = [item for item in report["layers"] if not item["clean"]]
    assert bad == [{"layer": "decoder_b/face_out_b_0_conv2d", "size": 219, "nan": 0, "inf": 1,
                    "clean": False}]


@needs_fixtures
def test_nan_scan_on_fixtures_counts_every_weight():
    report = nanscan.scan_weights(fixture_path("fs2/dfl_sae-fp32-opt"))
    assert report.clean
    assert sum(item.size for item in report.layers) == open_model(
        fixture_path("fs2/dfl_sae-fp32-opt")).weights.total_params


def test_restore_archives_and_brings_back_the_backup(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    original = snapshot(folder)
    convert.convert(folder, "mixed_float16")
    converted_model = (folder / "tiny.keras").read_bytes()
    (folder / "tiny_logs" / "session_1").mkdir(parents=True)
    (folder / "tiny_logs" / "session_1" / "events").write_text("log")
    assert restore.can_restore(folder)
    assert main(["restore", str(folder)]) == 0
    assert "Restored tiny.keras, tiny_state.json" in capsys.readouterr().out
    now = snapshot(folder)
    assert now["tiny.keras"] == original["tiny.keras"]
    assert now["tiny_state.json"] == original["tiny_state.json"]
    archive = next(folder.glob("tiny_archived_*"))
    assert (archive / "tiny.keras").read_bytes() == converted_model  # nothing deleted
    assert (archive / "tiny_logs" / "session_1" / "events").exists()
    assert open_model(folder).precision == "float32"


@needs_fixtures
def test_restore_faceswap_made_backups_with_logs(copy_fixture):
    folder = copy_fixture("fs3/original-fp32-trained")
    bk = (folder / "original.keras.bk").read_bytes()
    result = restore.restore(folder)
    assert (folder / "original.keras").read_bytes() == bk
    assert (result.archive_dir / "original_logs").is_dir()
    sessions = json.loads((folder / "original_state.json").read_text())["sessions"]
    for key in sessions:
        assert (folder / "original_logs" / f"session_{key}").is_dir()


def test_restore_without_backup(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    before = snapshot(folder)
    assert not restore.can_restore(folder)
    assert main(["restore", str(folder)]) == 2
    assert "No model backup" in capsys.readouterr().err
    assert snapshot(folder) == before


def test_scan_lists_models_with_details(tmp_path, capsys):
    make_keras3(tmp_path / "root" / "a")
    make_keras2(tmp_path / "root" / "deep" / "b", mixed=True)
    convert.convert(tmp_path / "root" / "a", "mixed_float16")
    (tmp_path / "root" / "broken").mkdir()
    (tmp_path / "root" / "broken" / "x.keras").write_text("no")
    (tmp_path / "root" / "notes").mkdir()
    entries = scan.scan(tmp_path / "root")
    by_name = {e.path.name: e for e in entries}
    assert sorted(by_name) == ["a", "b", "broken"]
    assert by_name["a"].precision == "mixed_float16" and by_name["a"].has_backup
    assert by_name["a"].iterations == 7 and by_name["a"].size > 0
    assert by_name["b"].format == "keras2" and not by_name["b"].has_backup
    assert "not a valid .keras" in by_name["broken"].problem
    assert main(["scan", str(tmp_path / "root"), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


@needs_fixtures
def test_scan_fixture_tree():
    entries = scan.scan(FIXTURES)
    assert len(entries) == len(list(FIXTURES.glob("fs*/*/")))
    assert all(e.problem is None for e in entries)


def test_train_ini_edit_keeps_every_other_byte(tmp_path):
    ini = tmp_path / "train.ini"
    text = ("[global]\r\n# comment = mixed_precision\r\nmixed_precision = True\r\n"
            "[model.x]\r\nmixed_precision = True\r\n")
    ini.write_bytes(text.encode())
    assert traincfg.read(ini).mixed_precision is True
    traincfg.write_mixed_precision(ini, False)
    assert ini.read_bytes() == text.replace("mixed_precision = True\r\n[model",
                                            "mixed_precision = False\r\n[model").encode()
    assert traincfg.read(ini).mixed_precision is False
    with pytest.raises(FsprecError, match="No Faceswap train.ini"):
        traincfg.read(tmp_path / "nowhere")


def test_inspect_json_contract(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    assert main(["inspect", str(folder), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for key in ("format", "plugin", "model_file", "state_file", "keras_version", "precision",
                "eligible_source", "layers", "eligible", "iterations"):
        assert key in doc
    assert doc["format"] == "keras3" and doc["plugin"] == "tiny" and doc["iterations"] == 7
    layer = next(item for item in doc["layers"] if item["path"] == "encoder/dense")
    assert layer == {"path": "encoder/dense", "name": "dense", "class_name": "Dense",
                     "dtype_policy": "float32", "eligible": True, "reason": "stored in state",
                     "params": 128 * 16 + 16}
    sub = next(item for item in doc["layers"] if item["path"] == "encoder")
    assert sub["dtype_policy"] is None


def test_cli_convert_reports_and_is_idempotent(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    assert main(["convert", str(folder), "--to", "mixed_float16", "--yes", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["changed"] == 11 and doc["precision"] == "mixed_float16"
    assert [Path(p).name for p in doc["backups"]] == ["tiny.keras.bk", "tiny_state.json.bk"]
    assert main(["convert", str(folder), "--to", "mixed_float16", "--yes"]) == 0
    assert "already mixed_float16" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(folder), "--to", "float16"])
    assert exc.value.code == 2

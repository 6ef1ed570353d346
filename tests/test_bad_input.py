"""Bad input gets one clear sentence (exit 2) and the folder's bytes stay as they were."""
from __future__ import annotations

import errno
import json
import os
import shutil
import zipfile
from pathlib import Path

import h5py
import pytest

from conftest import snapshot
from factory import flip_stored_byte, make_keras2, make_keras3
from fsprec.core import FsprecError, convert, open_model
from fsprec.core.cli import main


def assert_refused(capsys, folder: Path, argv: list[str], message: str) -> None:
    """The CLI exits 2 with one clear line on stderr and leaves every byte unchanged."""
    before = snapshot(folder)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert snapshot(folder) == before


def test_truncated_keras(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    data = (folder / "tiny.keras").read_bytes()
    (folder / "tiny.keras").write_bytes(data[: len(data) // 2])
    assert_refused(capsys, folder, ["inspect", str(folder)], "not a valid .keras file")
    assert_refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
                   "not a valid .keras file")


def test_not_a_zip(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    (folder / "tiny.keras").write_text("hello")
    assert_refused(capsys, folder, ["inspect", str(folder)], "not a valid .keras file")


def test_zip_without_keras_members(tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    with zipfile.ZipFile(folder / "tiny.keras", "w") as archive:
        archive.writestr("readme.txt", "not a model")
    assert_refused(capsys, folder, ["inspect", str(folder)], "not a Keras 3 model")


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["kernel-copy", "portable-copy"])
def test_corrupt_weights_member(tmp_path, capsys, monkeypatch, kernel_copy):
    """A flipped byte inside the weights: conversion refuses and changes nothing."""
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    folder = make_keras3(tmp_path / "m", optimizer=False)
    flip_stored_byte(folder / "tiny.keras", "model.weights.h5", 0xFF)
    assert_refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
                   "CRC mismatch")


def test_corrupt_h5(tmp_path, capsys):
    folder = make_keras2(tmp_path / "m")
    (folder / "tiny.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    assert_refused(capsys, folder, ["inspect", str(folder)], "not a readable HDF5 file")


def test_h5_that_is_not_keras(tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    with h5py.File(folder / "tiny.h5", "w") as h5:
        h5.create_dataset("x", data=[1, 2, 3])
    assert_refused(capsys, folder, ["inspect", str(folder)], "no model_config")


def test_config_that_is_not_a_model(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m", optimizer=False)
    path = folder / "tiny.keras"
    members = {i.filename: zipfile.ZipFile(path).read(i.filename)
               for i in zipfile.ZipFile(path).infolist()}
    members["config.json"] = json.dumps({"class_name": "Dense", "config": {}}).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert_refused(capsys, folder, ["inspect", str(folder)], "does not hold a Keras model config")


def test_two_models_in_one_folder(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    shutil.copy(folder / "tiny.keras", folder / "other.keras")
    assert_refused(capsys, folder, ["inspect", str(folder)], "more than one model")


def test_empty_folder_and_missing_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert_refused(capsys, tmp_path / "empty", ["inspect", str(tmp_path / "empty")],
                   "No Faceswap model")
    assert main(["inspect", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_malformed_state_refuses_conversion(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    (folder / "tiny_state.json").write_text("[1, 2")
    assert main(["inspect", str(folder)]) == 0  # still opens, flagged
    assert "cannot be read" in capsys.readouterr().out
    assert_refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
                   "cannot be read")


def test_missing_state_converts_model_only(tmp_path):
    folder = make_keras3(tmp_path / "m")
    (folder / "tiny_state.json").unlink()
    result = convert.convert(folder, "mixed_float16")
    assert result.state_file is None
    assert any("Only the model file" in m for m in result.messages)
    assert open_model(folder).precision == "mixed_float16"


def test_unknown_pin_and_ineligible_pin(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    assert_refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16",
                                    "--pin", "nosuch", "--yes"], "No layer named 'nosuch'")
    assert_refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16",
                                    "--pin", "face_out_a_0", "--yes"], "cannot be pinned")
    assert_refused(capsys, folder, ["convert", str(folder), "--to", "float32",
                                    "--pin", "dense", "--yes"], "no meaning")


def test_unknown_layer_classes_still_open_and_convert(tmp_path):
    """Custom classes fsprec has never seen are plain JSON to the file engine."""
    folder = make_keras3(tmp_path / "m", optimizer=False)
    path = folder / "tiny.keras"
    archive = zipfile.ZipFile(path)
    members = {i.filename: archive.read(i.filename) for i in archive.infolist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][2]["config"]["layers"][1]["class_name"] = "MyFancyConv"
    config["config"]["layers"][2]["config"]["layers"][1]["module"] = "plugins.custom"
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as out:
        for name, data in members.items():
            out.writestr(name, data)
    convert.convert(folder, "mixed_float16")
    leaf = next(item for item in open_model(folder).leaves() if item.class_name == "MyFancyConv")
    assert leaf.dtype_policy == "mixed_float16"


def test_read_only_folder(tmp_path, capsys, monkeypatch):
    folder = make_keras3(tmp_path / "m")
    if os.geteuid() != 0:
        folder.chmod(0o555)
    else:  # root ignores permissions: make the folder refuse new files the way a RO mount does
        real_write = Path.write_bytes

        def refuse(self, data):
            if self.parent == folder:
                raise OSError(errno.EROFS, "Read-only file system")
            return real_write(self, data)
        monkeypatch.setattr(Path, "write_bytes", refuse)
    try:
        assert_refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16",
                                        "--yes"], "read-only")
    finally:
        folder.chmod(0o755)


def test_not_enough_disk_space(tmp_path, capsys, monkeypatch):
    folder = make_keras3(tmp_path / "m")
    usage = shutil.disk_usage(folder)
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: usage._replace(free=1000))
    assert_refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
                   "Not enough disk space")


def test_disk_full_while_writing(tmp_path, monkeypatch):
    """ENOSPC half way through the temp file: a clear error, no temp left, nothing changed."""
    from fsprec.core import archive
    folder = make_keras3(tmp_path / "m")
    before = snapshot(folder)
    real = archive._copy_range

    def full(src, dst, start, length, *args, **kwargs):
        if length > 10000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, start, length, *args, **kwargs)
    monkeypatch.setattr(archive, "_copy_range", full)
    with pytest.raises(FsprecError, match="No space left on device"):
        convert.convert(folder, "mixed_float16")
    assert snapshot(folder) == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("damage,message", [
    (lambda layers: layers.__setitem__(2, 7), "layer 3 of the encoder is not an object"),
    (lambda layers: layers[1].__setitem__("class_name", 12),
     "layer 2 of the encoder has a class name that is not text"),
    (lambda layers: layers[1]["config"].__setitem__("name", ["x"]),
     "layer 2 of the encoder has a name that is not text"),
    (lambda layers: layers[1].__setitem__("inbound_nodes", "x"),
     "layer 2 of the encoder has inbound nodes that are not a list"),
])
def test_a_malformed_layer_is_named_by_its_place(tmp_path, capsys, damage, message):
    """The structure is checked once, up front: the sentence says where the damage is."""
    folder = make_keras3(tmp_path / "m")
    path = folder / "tiny.keras"
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    config = json.loads(dict((i.filename, d) for i, d in members)["config.json"])
    encoder = next(e for e in config["config"]["layers"] if e.get("name") == "encoder")
    damage(encoder["config"]["layers"])
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            archive.writestr(info, json.dumps(config) if info.filename == "config.json" else data)
    for argv in (["inspect", str(folder)], ["convert", str(folder), "--to", "mixed_float16",
                                            "--yes"]):
        assert_refused(capsys, folder, argv, message)

"""The demo model (core/demo.py): a faithful Faceswap 3 folder written without Keras."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from conftest import FIXTURES, HAVE_FIXTURES
from fsprec.core import convert, demo, nanscan, open_model


def test_demo_opens_with_a_faceswap_layer_tree(tmp_path):
    folder = demo.write_demo(tmp_path / "demo")
    model = open_model(folder)
    assert (model.plugin, model.format, model.keras_version) == ("original", "keras3", "3.14.1")
    assert (model.precision, model.eligible_source, model.state_problem) == \
        ("float32", "state", None)
    tree = model.layer_tree()
    assert [top.name for top in tree] == ["face_in_a", "face_in_b", "encoder", "decoder_a",
                                          "decoder_b"]
    leaves = model.leaves()
    assert (len(model.eligible), len(leaves)) == (35, 42)  # the shape of Faceswap's Original
    kept = {leaf.name: leaf.reason for leaf in leaves if not leaf.eligible}
    assert kept["face_out_a_0"].startswith("output activation")
    assert all(reason == "input layer" for name, reason in kept.items() if "input" in name)
    classes = {leaf.class_name for leaf in leaves}
    assert {"PixelShuffler", "Conv2D", "Dense", "LeakyReLU", "Reshape", "Flatten"} <= classes
    assert all(leaf.params > 0 for leaf in leaves if leaf.class_name in ("Conv2D", "Dense"))
    assert nanscan.scan_weights(folder).clean


def test_demo_is_written_once(tmp_path):
    first = demo.ensure_demo(tmp_path)
    stamp = (first / "original.keras").stat().st_mtime_ns
    assert demo.ensure_demo(tmp_path) == first
    assert (first / "original.keras").stat().st_mtime_ns == stamp


def policies(model) -> list[tuple[str, str | None]]:
    return [(leaf.path, leaf.dtype_policy) for leaf in model.leaves(with_params=False)]


def test_demo_converts_losslessly_both_ways(tmp_path):
    folder = demo.write_demo(tmp_path / "demo")
    original = (folder / "original.keras").read_bytes()
    written = open_model(folder)
    convert.convert(folder, "mixed_float16")
    mixed = open_model(folder)
    assert mixed.precision == "mixed_float16" and mixed.state.mixed_precision
    with zipfile.ZipFile(io.BytesIO(original)) as before, \
            zipfile.ZipFile(folder / "original.keras") as after:
        assert before.read("model.weights.h5") == after.read("model.weights.h5")
    convert.convert(folder, "float32")
    assert policies(open_model(folder)) == policies(written)


def test_demo_uses_the_fixtures_file_layout(tmp_path):
    folder = demo.write_demo(tmp_path / "demo")
    with zipfile.ZipFile(folder / "original.keras") as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["metadata.json", "config.json",
                                               "model.weights.h5"]
        assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
        config = json.loads(archive.read("config.json"))
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    assert weights["vars"].attrs["name"] == "original"
    assert weights["layers/functional/vars"].attrs["name"] == "encoder"
    assert weights["layers/functional/layers/pixel_shuffler/vars"].attrs["name"] == \
        "upscale_64_0_pixelshuffler"
    assert weights["layers/functional_2/layers/conv2d_3/vars/0"].shape == (5, 5, 16, 3)
    encoder = config["config"]["layers"][2]
    shuffler = encoder["config"]["layers"][-1]
    assert (shuffler["module"], shuffler["registered_name"]) == ("lib.model.layers",
                                                                 "PixelShuffler")
    assert encoder["config"]["layers"][0]["config"]["dtype"] == "float32"  # InputLayer form
    assert shuffler["config"]["dtype"]["class_name"] == "DTypePolicy"
    if HAVE_FIXTURES:  # same keys, in the same order, as Faceswap's own Original
        with zipfile.ZipFile(FIXTURES / "fs3/original-fp32/original.keras") as archive:
            real = json.loads(archive.read("config.json"))
        real_encoder = real["config"]["layers"][2]
        assert list(real) == list(config) and list(real_encoder) == list(encoder)
        for real_layer, layer in zip(real_encoder["config"]["layers"],
                                     encoder["config"]["layers"], strict=True):
            assert list(real_layer) == list(layer)
            assert list(real_layer["config"]) == list(layer["config"])


def test_demo_is_written_without_keras(tmp_path):
    code = ("import sys; from fsprec.core import demo; demo.write_demo(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('keras', 'tensorflow', 'torch', 'jax', 'PySide6')))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d")],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_demo_loads_and_runs_in_keras_in_both_precisions(tmp_path):
    pytest.importorskip("keras")
    from fsprec.core.keras.loading import load_keras_model

    folder = demo.write_demo(tmp_path / "demo")
    batch = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    model = load_keras_model(folder)
    outputs = [np.asarray(o) for o in model([batch, batch])]
    assert [o.shape for o in outputs] == [(2, 64, 64, 3)] * 2
    assert all(np.isfinite(o).all() and 0 < o.mean() < 1 for o in outputs)  # sigmoid faces
    convert.convert(folder, "mixed_float16")
    mixed = load_keras_model(folder)
    assert mixed.get_layer("encoder").get_layer("dense").dtype_policy.name == "mixed_float16"
    assert all(np.asarray(o).dtype == np.float32 for o in mixed([batch, batch]))

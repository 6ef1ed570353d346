"""Forward parity with Faceswap's own code: each compat class, and whole Phaze-A variants.

- Layers: ``faceswap_layers.py`` runs in the Faceswap venv (Keras 3.14.1, torch) and compares
  every compat class with Faceswap's own, every constructor option its plugins use, float32
  and mixed_float16, the same random weights.
- Models: Faceswap builds small Phaze-A variants through its own plugin code from train.ini
  options (the forms the issue found off: RMS/instance bottleneck norms, fc upsamplers incl.
  upscale_hybrid, resize_images decoders, group/batch/instance decoder norms, split decoders,
  learn_mask, shared_fc, fs_original_use_alt, a max-pooling bottleneck, MobileNet and
  EfficientNet encoders without ImageNet weights) and runs them on fixed inputs; fsprec loads
  the saved folder without any Faceswap code on torch and TensorFlow and must match.

The numbers go in docs/parity.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES

from .conftest import FSVENV, REPO, Faceswap

LAYER_TOLERANCE = 1e-5  # relative L2, float32
FP16_TOLERANCE = 2.0 ** -10  # float16's machine epsilon
MODEL_TOLERANCE = 1e-4  # relative L2, whole float32 models (the fixtures' contract)

SMALL = {"output_size": 64, "enc_scaling": 20, "bottleneck_size": 32, "fc_min_filters": 32,
         "fc_max_filters": 32, "fc_upsample_filters": 32, "fc_gblock_min_nodes": 32,
         "fc_gblock_max_nodes": 32, "dec_min_filters": 32, "dec_max_filters": 64,
         "fs_original_min_filters": 16, "fs_original_max_filters": 32,
         "fs_original_depth": 3}
VARIANTS: dict[str, dict[str, dict]] = {
    "rms_hybrid_resize_group_icnr_convaware_reflect": {
        "global": {"icnr_init": True, "conv_aware_init": True, "reflect_padding": True},
        "model.phaze_a": {"bottleneck_norm": "rms", "fc_upsampler": "upscale_hybrid",
                          "dec_upscale_method": "resize_images", "dec_norm": "group",
                          # Faceswap's GroupNormalization needs channels divisible by 32
                          "dec_min_filters": 64, "dec_max_filters": 64}},
    "instance_sharedfc_split_mask_maxpool_alt": {
        "global.loss": {"learn_mask": True},
        "model.phaze_a": {"bottleneck_norm": "instance", "shared_fc": "full",
                          "split_decoders": True, "bottleneck_type": "max_pooling",
                          "fs_original_use_alt": True, "fc_upsampler": "subpixel",
                          "dec_norm": "instance"}},
    "layer_fast_batch_dny": {
        "model.phaze_a": {"bottleneck_norm": "layer", "fc_upsampler": "upscale_fast",
                          "dec_upscale_method": "upscale_dny", "dec_norm": "batch",
                          "shared_fc": "half", "split_fc": False}},
    "mobilenet_v2_resize_rms": {
        "model.phaze_a": {"enc_architecture": "mobilenet_v2", "enc_load_weights": False,
                          "fc_upsampler": "resize_images", "dec_norm": "rms",
                          "bottleneck_type": "average_pooling"}},
    "efficientnet_b0_flatten_layer": {
        "model.phaze_a": {"enc_architecture": "efficientnet_b0", "enc_load_weights": False,
                          "bottleneck_type": "flatten", "dec_norm": "layer",
                          "fc_upsampler": "upsample2d"}},
}
# TensorFlow runs the variants with transposed convolutions (upscale_hybrid and resize_images
# blocks: kernel 3, stride 2, "same"), where fsprec aligns the output as Faceswap's torch did
# under Keras 3.14 on a code path of its own per backend. Every other layer of the variants
# computes with the same Keras ops on both backends, and tests/test_keras_compat.py runs each
# compat class on TensorFlow in the main suite; those variants run on torch only.
TENSORFLOW_VARIANTS = ("rms_hybrid_resize_group_icnr_convaware_reflect",
                       "mobilenet_v2_resize_rms")
BACKEND_CASES = [(name, "torch") for name in VARIANTS] + [
    (name, "tensorflow") for name in TENSORFLOW_VARIANTS]


def _fsprec_path(root: Path) -> Path:
    """A folder that makes ``fsprec`` importable in the Faceswap venv (this checkout)."""
    package = root / "fsprec"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    link = package / "core"
    if not link.exists():
        link.symlink_to(REPO / "core", target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def layer_rows(faceswap: Faceswap) -> dict:
    report = faceswap.work / "layers.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {"KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": str(_fsprec_path(faceswap.work / "pkg"))}
    proc = subprocess.run([str(FSVENV / "bin" / "python"),
                           str(Path(__file__).with_name("faceswap_layers.py")), str(report)],
                          cwd=faceswap.tree, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(report.read_text())


def test_every_compat_layer_matches_faceswaps(layer_rows: dict) -> None:
    assert layer_rows["backend"] == "torch" and layer_rows["keras"].startswith("3.14")
    rows = layer_rows["rows"]
    assert {r["policy"] for r in rows} == {"float32", "mixed_float16"}
    off = [(r["class"], r["options"], r["policy"], r["error"]) for r in rows
           if r["error"] > (LAYER_TOLERANCE if r["policy"] == "float32" else FP16_TOLERANCE)
           or r["dtype"] != r["faceswap_dtype"]]
    assert not off, off
    assert all(r["weights_match"] for r in rows)
    assert all(r["missing_config_keys"] == [] for r in rows)
    # fsprec saves GroupNormalization's data_format, which Faceswap's class drops (a
    # channels_first layer would come back channels_last); nothing else is extra.
    assert {r["class"]: r["extra_config_keys"] for r in rows if r["extra_config_keys"]} == {
        "GroupNormalization": ["data_format"]}


def test_seeded_initializers_equal_faceswaps(layer_rows: dict) -> None:
    kernels = layer_rows["initializers"]
    assert {k["class"] for k in kernels} == {"ConvolutionAware", "ICNR"}
    assert [k for k in kernels if not k["identical"]] == []


def _run_in_faceswap(faceswap: Faceswap, script: str, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {"KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": str(_fsprec_path(faceswap.work / "pkg"))}
    proc = subprocess.run([str(FSVENV / "bin" / "python"), str(Path(__file__).with_name(script)),
                           *args], cwd=faceswap.tree, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_keras2_upgrade_equals_faceswaps_legacy_updater(faceswap: Faceswap) -> None:
    """Every Faceswap 2 fixture: fsprec's upgraded config is Faceswap 3's, entry by entry
    (InputLayer dtype forms aside), and both build the same layers and shapes."""
    models = sorted(str(p) for p in (FIXTURES / "fs2").glob("*/*.h5"))
    if not models:
        pytest.skip(f"no Faceswap 2 fixtures under {FIXTURES}")
    report = faceswap.work / "upgrade.json"
    _run_in_faceswap(faceswap, "faceswap_upgrade.py", str(report), *models)
    rows = json.loads(report.read_text())
    assert [(r["model"], r["differences"][:5]) for r in rows if r["differences"]] == []
    assert all(r["same_build"] for r in rows)


@pytest.fixture(scope="module")
def variants(faceswap: Faceswap) -> dict[str, Path]:
    """Each Phaze-A variant built, saved and run by Faceswap: ``{name: model folder}``."""
    folders = {name: faceswap.work / "variants" / name for name in VARIANTS}
    jobs = []
    for name, folder in folders.items():
        folder.mkdir(parents=True)
        ini = {section: dict(options) for section, options in VARIANTS[name].items()}
        ini["model.phaze_a"] = SMALL | ini.get("model.phaze_a", {})
        jobs.append({"model_dir": str(folder), "plugin": "phaze_a", "mixed": False, "steps": 0,
                     "save": True, "ini": ini, "forward": str(folder / "faceswap_outputs.npz")})
    for name, report in zip(folders, faceswap.run(jobs), strict=True):
        assert report["error"] is None, f"Faceswap could not build {name}: {report['error']}"
    return folders


FORWARD = r"""
import json, sys
import numpy as np
from fsprec.core import load_keras_model
import keras
result = {"backend": keras.backend.backend()}
for folder in sys.argv[1:]:
    with np.load(f"{folder}/faceswap_outputs.npz") as npz:
        arrays = dict(npz)
    inputs = [arrays[f"input_{i}"] for i in range(sum(k.startswith("input_") for k in arrays))]
    model = load_keras_model(folder)
    outputs = model(inputs, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    errors = []
    for i, got in enumerate(outputs):
        want = arrays[f"output_{i}"].astype(np.float64)
        got = keras.ops.convert_to_numpy(got).astype(np.float64)
        errors.append(float(np.linalg.norm(got - want) / np.linalg.norm(want)))
    result[folder] = {"outputs": len(outputs), "expected": sum(k.startswith("output_")
                                                               for k in arrays),
                      "error": max(errors)}
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def model_errors(variants: dict[str, Path]) -> dict[str, dict]:
    """fsprec's load of the variants on torch and TensorFlow: ``{backend: {name: result}}``."""
    found = {}
    for backend in ("torch", "tensorflow"):
        names = [name for name, on in BACKEND_CASES if on == backend]
        proc = subprocess.run([sys.executable, "-c", FORWARD,
                               *(str(variants[name]) for name in names)],
                              env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True,
                              text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-4000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["backend"] == backend
        found[backend] = {name: result[str(variants[name])] for name in names}
    return found


@pytest.mark.parametrize(("name", "backend"), BACKEND_CASES)
def test_phaze_a_variant_matches_faceswap(model_errors: dict, backend: str, name: str) -> None:
    result = model_errors[backend][name]
    assert result["outputs"] == result["expected"]
    assert result["error"] <= MODEL_TOLERANCE, result


def test_variants_really_use_the_options(variants: dict[str, Path]) -> None:
    """Each variant holds the layer classes its options ask for (else the check is empty)."""
    from fsprec.core import open_model

    classes = {name: {layer.class_name for layer in open_model(folder).leaves(False)}
               for name, folder in variants.items()}
    assert {"RMSNormalization", "GroupNormalization", "KResizeImages",
            "ReflectionPadding2D"} <= classes["rms_hybrid_resize_group_icnr_convaware_reflect"]
    assert {"InstanceNormalization", "GlobalMaxPooling2D"} <= classes[
        "instance_sharedfc_split_mask_maxpool_alt"]
    assert "BatchNormalization" in classes["layer_fast_batch_dny"]
    assert "DepthwiseConv2D" in classes["mobilenet_v2_resize_rms"]
    assert "Rescaling" in classes["efficientnet_b0_flatten_layer"] or "Normalization" in \
        classes["efficientnet_b0_flatten_layer"]
    outputs = np.load(variants["instance_sharedfc_split_mask_maxpool_alt"]
                      / "faceswap_outputs.npz")
    assert sum(k.startswith("output_") for k in outputs.files) == 4  # learn_mask: 4 outputs

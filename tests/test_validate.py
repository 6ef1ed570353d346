"""Validation passes, run as the user runs them: a child process streaming JSON lines."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import FIXTURES, copy_tree, needs_fixtures
from keras_models import build_model_folder
from validation_samples import sample_result
from fsprec.core import Cancelled, FsprecError
from fsprec.core.cli import main
from fsprec.core.validate import (STAGES, Options, ValidationCrashed, ValidationResult, decide,
                                  options, run_validation)
from fsprec.core.validate import runner

QUICK = Options(steps=3)  # the CPU's quick preset: batch 2


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    return build_model_folder(tmp_path_factory.mktemp("healthy") / "model")


@pytest.fixture(scope="module")
def black_nan(tmp_path_factory) -> Path:
    """Finite on faces; NaN on a black frame in float16 (RMS normalisation, epsilon 1e-8)."""
    return build_model_folder(tmp_path_factory.mktemp("black") / "model", rms_norm=True)


@pytest.fixture(scope="module")
def risky(tmp_path_factory) -> Path:
    return build_model_folder(tmp_path_factory.mktemp("risky") / "model", overflow=True,
                              rms_norm=True)


@pytest.fixture(scope="module")
def healthy_result(healthy):
    events, stages = [], []
    result = run_validation(healthy, QUICK, on_progress=lambda *event: events.append(event),
                            on_stage=lambda stage, partial: stages.append((stage, partial)))
    return result, events, stages


def test_healthy_model_is_safe_and_says_where_it_ran(healthy_result):
    result, _, _ = healthy_result
    assert isinstance(result, ValidationResult)
    assert result.verdict.status == "safe"
    run = result.runtime
    assert (run.kind, run.backend, run.python) == ("cpu", "tensorflow", sys.executable)
    assert run.keras_version.startswith("3.")
    assert len(result.outputs) == 2
    for output in result.outputs:
        assert output.nonfinite_target == 0 and output.psnr_db > 40
        assert output.error_to_variation is None or output.error_to_variation < 0.1
    assert [s.name for s in result.stress] == ["black", "mid-grey", "white", "low contrast"]
    assert not any(s.new_nonfinite for s in result.stress)
    assert result.inputs.shapes == [[2, 16, 16, 3], [2, 16, 16, 3]]  # the quick preset
    # Harmless underflow never makes a healthy layer "at risk"; nothing in it is a config risk.
    assert [layer.path for layer in result.layers if layer.risk] == []
    assert result.config_risks == []


def test_training_check_on_tensorflow_and_speed(healthy_result):
    result, _, _ = healthy_result
    training = result.training
    assert training.steps == 3 and training.scaler == "keras LossScaleOptimizer"
    assert "not reproduced" in training.loss
    for run in (training.float32, training.target):
        assert len(run.loss) == 3 and all(loss > 0 for loss in run.loss)
    assert len(training.target.loss_scale) == 3 and training.float32.loss_scale is None
    assert not training.timed and training.target.images_per_s is None  # emulated on a CPU
    speed = result.speed
    assert speed.forward_float32_ips > 0 and speed.forward_target_ips > 0
    assert speed.speedup == pytest.approx(speed.forward_target_ips / speed.forward_float32_ips)
    assert speed.peak_memory_float32_mb is None and speed.train_target_ips is None


def test_stages_stream_partial_results_in_order(healthy_result):
    result, events, stages = healthy_result
    assert [name for name, _ in stages] == ["parity", "risk map", "training", "speed"]
    assert [name for name, _ in stages] == [s for s in STAGES if s != "auto-pin"]
    parity, risk_map, training, speed = (partial for _, partial in stages)
    assert parity.outputs and parity.layers is None and parity.verdict is None
    assert risk_map.layers and risk_map.training is None
    assert training.training and training.speed is None
    assert speed.speed and speed.verdict is None
    labels = list(dict.fromkeys(stage for stage, _, _ in events))
    assert labels == ["Loading model", "Output parity", "Training check", "Speed"]
    for label in labels:
        done = [d for s, d, _ in events if s == label]
        assert done == sorted(done) and done[-1] == [t for s, _, t in events if s == label][-1]
    assert ValidationResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_nan_on_a_black_frame_is_not_safe_without_the_normalisation_pinned(black_nan):
    result = run_validation(black_nan, Options(steps=0, speed=False))
    assert all(o.nonfinite_target == 0 for o in result.outputs)  # the faces are fine
    black = next(s for s in result.stress if s.name == "black")
    assert black.new_nonfinite and black.nonfinite_float32 == 0
    assert result.verdict.status == "safe_with_pins"
    assert result.verdict.pins == ["rms_norm"]
    assert "black input" in result.verdict.text
    layers = {layer.path: layer for layer in result.layers}
    assert layers["encoder/rms_norm"].risk == "nonfinite"
    assert [(r.path, r.outcome) for r in result.config_risks] == [("encoder/rms_norm",
                                                                    "pinned")]
    assert decide(replace(result, autopin=None)).status == "not_safe"


def test_overflow_is_flagged_and_auto_pin_finds_it(risky):
    result = run_validation(risky, Options(steps=0))
    layers = {layer.path: layer for layer in result.layers}
    assert layers["encoder/boost"].risk in ("overflow", "nonfinite")
    assert layers["encoder/boost"].max_abs > 65504
    assert not layers["encoder/conv_8_0_conv2d"].risk
    assert "epsilon" in layers["encoder/rms_norm"].config_risk
    assert sum(o.nonfinite_target for o in result.outputs) > 0
    assert result.verdict.status == "safe_with_pins" and result.autopin.passed
    assert set(result.verdict.pins) == {"boost", "shrink", "rms_norm"}
    assert decide(replace(result, autopin=None)).status == "not_safe"


def test_pins_found_really_fix_the_model(risky, tmp_path):
    """Converting with the suggested pins gives a model the validator calls safe; the
    epsilon risk then reads as pinned, never as an unexplained risk beside "safe"."""
    from fsprec.core import convert
    folder = copy_tree(risky, tmp_path / "pinned")
    convert.convert(folder, "mixed_float16", pins=["boost", "shrink", "rms_norm"])
    result = run_validation(folder, Options(steps=0, autopin=False, speed=False))
    assert result.verdict.status == "safe"
    assert [r.outcome for r in result.config_risks] == ["pinned"]
    assert "kept in float32" in result.verdict.text


def test_a_measured_harmless_config_risk_is_explained():
    """A config risk that the layer's own float16 run shows harmless is said so beside "safe",
    with what was measured."""
    from fsprec.core.validate.result import ConfigRisk
    result = sample_result(status="safe")
    measured = "alone in float16, its largest error is 0.1% of float32's RMS on the black input"
    result.config_risks = [ConfigRisk("encoder/rms_norm", "epsilon 1e-08 is 0 in float16",
                                      "harmless", measured)]
    verdict = decide(result)
    assert verdict.status == "safe"
    assert ("epsilon 1e-08 is 0 in float16, measured harmless on the faces and stress inputs "
            f"({measured})") in verdict.text


def test_a_failing_config_risk_is_a_problem_until_its_layer_is_pinned():
    """A layer whose own float16 output is wrong (finite, so no stress input shows Inf/NaN)
    makes the target not safe; kept in float32 it no longer counts."""
    from fsprec.core.validate.result import ConfigRisk
    result = sample_result(status="safe")
    result.config_risks = [ConfigRisk(
        "encoder/norm", "mean of squares over 65,536 values per image (|x| up to 1); float16 "
        "sums overflow past 65504", "harmful", "alone in float16, fed float32's inputs, its "
        "output is off by 100% of float32's RMS on the white input (at most 10% allowed)",
        fails=True)]
    verdict = decide(result)
    assert verdict.status == "not_safe"
    assert "encoder/norm (mean of squares over 65,536 values per image" in verdict.text
    assert "on the white input" in verdict.text
    assert replace(result, pins=["norm"]).problems() == []


GRAD_SCALER_RUN = r"""
import json
import numpy as np
import keras
from fsprec.core.validate.child import training

keras.config.set_dtype_policy("mixed_float16")
keras.utils.set_random_seed(1)
inputs = keras.Input((8, 8, 3))
x = keras.layers.Conv2D(3, 3, padding="same")(inputs)
outputs = keras.layers.Activation("sigmoid", dtype="float32")(x)
model = keras.Model(inputs, outputs)
faces = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
normal = ([faces], [faces])
planted = ([faces], [np.full_like(faces, 1e4)])  # float16 gradients overflow on this step
spec = training.optimizer_spec({"optimizer": "adam", "learning_rate": 1e-3})
kernel = model.trainable_variables[0]
seen = []
run, _ = training.torch_run(model, "mixed_float16", [normal, planted, normal], spec,
                            lambda step: seen.append(np.array(kernel.numpy())))
print(json.dumps({"scale": run.loss_scale, "skipped": run.skipped_steps, "loss": run.loss,
                  "moved": [bool(np.any(a != b)) for a, b in zip(seen, seen[1:])],
                  "optimizer": spec.description,
                  "float32": training.torch_run(model, "float32", [normal], spec)[0].loss_scale}))
"""


def test_grad_scaler_skips_an_overflowing_step_and_halves_its_scale():
    """Faceswap 3's loss scaling on torch: GradScaler at its defaults (2**16, back-off 0.5)."""
    pytest.importorskip("torch")
    from keras_support import run_torch
    found = run_torch(GRAD_SCALER_RUN)
    assert found["scale"] == [65536.0, 32768.0, 32768.0]
    assert found["skipped"] == 1
    assert found["moved"] == [False, True]  # the skipped step left the weights alone
    assert all(loss == loss for loss in found["loss"])  # the loss itself stayed finite
    assert found["optimizer"].startswith("adam (lr 0.001") and "model's state" in \
        found["optimizer"]
    assert found["float32"] is None  # no scaler in float32


def test_optimizer_from_the_state_only_when_reproducible():
    from fsprec.core.validate.child.training import optimizer_spec
    spec = optimizer_spec({"optimizer": "adamw", "learning_rate": 2e-5, "epsilon_exponent": -5,
                           "ada_beta_1": 0.5})
    assert (spec.name, spec.learning_rate, spec.epsilon, spec.betas) == \
        ("adamw", 2e-5, pytest.approx(1e-5), (0.5, 0.999))
    assert "from the model's state" in spec.description
    lion = optimizer_spec({"optimizer": "lion", "gradient_clipping": "autoclip"})
    assert lion.name == "adam" and lion.learning_rate == 5e-5
    assert "not reproduced" in lion.description and "'lion'" in lion.description
    assert "autoclip" in lion.description
    assert "records no optimizer" in optimizer_spec(None).description


def test_cancel_ends_the_child_within_a_second(healthy):
    cancel = threading.Event()
    started = threading.Event()
    outcome = {}

    def work():
        try:
            run_validation(healthy, QUICK, cancel=cancel, on_progress=lambda *e: started.set())
        except Cancelled as err:
            outcome["cancelled"] = err
    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(120)
    cancel.set()
    begun = time.perf_counter()
    thread.join(5)
    assert not thread.is_alive() and "cancelled" in outcome
    assert time.perf_counter() - begun < 1.5


def test_a_crashing_child_gives_a_clear_error(healthy, monkeypatch):
    monkeypatch.setattr(runner, "command", lambda *args: [
        sys.executable, "-c", "import os, sys; print('boom', file=sys.stderr); "
                              "os.kill(os.getpid(), 9)"])
    with pytest.raises(ValidationCrashed, match="killed .SIGKILL.*out of memory"):
        run_validation(healthy, QUICK)


def test_backend_auto_prefers_torch_and_a_missing_one_says_what_to_install(monkeypatch):
    present = {"keras", "torch", "tensorflow", "jax"}
    monkeypatch.setattr(options.importlib.util, "find_spec",
                        lambda name: object() if name in present else None)
    assert options.resolve_backend("auto") == "torch"
    present.discard("torch")
    assert options.resolve_backend("auto") == "tensorflow"
    present.discard("keras")  # a backend without Keras cannot validate
    with pytest.raises(FsprecError, match=r"pip install \"faceswap-precision\[torch\]\""):
        options.resolve_backend("auto")
    present.clear()
    with pytest.raises(FsprecError, match=r"pip install \"faceswap-precision\[torch\]\""):
        options.resolve_backend("auto")
    with pytest.raises(FsprecError,
                       match=r"jax backend is not installed.*faceswap-precision\[jax\]"):
        options.resolve_backend("jax")


def test_another_python_gets_only_fsprec_on_its_path(healthy, tmp_path):
    """A foreign Python finds fsprec's package through the child's path; one without Keras
    is refused with what it lacks, before a pass starts."""
    bare = Path(sys._base_executable)
    env = runner.child_env("cpu", {}, foreign=True)
    found = subprocess.run([str(bare), "-c", "import importlib.util as u, os; print(os.path."
                            "realpath(*u.find_spec('fsprec.core').submodule_search_locations))"],
                           env=env, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == str(Path(runner.__file__).resolve().parents[1])
    missing = subprocess.run([str(bare), "-c", "import keras"], capture_output=True)
    if missing.returncode == 0:
        pytest.skip(f"{bare} has Keras")
    with pytest.raises(FsprecError, match="lacks .*keras.*Faceswap's environment"):
        run_validation(healthy, QUICK, python=str(bare))
    with pytest.raises(FsprecError, match="is not a Python executable"):
        run_validation(healthy, QUICK, python=str(tmp_path / "nowhere"))


def test_where_links_cannot_be_made_the_child_path_holds_a_copy(monkeypatch, tmp_path):
    """Windows without the symlink privilege: the other Python gets a copy of fsprec's core."""
    monkeypatch.setattr(runner.tempfile, "gettempdir", lambda: str(tmp_path))

    def refuse(*args, **kwargs):
        raise OSError("symbolic links are not allowed here")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    core = Path(runner.child_path()) / "fsprec" / "core"
    assert not core.is_symlink() and (core / "validate" / "runner.py").is_file()
    assert (core / "convert.py").read_bytes() == \
        (Path(runner.__file__).resolve().parents[1] / "convert.py").read_bytes()
    assert not list(core.rglob("__pycache__"))


def test_the_parent_side_loads_no_child_and_no_framework():
    script = ("import sys, fsprec.core.validate, fsprec.core.validate.cli\n"
              "bad = [m for m in sys.modules if m.startswith('fsprec.core.validate.child') or "
              "m.split('.')[0] in ('keras', 'tensorflow', 'torch', 'jax', 'PIL')]\n"
              "print(bad)")
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "[]"


def test_faceswap_environments_are_found(tmp_path, monkeypatch):
    from fsprec.core.validate import faceswap_pythons
    monkeypatch.delenv("CONDA_EXE", raising=False)
    assert faceswap_pythons(home=tmp_path) == []
    made = []
    for prefix in (tmp_path / "miniconda3" / "envs" / "faceswap" / "bin",
                   tmp_path / "faceswap" / ".venv" / "bin"):
        prefix.mkdir(parents=True)
        (prefix / "python").write_text("#!/bin/sh\n")
        (prefix / "python").chmod(0o755)
        made.append(prefix / "python")
    (tmp_path / "anaconda3" / "envs" / "other" / "bin").mkdir(parents=True)
    assert faceswap_pythons(tmp_path / "faceswap", home=tmp_path) == made


def test_images_folder_errors(healthy, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["validate", str(healthy), "--images", str(empty)]) == 2
    assert "No PNG or JPG images" in capsys.readouterr().err
    assert main(["validate", str(healthy), "--images", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "face.png").write_bytes(b"not really a png")
    assert main(["validate", str(healthy), "--images", str(broken), "--steps", "0"]) == 2
    assert "face.png is not a readable image" in capsys.readouterr().err


def test_user_images_are_used(healthy, tmp_path):
    from PIL import Image
    import numpy as np
    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(3):
        pixels = np.full((40, 40, 3), 60 * index + 30, "uint8")
        Image.fromarray(pixels).save(faces / f"{index}.jpg")
    result = run_validation(healthy, Options(steps=0, images=str(faces), autopin=False,
                                             speed=False))
    assert result.inputs.source == "images"
    assert result.verdict.status == "safe"


def test_cli_report_and_exit_code(risky, capsys):
    """The default on a CPU is the quick pass: no mixed-precision training, said so."""
    assert main(["validate", str(risky)]) == 1
    out = capsys.readouterr().out
    assert "No training check: on a CPU float16 is emulated" in out
    assert "batch 2," in out
    assert "Verdict: safe with pins: keep boost, shrink, rms_norm in float32" in out
    assert "--pin boost --pin shrink --pin rms_norm" in out
    assert "config risk encoder/rms_norm (epsilon 1e-08 is 0 in float16): pinned" in out
    assert "Python" in out and "tensorflow" in out


@needs_fixtures
def test_validate_a_real_faceswap_model(tmp_path):
    """A full-size rehydrated Faceswap 3 model, end to end, with no harmless-underflow
    alarms."""
    target = tmp_path / "original-fp32"
    subprocess.run([sys.executable, str(FIXTURES / "rehydrate.py"),
                    str(FIXTURES / "fs3" / "original-fp32"), str(target)], check=True,
                   capture_output=True)
    result = run_validation(target, Options(batch=1, steps=0, autopin=False))
    assert result.model.plugin == "original"
    assert result.verdict.status == "safe"
    assert len(result.layers) >= 35
    assert not [layer for layer in result.layers if layer.risk]

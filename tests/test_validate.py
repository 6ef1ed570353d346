"""Validation passes, run as the user runs them: a child process streaming JSON lines."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import copy_tree, needs_fixtures, FIXTURES
from keras_models import build_model_folder
from fsprec.core import Cancelled
from fsprec.core.cli import main
from fsprec.core.validate import Options, ValidationCrashed, run_validation, verdict
from fsprec.core.validate import runner

FAST = dict(batch=2, steps=3)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    return build_model_folder(tmp_path_factory.mktemp("healthy") / "model")


@pytest.fixture(scope="module")
def risky(tmp_path_factory) -> Path:
    return build_model_folder(tmp_path_factory.mktemp("risky") / "model", overflow=True,
                              rms_norm=True)


@pytest.fixture(scope="module")
def healthy_result(healthy):
    events = []
    result = run_validation(healthy, Options(**FAST),
                            on_progress=lambda *event: events.append(event))
    return result, events


def test_healthy_model_is_safe(healthy_result):
    result, _ = healthy_result
    assert result["verdict"]["status"] == "safe"
    assert result["device"]["kind"] == "cpu" and result["device"]["backend"] == "tensorflow"
    assert len(result["outputs"]) == 2
    for output in result["outputs"]:
        assert output["nonfinite_target"] == 0
        assert 0 < output["rel_l2"] < 1e-2
        assert output["psnr_db"] > 30
    assert result["inputs"]["shapes"] == [[2, 16, 16, 3], [2, 16, 16, 3]]


def test_training_check_and_speed(healthy_result):
    result, _ = healthy_result
    training = result["training"]
    assert training["steps"] == 3
    for run in (training["float32"], training["target"]):
        assert len(run["loss"]) == 3 and all(loss > 0 for loss in run["loss"])
    assert len(training["target"]["loss_scale"]) == 3
    assert all(scale > 0 for scale in training["target"]["loss_scale"])
    assert training["target"]["skipped_steps"] <= 3
    speed = result["speed"]
    assert speed["forward_float32_ips"] > 0 and speed["forward_target_ips"] > 0
    assert speed["speedup"] == pytest.approx(speed["forward_target_ips"] /
                                             speed["forward_float32_ips"])
    assert speed["peak_memory_float32_mb"] is None  # CPU: no device memory to report


def test_progress_arrives_in_order(healthy_result):
    _, events = healthy_result
    stages = list(dict.fromkeys(stage for stage, _, _ in events))
    assert stages == ["Loading model", "Output parity", "Training check", "Speed"]
    for stage in stages:
        done = [d for s, d, _ in events if s == stage]
        assert done == sorted(done)
        total = [t for s, _, t in events if s == stage][-1]
        assert done[-1] == total


def test_overflow_is_flagged_and_auto_pin_finds_it(risky):
    result = run_validation(risky, Options(batch=2, steps=0))
    layers = {layer["path"]: layer for layer in result["layers"]}
    assert layers["encoder/boost"]["overflow"]
    assert layers["encoder/boost"]["risk"] in ("overflow", "nonfinite")
    assert layers["encoder/boost"]["max_abs"] > 65504
    assert not layers["encoder/conv_8_0_conv2d"]["risk"]
    # Faceswap's RMSNormalization epsilon (1e-8) is 0 in float16.
    assert layers["encoder/rms_norm"]["risk"] == "underflow"
    assert "epsilon" in layers["encoder/rms_norm"]["config_risk"]
    assert sum(o["nonfinite_target"] for o in result["outputs"]) > 0
    assert result["verdict"]["status"] == "safe_with_pins"
    assert "boost" in result["verdict"]["pins"] and len(result["verdict"]["pins"]) <= 2
    assert result["autopin"]["passed"]
    # Without the pin search the same measurements mean "not safe".
    assert verdict({**result, "autopin": None})["status"] == "not_safe"


def test_pins_found_really_fix_the_model(risky, tmp_path):
    """Converting with the suggested pins gives a model the validator calls safe."""
    from fsprec.core import convert
    folder = copy_tree(risky, tmp_path / "pinned")
    convert.convert(folder, "mixed_float16", pins=["boost", "shrink"])
    result = run_validation(folder, Options(batch=2, steps=0, autopin=False, speed=False))
    assert result["verdict"]["status"] == "safe"


def test_cancel_ends_the_child_within_a_second(healthy):
    cancel = threading.Event()
    started = threading.Event()
    outcome = {}

    def work():
        try:
            run_validation(healthy, Options(**FAST), cancel=cancel,
                           on_progress=lambda *e: started.set())
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
    monkeypatch.setattr(runner, "command", lambda folder, options: [
        sys.executable, "-c", "import os, sys; print('boom', file=sys.stderr); "
                              "os.kill(os.getpid(), 9)"])
    with pytest.raises(ValidationCrashed, match="killed .SIGKILL.*out of memory"):
        run_validation(healthy, Options(**FAST))


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
    result = run_validation(healthy, Options(batch=2, steps=0, images=str(faces),
                                             autopin=False, speed=False))
    assert result["inputs"]["source"] == "images"
    assert result["verdict"]["status"] == "safe"


def test_cli_report_and_exit_code(risky, capsys):
    assert main(["validate", str(risky), "--steps", "0", "--batch", "2"]) == 1
    out = capsys.readouterr().out
    assert "Verdict: safe with pins: " in out and "--pin boost" in out
    assert "encoder/rms_norm: underflow (epsilon 1e-08 is 0 in float16)" in out


@needs_fixtures
def test_validate_a_real_faceswap_model(tmp_path):
    """A full-size rehydrated Faceswap 3 model, end to end through the CLI's JSON."""
    import subprocess
    target = tmp_path / "original-fp32"
    subprocess.run([sys.executable, str(FIXTURES / "rehydrate.py"),
                    str(FIXTURES / "fs3" / "original-fp32"), str(target)], check=True,
                   capture_output=True)
    result = run_validation(target, Options(batch=1, steps=2, autopin=False))
    assert result["model"]["plugin"] == "original"
    assert result["verdict"]["status"] == "safe"
    assert len(result["layers"]) >= 35 and not [l for l in result["layers"] if l["risk"]
                                                == "nonfinite"]

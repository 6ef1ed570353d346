"""Hand-made validation results (no Keras) for the report, verdict and GUI tests."""
from __future__ import annotations

from fsprec.core.validate.result import (THRESHOLDS, AutoPin, Inputs, LayerRisk, ModelInfo,
                                         OutputParity, Runtime, Speed, StressOutcome,
                                         Training, TrainingRun, ValidationResult, decide)

MEASURED = ["encoder/conv_8_0_conv2d", "encoder/boost", "encoder/shrink", "encoder/dense",
            "decoder_a/face_out_a_0"]


def layer_row(path: str, max_abs: float = 1.0, min_abs: float | None = 1e-3,
              risk: str | None = None, values: int = 100, **extra) -> LayerRisk:
    """One measured layer."""
    fields = dict(path=path, class_name="Conv2D", eligible=True, values=values,
                  max_abs=max_abs, min_abs_nonzero=min_abs, nonzero=values, above_fp16_max=0,
                  below_fp16_normal=0, below_fp16_tiny=0, nonfinite_target=0,
                  introduces_nonfinite=risk == "nonfinite", config_risk=None, risk=risk)
    fields.update(extra)
    return LayerRisk(**fields)


def sample_result(folder: str = "/models/tinyae", status: str = "safe_with_pins",
                  kind: str = "cpu", training: bool = True, loss_scale: bool = True,
                  speed: bool = True, layers: list[LayerRisk] | None = None
                  ) -> ValidationResult:
    """A complete result whose verdict is ``status``."""
    broken = status != "safe"
    memory = 812.5 if kind == "gpu" else None
    result = ValidationResult(
        model=ModelInfo(folder, "tinyae", "keras3", "float32"),
        policy="mixed_float16", pins=[],
        runtime=Runtime("/envs/faceswap/bin/python", "3.11.7", "torch", "3.14.1", kind,
                        "NVIDIA H200" if kind == "gpu" else "CPU"),
        inputs=Inputs("synthetic", 2, [[2, 16, 16, 3]]),
        thresholds=THRESHOLDS["mixed_float16"],
        outputs=[OutputParity(0, [2, 16, 16, 3], 52.0, 0.0025, 0.01, 0.05, 0.05, 0, 0),
                 OutputParity(1, [2, 16, 16, 3], None, 0.0, 0.0, 0.05, 0.0, 0,
                              1536 if broken else 0)],
        stress=[StressOutcome(name, 0, 0) for name in Inputs("synthetic", 2, []).stress],
        layers=layers if layers is not None else [
            layer_row("face_in_a", values=0, max_abs=0.0, min_abs=None),
            layer_row(MEASURED[0]),
            layer_row(MEASURED[1], max_abs=2.7e5, min_abs=88.7, risk="nonfinite",
                      above_fp16_max=17, nonfinite_target=2048),
            layer_row(MEASURED[2], min_abs=None),
            layer_row(MEASURED[3], min_abs=1e-9, risk="underflow", below_fp16_normal=40,
                      below_fp16_tiny=4),
            layer_row(MEASURED[4], max_abs=0.5, min_abs=0.49)],
        config_risks=[],
        training=None if not training else Training(
            3, "torch.amp.GradScaler" if loss_scale else None,
            "adam (lr 5e-05, eps 1e-07), from the model's state", "reconstruction",
            TrainingRun([0.5, 0.4, 0.3], None, 0, None),
            TrainingRun([0.5, float("nan"), 0.3],
                        [65536.0, 32768.0, 32768.0] if loss_scale else None, 1, None),
            timed=False),
        speed=None if not speed else Speed(1000.0, 2500.0, 2.5, memory, memory and 500.0),
        autopin=AutoPin(["boost", "shrink"], status == "safe_with_pins", 5) if broken else None,
        seconds=12.3)
    result.verdict = decide(result)
    assert result.verdict.status == status
    return result

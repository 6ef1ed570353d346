"""Forward parity: fsprec loads every Faceswap fixture model and reproduces Faceswap's outputs."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras_support import (FP16_TOLERANCE, FP32_TOLERANCE, needs_fixtures, reference,
                           reference_folders, reference_inputs, reference_outputs, rehydrated,
                           relative_l2, run_torch)

from fsprec.core import load_keras_model

FOLDERS = reference_folders() or ["fixtures-missing"]
TORCH_FOLDERS = ("fs3/original-fp32", "fs3/phaze_a-fp32", "fs3/phaze_a-mixed",
                 "fs3/original_lowmem_icnr_convaware_reflect-fp32", "fs2/original-fp32")


def mixed_layer_count(model: keras.Model) -> int:
    """Leaf layers of ``model`` (sub-models included) that compute in a mixed policy."""
    count = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            count += mixed_layer_count(layer)
        elif layer.dtype_policy.name.startswith("mixed_"):
            count += 1
    return count


def forward(model: keras.Model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """``model(x, training=False)`` as Faceswap's reference ran it, as NumPy arrays."""
    outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [keras.ops.convert_to_numpy(out).astype(np.float32) for out in outputs]


def check_parity(name: str, policy: str | None = None, reference_of: str | None = None
                 ) -> list[float]:
    """Load ``name`` (optionally switched to ``policy``) and compare with the reference
    outputs of ``reference_of`` (default: the folder itself); returns the errors."""
    info, arrays = reference(reference_of or name)
    model = load_keras_model(rehydrated(name), policy=policy)
    try:
        outputs = forward(model, reference_inputs(arrays))
        assert mixed_layer_count(model) == info["layer_dtype_policies"].get("mixed_float16", 0)
    finally:
        del model
        keras.backend.clear_session()
    want = reference_outputs(arrays)
    assert [o.shape for o in outputs] == [w.shape for w in want]
    assert all(np.isfinite(o).all() for o in outputs)
    errors = [relative_l2(got, ref) for got, ref in zip(outputs, want, strict=True)]
    limit = FP16_TOLERANCE if info["computes_in_mixed_precision"] else FP32_TOLERANCE
    assert max(errors) <= limit, f"{name}: relative L2 errors {errors} over {limit}"
    return errors


@needs_fixtures
@pytest.mark.parametrize("name", FOLDERS)
def test_forward_parity_in_process(name: str, record_property) -> None:
    errors = check_parity(name)
    record_property("backend", keras.backend.backend())
    record_property("max_rel_l2", max(errors))


TORCH_SCRIPT = """
import json, sys
import keras, numpy as np
sys.path.insert(0, sys.argv[1])
from keras_support import reference, reference_inputs, reference_outputs, relative_l2
from test_keras_parity import forward, mixed_layer_count
from fsprec.core import load_keras_model
result = {"backend": keras.backend.backend()}
for name, folder in zip(sys.argv[2::2], sys.argv[3::2], strict=True):
    _, arrays = reference(name)
    model = load_keras_model(folder)
    outputs = forward(model, reference_inputs(arrays))
    pairs = zip(outputs, reference_outputs(arrays), strict=True)
    result[name] = {"errors": [relative_l2(o, r) for o, r in pairs],
                    "mixed_layers": mixed_layer_count(model)}
    del model
    keras.backend.clear_session()
print(json.dumps(result))
"""


@needs_fixtures
def test_forward_parity_on_torch(record_property) -> None:
    args = [arg for name in TORCH_FOLDERS for arg in (name, str(rehydrated(name)))]
    result = run_torch(TORCH_SCRIPT, str(Path(__file__).parent), *args)
    assert result.pop("backend") == "torch"
    for name in TORCH_FOLDERS:
        info, _ = reference(name)
        errors = result[name]["errors"]
        limit = FP16_TOLERANCE if info["computes_in_mixed_precision"] else FP32_TOLERANCE
        assert max(errors) <= limit, f"{name} on torch: relative L2 {errors} over {limit}"
        assert result[name]["mixed_layers"] == info["layer_dtype_policies"].get(
            "mixed_float16", 0)
        record_property(f"torch {name}", max(errors))


@needs_fixtures
def test_policy_float32_to_mixed_matches_faceswaps_own_switch() -> None:
    """A float32 model loaded as mixed_float16 reproduces the model Faceswap switched."""
    check_parity("fs3/original-fp32", "mixed_float16", "fs3/original-fp32-switched-to-mixed")


@needs_fixtures
def test_policy_mixed_to_float32_matches_the_float32_model() -> None:
    """A mixed model loaded as float32 computes what the float32 model computes (both share
    their weights, as rehydrated fixtures of unchanged models do)."""
    check_parity("fs3/original-mixed", "float32", "fs3/original-fp32")


@needs_fixtures
def test_policy_mixed_bfloat16_computes_in_bfloat16() -> None:
    _, arrays = reference("fs3/original-fp32")
    model = load_keras_model(rehydrated("fs3/original-fp32"), policy="mixed_bfloat16")
    try:
        policies = {layer.name: layer.dtype_policy.name
                    for layer in model.get_layer("encoder").layers}
        outputs = forward(model, reference_inputs(arrays))
    finally:
        del model
        keras.backend.clear_session()
    assert policies["conv_128_0_conv2d"] == "mixed_bfloat16"
    assert list(policies.values()).count("mixed_bfloat16") == len(policies) - 1  # not input
    errors = [relative_l2(o, r) for o, r in zip(outputs, reference_outputs(arrays), strict=True)]
    assert 0 < max(errors) <= 2.0 ** -7, errors  # bfloat16 precision, and really reduced

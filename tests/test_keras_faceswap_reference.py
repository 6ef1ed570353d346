"""The compat classes against Faceswap's own, when a Faceswap 3 checkout is at hand.

Set ``FSPREC_FACESWAP_DIR`` to a Faceswap 3 source folder (its requirements installed) to run
this check: every class, three policies, torch backend (Faceswap 3's), outputs compared bit
for bit, weights and config keys compared.
"""
from __future__ import annotations

import os

import pytest
from keras_support import run_torch

FACESWAP_DIR = os.environ.get("FSPREC_FACESWAP_DIR")

SCRIPT = r"""
import json, sys
import keras, numpy as np
sys.path.insert(0, sys.argv[1])
import lib.model.initializers as fs_init
import lib.model.layers as fs_layers
import lib.model.normalization as fs_norm
from fsprec.core.keras import compat

rng = np.random.default_rng(0)
image = rng.standard_normal((2, 6, 6, 64)).astype("float32") * 3
style = [image, image[:, :1, :1] + 1, image[:, :1, :1] * 2]
CASES = [("PixelShuffler", {}, image), ("PixelShuffler", {"data_format": "channels_first"},
         image.transpose(0, 3, 1, 2)), ("ReflectionPadding2D", {}, image[:, :5]),
         ("KResizeImages", {"interpolation": "bilinear"}, image), ("Swish", {"beta": 1.5}, image),
         ("QuickGELU", {}, image), ("L2Normalize", {"axis": -1}, image),
         ("GlobalMinPooling2D", {}, image), ("GlobalStdDevPooling2D", {}, image),
         ("ScalarOp", {"operation": "truediv", "value": 127.5}, image),
         ("InstanceNormalization", {"axis": -1}, image), ("InstanceNormalization", {}, image),
         ("GroupNormalization", {}, image), ("GroupNormalization", {}, image[:, 0, 0]),
         ("RMSNormalization", {}, image * 1e-3),
         ("RMSNormalization", {"bias": True, "partial": 0.5}, image),
         ("AdaInstanceNormalization", {}, style)]
theirs = {**vars(fs_layers), **vars(fs_norm)}
mismatches = []
for policy in ("float32", "mixed_float16", "mixed_bfloat16"):
    for name, kwargs, x in CASES:
        results = []
        for cls in (theirs[name], compat.custom_objects()[name]):
            layer = cls(dtype=policy, **kwargs)
            layer(x)
            layer.set_weights([np.full(w.shape, i + 1.5, "float32")
                               for i, w in enumerate(layer.weights)])
            out = keras.ops.convert_to_numpy(layer(x))
            results.append((out, [(w.name, tuple(w.shape)) for w in layer.weights],
                            set(layer.get_config())))
        (a, wa, ca), (b, wb, cb) = results
        if a.dtype != b.dtype or a.tobytes() != b.tobytes() or wa != wb or (
                ca ^ cb) - {"data_format"}:
            mismatches.append(f"{policy} {name} {kwargs}")
for shape in ((3, 3, 4, 8), (5, 5, 64, 128)):
    a = keras.ops.convert_to_numpy(fs_init.ConvolutionAware(seed=3)(shape))
    b = keras.ops.convert_to_numpy(compat.ConvolutionAware(seed=3)(shape))
    if a.tobytes() != b.tobytes():
        mismatches.append(f"ConvolutionAware {shape}")
print(json.dumps({"backend": keras.backend.backend(), "cases": 3 * len(CASES),
                  "mismatches": mismatches}))
"""


@pytest.mark.skipif(not FACESWAP_DIR, reason="set FSPREC_FACESWAP_DIR to a Faceswap 3 "
                                             "checkout to compare with Faceswap's own classes")
def test_compat_classes_equal_faceswaps_own() -> None:
    result = run_torch(SCRIPT, FACESWAP_DIR)
    assert result["backend"] == "torch"
    assert result["mismatches"] == [], result

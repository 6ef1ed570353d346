"""Run real Faceswap on model folders; executed in the Faceswap venv, inside a Faceswap tree.

``python faceswap_driver.py REPLY_FD`` with the current directory a writable copy of a Faceswap
tree serves jobs: one JSON job a line on stdin, one JSON report a line on the file descriptor
REPLY_FD (Faceswap prints to stdout), until stdin ends. Each job loads a model folder the way
``faceswap train`` does (Faceswap's own argument parser,
``PluginLoader.get_model(plugin)(model_dir, args, predict=False)``, ``model.build()``) with
``config/train.ini`` set to the job's precision, then optionally trains it through Faceswap's
own trainer on synthetic faces and saves it with Faceswap's own save.

A job: ``{"model_dir", "plugin", "mixed": bool, "steps": int, "batch": int (default 1),
"save": bool, "documents_only": bool, "ini": {section: {option: value}}, "forward": npz path
or absent}``; a folder without a model gets a new one built by Faceswap (a folder with one is
loaded with placeholder initial values: see ``placeholder_initial_values``). Its report:
``{"rebuild": bool, "dtypes": {"sub/layer": policy}, "losses": [float], "seconds": {"build",
"steps": [..], "save"}, "float16_convolutions": int (in the training steps), "documents":
{"config", "state"} (with documents_only), "error": str|null}``. ``documents_only``: after
the save, the saved ``config.json`` and state go into the report and the folder is deleted
(full-size weights are hundreds of MB each).
This file only drives Faceswap; it is not part of fsprec.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
import traceback
import zipfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.getcwd())

TRAIN_INI = Path("config/train.ini")


def stub_torchvision() -> None:
    """Stand in for torchvision, which only Faceswap's LPIPS loss uses.

    The registry's torchvision is a CUDA build that fails to import beside CPU torch; Faceswap
    imports it at module level, so the names exist here and fail only when an LPIPS loss runs.
    """
    import types

    def unavailable(*_args, **_kwargs):
        raise RuntimeError("torchvision is not installed in the Faceswap test venv")

    models = types.ModuleType("torchvision.models")
    for name in ("alexnet", "squeezenet1_1", "vgg16"):
        setattr(models, name, unavailable)
    models.feature_extraction = types.SimpleNamespace(create_feature_extractor=unavailable)
    package = types.ModuleType("torchvision")
    package.models = models
    sys.modules.setdefault("torchvision", package)
    sys.modules.setdefault("torchvision.models", models)


def set_options(mixed: bool, sections: dict[str, dict[str, object]]) -> None:
    """Write ``mixed_precision`` and the job's other options into Faceswap's train.ini.

    Faceswap generates the file with every option on a ``key = value`` line under its
    ``[section]``; only those lines change.
    """
    pristine = TRAIN_INI.with_name("train.ini.defaults")
    if not pristine.exists():
        from lib.config import generate_configs
        generate_configs()
        TRAIN_INI.replace(pristine)
    TRAIN_INI.write_bytes(pristine.read_bytes())
    wanted = {"global": {"mixed_precision": mixed}}
    for section, options in sections.items():
        wanted.setdefault(section, {}).update(options)
    lines = TRAIN_INI.read_text(encoding="utf-8").splitlines(keepends=True)
    section = ""
    for index, line in enumerate(lines):
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            section = header.group(1)
            continue
        option = re.match(r"^(\w+)\s*=", line)
        if option and option.group(1) in wanted.get(section, {}):
            lines[index] = f"{option.group(1)} = {wanted[section][option.group(1)]}\n"
    TRAIN_INI.write_text("".join(lines), encoding="utf-8")


def reload_config() -> None:
    """Make Faceswap read train.ini again: it loads it once per process, on first use."""
    from plugins.train import train_config
    train_config._IS_LOADED = False


def parse_train_args(model_dir: str, plugin: str, faces: Path, batch: int):
    """``faceswap train -A .. -B .. -m MODEL -t PLUGIN -b BATCH`` through Faceswap's own
    parser (no previews, no time-lapse, no TensorBoard logs)."""
    from lib.cli import args as cli_args
    from lib.cli.args_train import TrainArgs
    parser = cli_args.FullHelpArgumentParser()
    sub = parser.add_subparsers()
    TrainArgs(sub, "train", "train")
    return parser.parse_args(["train", "-A", str(faces / "a"), "-B", str(faces / "b"),
                              "-m", model_dir, "-t", plugin.replace("_", "-"),
                              "--batch-size", str(batch), "--no-logs"])


def layer_dtypes(model, prefix: str = "") -> dict[str, str]:
    """``{"sub-model/layer": dtype policy name}`` of every leaf layer of a live Keras model."""
    import keras
    found: dict[str, str] = {}
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            found.update(layer_dtypes(layer, f"{path}/"))
        elif isinstance(layer, keras.layers.InputLayer):  # its policy is the global one
            found[path] = layer.output.dtype
        else:
            found[path] = layer.dtype_policy.name
    return found


_CONVOLUTIONS = ("conv1d", "conv2d", "conv3d",
                 "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


@contextlib.contextmanager
def float32_accumulation(counter: list[int]):
    """While training: float16 convolutions on the CPU multiply and add in float32 and round
    their result to float16, as a GPU's tensor cores do, and each one is counted.

    torch's CPU float16 convolution is a reference kernel where the CPU has no float16
    arithmetic (AVX-512 FP16): a step of the public dfaker model towards mixed_float16 took
    60-67 s with it and 7.5-8.3 s this way, with the same losses. Tensors keep their dtypes
    (float16 in, float16 out), so every layer, cast, loss scale and optimizer update is still
    Faceswap's and Keras's own; the count shows a mixed model really ran convolutions in
    float16, and a float32 one none.
    """
    import torch
    import torch.nn.functional as functional
    originals = {name: getattr(functional, name) for name in _CONVOLUTIONS}

    def accumulating(original):
        def convolution(inputs, weight, bias=None, *args, **kwargs):
            if inputs.dtype != torch.float16 or inputs.device.type != "cpu":
                return original(inputs, weight, bias, *args, **kwargs)
            counter[0] += 1
            bias = None if bias is None else bias.float()
            return original(inputs.float(), weight.float(), bias, *args, **kwargs).half()
        return convolution

    for name, original in originals.items():
        setattr(functional, name, accumulating(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(functional, name, original)


@contextlib.contextmanager
def placeholder_initial_values():
    """While Faceswap loads a saved model: every new float variable starts as NaN instead of its
    initializer's random values.

    A load builds every layer, and Keras fills each new variable from its initializer before
    the saved values replace it (Faceswap's own switch builds the model twice): for the public
    dfaker model those fills were 40-45 % of the load (4.6 s of a load, 3.7 of 6.9-8.2 s of a
    switch). Nothing reads them; :func:`check_loaded` proves it after the build, since a
    variable the load missed would still be NaN (with the real initializer it would hide
    behind random values). Integer variables (seed states) keep their initializer.
    """
    import torch
    from keras.src.backend.common import variables
    original = variables.Variable._initialize_with_initializer

    def fill(self, initializer):
        dtype = getattr(torch, str(self._dtype), None)
        if dtype is None or not dtype.is_floating_point:
            return original(self, initializer)
        return self._initialize(torch.full(tuple(self._shape), float("nan"), dtype=dtype))

    variables.Variable._initialize_with_initializer = fill
    try:
        yield
    finally:
        variables.Variable._initialize_with_initializer = original


def check_loaded(model) -> None:
    """Raise unless every float weight of ``model`` holds a saved value (see
    :func:`placeholder_initial_values`)."""
    import keras
    missed = [w.path for w in model.weights if keras.backend.is_float_dtype(w.dtype)
              and bool(keras.ops.any(keras.ops.isnan(w.value)))]
    if missed:
        raise AssertionError(f"{len(missed)} weights were not loaded from the file: "
                             f"{missed[:5]}")


class SyntheticFaces:
    """Random faces and targets in the shapes Faceswap's TrainLoader yields."""

    def __init__(self, model, batch: int) -> None:
        import torch
        self._torch = torch
        self._gen = torch.Generator().manual_seed(0)
        self._batch = batch
        self._in = model.input_shapes[0][1:]
        sides = len(model.input_shapes)
        outs = [s for s in model.output_shapes if s[-1] != 1]
        self._out = sorted({s[1] for s in outs[:len(outs) // sides]})
        self._sides = sides

    def __next__(self):
        from lib.training.data.collate import BatchMeta
        rand = lambda *shape: self._torch.rand(*shape, generator=self._gen)  # noqa: E731
        inputs = [rand(self._batch, *self._in) for _ in range(self._sides)]
        targets = [rand(self._batch, self._sides, size, size, 3) for size in self._out]
        masks = [self._torch.ones(self._batch, self._sides, 1, size, size) for size in self._out]
        return inputs, targets, BatchMeta(mask_face=masks, mask_eye=masks, mask_mouth=masks)


def run_job(job: dict, faces: Path) -> dict:
    """Load (and maybe train and save) one model folder with Faceswap."""
    import keras
    import numpy as np
    from lib.training import train as fs_train
    from plugins.plugin_loader import PluginLoader
    from plugins.train.trainer.base import TrainConfig

    set_options(job["mixed"], job.get("ini", {}))
    reload_config()
    keras.backend.clear_session()
    args = parse_train_args(job["model_dir"], job["plugin"], faces, job.get("batch", 1))
    saved = any(Path(job["model_dir"]).glob(f"{job['plugin']}.*"))  # a load (else a new model)
    start = time.monotonic()
    with placeholder_initial_values() if saved else contextlib.nullcontext():
        model = PluginLoader.get_model(args.trainer, disable_logging=True)(
            args.model_dir, args, predict=False)  # a Faceswap 2 model is upgraded here
        report: dict = {"rebuild": bool(model.state.model_needs_rebuild), "losses": []}
        model.build()
    if saved:
        check_loaded(model.model)
    seconds: dict = {"build": time.monotonic() - start, "steps": []}
    report["seconds"] = seconds
    report["dtypes"] = layer_dtypes(model.model)
    trainer = None
    if job.get("steps"):
        config = TrainConfig(folders=[args.input_a, args.input_b], batch_size=args.batch_size,
                             augment_color=False, flip=False, warp=False, cache_landmarks=False,
                             snapshot_interval=args.snapshot_interval)
        plugin = PluginLoader.get_trainer("original", disable_logging=True)(model, config)
        original = fs_train.Trainer._get_train_loader
        fs_train.Trainer._get_train_loader = lambda self: SyntheticFaces(model, args.batch_size)
        try:
            trainer = fs_train.Trainer(plugin, preview=False)
        finally:
            fs_train.Trainer._get_train_loader = original
        counter = [0]
        with float32_accumulation(counter):
            for _ in range(job["steps"]):
                start = time.monotonic()
                trainer.train_one_step(None, False)
                seconds["steps"].append(time.monotonic() - start)
                report["losses"].append(float(np.sum(model._io.history[-1])))
        report["float16_convolutions"] = counter[0]
    start = time.monotonic()
    if job.get("save"):
        model.io.save(trainer._optimizer if trainer is not None else None, is_exit=True)
    seconds["save"] = time.monotonic() - start
    if job.get("documents_only"):
        with zipfile.ZipFile(model.io.filename) as archive:
            config = json.loads(archive.read("config.json"))
        state = json.loads(Path(model.state.filename).read_text(encoding="utf-8"))
        report["documents"] = {"config": config, "state": state}
        shutil.rmtree(job["model_dir"])
    if job.get("forward"):
        forward(model.model, Path(job["forward"]))
    return report


def forward(model, path: Path) -> None:
    """Faceswap's outputs on ``default_rng(1234).random`` inputs, as in the fixtures'
    ``reference.npz``: ``input_0..`` and ``output_0..``, ``model(x, training=False)``."""
    import keras
    import numpy as np
    rng = np.random.default_rng(1234)
    inputs = [rng.random((2, *t.shape[1:]), np.float32) for t in model.inputs]
    outputs = model(inputs, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    arrays = {f"input_{i}": x for i, x in enumerate(inputs)}
    arrays |= {f"output_{i}": keras.ops.convert_to_numpy(y).astype(np.float32)
               for i, y in enumerate(outputs)}
    np.savez(path, **arrays)


def skip_summary() -> None:
    """Faceswap renders every model's summary for its verbose log at each load (0.36 s for
    dfaker here, a hundred loads a run); nothing reads that log here."""
    from plugins.train.model._base.model import ModelBase
    ModelBase._output_summary = lambda self: None


def main() -> None:
    stub_torchvision()
    skip_summary()
    faces = Path("faces")
    for side in "ab":
        (faces / side).mkdir(parents=True, exist_ok=True)
    with os.fdopen(int(sys.argv[1]), "w", encoding="utf-8") as replies:
        for line in sys.stdin:
            try:
                report = run_job(json.loads(line), faces) | {"error": None}
            except BaseException as err:  # one job's failure is reported, the next still runs
                report = {"error": f"{type(err).__name__}: {err}\n{traceback.format_exc()}"}
            replies.write(json.dumps(report) + "\n")
            replies.flush()


if __name__ == "__main__":
    main()

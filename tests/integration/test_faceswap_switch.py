"""fsprec's switch, checked by Faceswap itself.

For each source model and each direction: the public fixtures (Faceswap 3 and Faceswap 2), and
a small new model of every other plugin in Faceswap's ``plugins/train/model/`` and of Phaze-A,
which Faceswap builds here (an empty folder, its ``ModelBase.build()``) in float32 and in
mixed_float16 from the smallest sizes its train.ini allows (lowmem where the plugin has it):

- Faceswap's own switch: Faceswap loads a copy of the source with ``train.ini`` at the other
  precision (it flags a rebuild and switches), then saves it;
- fsprec converts the source into a new folder (``convert --out``); Faceswap loads the
  result as ``faceswap train`` does, with ``train.ini`` at the new precision, and must flag no
  rebuild, build every layer in the dtype the file says, train (two steps through its own
  trainer, batch size 1, no previews or logs) with a finite loss that moves, and save a model
  ``fsprec inspect`` reads back at the new precision;
- fsprec's output equals Faceswap's switch as JSON (config and state).

Every public model trains, both directions, and the small Phaze-A, which Faceswap builds
from its own initial weights, where the loss checks the numerics too. The skeletons' zero
weights train as they are: their loss depends on the targets alone (every public model starts
at the same 25.72), so their steps show that Faceswap's trainer and optimizer run on the
converted model and update it (the loss must move). A mixed_float16 model must run its
convolutions in float16 while it trains, a float32 one none; the driver computes those float16
convolutions with float32 accumulation, as a GPU does, because torch's own CPU float16 kernel
is 8 times slower here (see faceswap_driver.py). The other built models are built, switched,
loaded and saved but not trained.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import FIXTURES, copy_tree
from fsprec.core import cli, open_model

from .conftest import Faceswap

FS3 = ["original-fp32", "original-mixed", "lightweight-fp32", "lightweight-mixed",
       "dfaker-fp32", "dfaker-mixed", "phaze_a-fp32", "phaze_a-mixed",
       "original_lowmem_icnr_convaware_reflect-fp32",
       "original_lowmem_icnr_convaware_reflect-mixed"]
FS2 = ["lightweight-fp32", "lightweight-mixed", "original-fp32", "original-mixed",
       "dfl_sae-fp32-opt"]
# Small new models of every Faceswap plugin the public fixtures do not hold (they hold
# original, lightweight, dfaker and phaze_a built by Faceswap 3, dfl_sae only from Faceswap 2),
# and a small Phaze-A, which trains here; built by Faceswap from these train.ini options
# (the smallest sizes each plugin allows, lowmem where it has one):
# {name: (plugin, {section: {option: value}})}.
_SMALL_PHAZE_A = {
    "output_size": 64, "enc_scaling": 20, "bottleneck_size": 32, "fc_min_filters": 32,
    "fc_max_filters": 32, "fc_upsample_filters": 32, "fc_gblock_min_nodes": 32,
    "fc_gblock_max_nodes": 32, "dec_min_filters": 16, "dec_max_filters": 32,
    "fs_original_min_filters": 16, "fs_original_max_filters": 32, "fs_original_depth": 3}
_SMALL_SAE = {"input_size": 64, "autoencoder_dims": 32, "encoder_dims": 21, "decoder_dims": 10}
BUILT: dict[str, tuple[str, dict]] = {
    "phaze_a": ("phaze_a", {"model.phaze_a": _SMALL_PHAZE_A}),
    "dfl_h128_lowmem": ("dfl_h128", {"model.dfl_h128": {"lowmem": True}}),
    "dfl_sae_df": ("dfl_sae", {"model.dfl_sae": _SMALL_SAE | {"architecture": "df"}}),
    "dfl_sae_liae": ("dfl_sae", {"model.dfl_sae": _SMALL_SAE | {"architecture": "liae"}}),
    "dlight_lowmem": ("dlight", {"model.dlight": {"features": "lowmem", "details": "fast",
                                                  "output_size": 128}}),
    "iae": ("iae", {}),
    "realface": ("realface", {"model.realface": {
        "input_size": 64, "output_size": 64, "dense_nodes": 768, "complexity_encoder": 96,
        "complexity_decoder": 512}}),
    "unbalanced_lowmem": ("unbalanced", {"model.unbalanced": {"input_size": 64,
                                                              "lowmem": True}}),
    "villain_lowmem": ("villain", {"model.villain": {"lowmem": True}}),
}
# The models that train, by target precision (see above): built ones by BUILT key, public
# ones by folder name without its -fp32/-mixed.
TRAINED_BUILT = ("phaze_a",)
TRAINED_PUBLIC = ("original", "lightweight", "dfaker", "phaze_a",
                  "original_lowmem_icnr_convaware_reflect", "dfl_sae")
STEPS = 2


@dataclass
class Case:
    """One source model and one direction: what the checks read, kept once the (large)
    folders are gone."""

    name: str
    source: Path
    plugin: str
    target: str
    ini: dict = field(default_factory=dict)
    steps: int = 0
    switch_report: dict = field(default_factory=dict)  # Faceswap's own switch, with documents
    load_report: dict = field(default_factory=dict)  # Faceswap's load of fsprec's conversion
    converted: tuple[dict, dict] = ({}, {})  # fsprec's (config, state), Faceswap 3 sources
    file_dtypes: dict[str, str] = field(default_factory=dict)  # of fsprec's conversion
    saved: tuple[dict, dict] = ({}, {})  # Faceswap's save of fsprec's conversion
    inspected: dict = field(default_factory=dict)  # `fsprec inspect --json` of that save

    @property
    def mixed(self) -> bool:
        return self.target == "mixed_float16"


def _target(folder: str) -> str:
    return "float32" if folder.endswith("mixed") else "mixed_float16"


def _model(name: str) -> str:
    """The model a case name stands for: ``fs2/dfl_sae-fp32-opt`` -> ``dfl_sae``,
    ``built/dfl_sae_df-fp32`` -> ``dfl_sae_df`` (folder names are ``model-precision[-more]``)."""
    return name.split("/")[-1].split("-")[0]


def _steps(name: str) -> int:
    """Training steps for a case: ``TRAINED_PUBLIC`` and ``TRAINED_BUILT``, both directions."""
    trained = TRAINED_BUILT if name.startswith("built/") else TRAINED_PUBLIC
    return STEPS if _model(name) in trained else 0


def _plugin(folder: Path) -> str:
    return next(p.stem for p in folder.iterdir() if p.suffix in (".keras", ".h5"))


def _job(case: Case, folder: Path, steps: int = 0, documents_only: bool = False) -> dict:
    return {"model_dir": str(folder), "plugin": case.plugin, "mixed": case.mixed,
            "steps": steps, "save": True, "documents_only": documents_only, "ini": case.ini}


def _collect(work: Path) -> tuple[dict[str, Case], dict[str, Case]]:
    """Every case (the public fixtures present here, and the built models), and the built ones,
    whose source folders are empty until Faceswap builds them."""
    found: dict[str, Case] = {}
    for kind, names in (("fs3", FS3), ("fs2", FS2)):
        for name in names:
            source = FIXTURES / kind / name
            if source.is_dir():
                found[f"{kind}/{name}"] = Case(f"{kind}/{name}", source, _plugin(source),
                                                _target(name), steps=_steps(name))
    built: dict[str, Case] = {}
    for name in BUILT_CASES:
        plugin, ini = BUILT[_model(name)]
        folder = work / "sources" / name.replace("/", "_")
        folder.mkdir(parents=True)
        built[name] = found[name] = Case(name, folder, plugin, _target(name), ini,
                                         _steps(name))
    return found, built


def _place(work: Path, case: Case, role: str) -> Path:
    """A copy of the case's source for Faceswap's own switch."""
    if not case.source.is_dir() or not any(case.source.iterdir()):
        raise AssertionError(f"no source model for {case.name}")
    return copy_tree(case.source, work / role / case.name.replace("/", "_"))


def _keras_documents(folder: Path) -> tuple[dict, dict]:
    """``(config.json, state)`` of a Faceswap 3 folder."""
    model = next(folder.glob("*.keras"))
    with zipfile.ZipFile(model) as archive:
        config = json.loads(archive.read("config.json"))
    state = json.loads(next(folder.glob("*_state.json")).read_text())
    return config, state


def _inspect(folder: Path) -> dict:
    """``fsprec inspect FOLDER --json``, run in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["inspect", str(folder), "--json"])
    assert code == 0, f"fsprec inspect {folder} exited {code}"
    return json.loads(out.getvalue())


_CONVERT = """
import json, sys
from fsprec.core.convert import convert
for source, target, folder in json.load(sys.stdin):
    convert(source, target, out_dir=folder, backup=False)
"""


def _converted_folder(work: Path, case: Case) -> Path:
    return work / "fsprec" / case.name.replace("/", "_")


@contextlib.contextmanager
def _converting(cases: list[Case], work: Path) -> Iterator[dict[str, Path]]:
    """fsprec converts these sources, each into a new folder (``convert --out``), in a
    process of its own while the block runs (beside a pass of Faceswap's); yields
    ``{case name: folder}``, converted at the block's end."""
    folders = {c.name: _converted_folder(work, c) for c in cases}
    jobs = json.dumps([[str(c.source), c.target, str(folders[c.name])] for c in cases])
    proc = subprocess.Popen([sys.executable, "-c", _CONVERT], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write(jobs)
        proc.stdin.close()
        yield folders
    finally:
        errors = proc.stderr.read()
        proc.stderr.close()
        assert proc.wait() == 0, f"fsprec's conversions failed:\n{errors[-4000:]}"


def _read_conversion(case: Case, folder: Path) -> None:
    case.file_dtypes = {layer.path: layer.dtype_policy for layer in
                        open_model(folder).leaves(False) if layer.dtype_policy is not None}
    if case.name.startswith(("fs3/", "built/")):
        case.converted = _keras_documents(folder)


def _on_report(pending: list[tuple[Case, str, Path | None]]) -> Callable[[int, dict], None]:
    """As each report of ``pending`` (case, attribute, folder of a load) arrives: keep it in
    its case, and for a load read Faceswap's save (documents, ``fsprec inspect``) and delete
    the folder (full-size weights, up to 900 MB)."""
    def keep(index: int, report: dict) -> None:
        case, attribute, folder = pending[index]
        setattr(case, attribute, report)
        if folder is None:
            return
        if report["error"] is None:
            case.saved = _keras_documents(folder)
            case.inspected = _inspect(folder)
        shutil.rmtree(folder)
    return keep


def _loads(cases: list[Case], loaded: dict[str, Path]) -> tuple[list[dict], list]:
    """Faceswap's load (and training) of each case's conversion: jobs and their pending."""
    return ([_job(c, loaded[c.name], c.steps) for c in cases],
            [(c, "load_report", loaded[c.name]) for c in cases])


@pytest.fixture(scope="module")
def cases(faceswap: Faceswap,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Case]]:
    """Every case, run: three passes of Faceswap's processes, fsprec converting beside them.

    Faceswap's saves hold full-size weights, so each is read into its case and deleted as
    soon as its report arrives; the work folder goes at the end.
    """
    work = tmp_path_factory.mktemp("cases")
    found, built = _collect(work)
    public = [c for c in found.values() if c.name not in built]
    try:
        # 1. Faceswap builds the small sources and switches every public source, while fsprec
        # converts the public sources.
        build = [{"model_dir": str(c.source), "plugin": c.plugin, "mixed": not c.mixed,
                  "steps": 0, "save": True, "ini": c.ini} for c in built.values()]
        switches = [_job(c, _place(work, c, "faceswap"), documents_only=True) for c in public]
        with _converting(public, work) as loaded:
            reports = faceswap.run(build + switches, keep=True)
        for name, report in zip(built, reports[:len(build)], strict=True):
            assert report["error"] is None, f"Faceswap could not build {name}: {report['error']}"
        for case, report in zip(public, reports[len(build):], strict=True):
            case.switch_report = report
            _read_conversion(case, loaded[case.name])

        # 2. Faceswap loads (and trains) the public conversions, while fsprec converts the
        # built sources.
        jobs, pending = _loads(public, loaded)
        with _converting(list(built.values()), work) as converted:
            faceswap.run(jobs, keep=True, on_report=_on_report(pending))
        loaded |= converted

        # 3. Faceswap switches the built sources (their folder itself: not needed any more)
        # and loads their conversions.
        jobs, pending = [], []
        for case in built.values():
            _read_conversion(case, loaded[case.name])
            jobs.append(_job(case, case.source, documents_only=True))
            pending.append((case, "switch_report", None))
        more_jobs, more_pending = _loads(list(built.values()), loaded)
        faceswap.run(jobs + more_jobs, on_report=_on_report(pending + more_pending))
    finally:
        faceswap.close()
    yield found
    shutil.rmtree(work)


BUILT_CASES = [f"built/{n}-{p}" for n in BUILT for p in ("fp32", "mixed")]
CASES = [f"fs3/{n}" for n in FS3] + [f"fs2/{n}" for n in FS2] + BUILT_CASES
TRAINED = [name for name in CASES if _steps(name)]


def _case(cases: dict[str, Case], name: str) -> Case:
    if name not in cases:
        pytest.skip(f"fixture {name} not found under {FIXTURES}")
    return cases[name]


def test_every_listed_model_trains() -> None:
    """Each model meant to train has its cases among the trained ones (fs2/dfl_sae once fell
    out: its folder name has a suffix after the precision)."""
    trained = {(_model(n), n.startswith("built/")) for n in TRAINED}
    assert trained == {(m, False) for m in TRAINED_PUBLIC} | {(m, True) for m in TRAINED_BUILT}
    assert "fs2/dfl_sae-fp32-opt" in TRAINED


@pytest.mark.parametrize("name", CASES)
def test_faceswap_keeps_the_converted_model(cases: dict[str, Case], name: str) -> None:
    """Faceswap loads fsprec's result at the new precision without switching it back."""
    case = _case(cases, name)
    report = case.load_report
    assert report["error"] is None, report["error"]
    assert report["rebuild"] is False, "Faceswap flagged a precision rebuild"
    assert case.switch_report["error"] is None, case.switch_report["error"]
    assert case.switch_report["rebuild"] is True  # the same source does switch in Faceswap


@pytest.mark.parametrize("name", CASES)
def test_faceswap_builds_the_dtypes_the_file_says(cases: dict[str, Case], name: str) -> None:
    case = _case(cases, name)
    live = case.load_report["dtypes"]
    assert set(live) <= set(case.file_dtypes)
    assert {p: d for p, d in live.items() if p in case.file_dtypes} == {
        p: d for p, d in case.file_dtypes.items() if p in live}


@pytest.mark.parametrize("name", TRAINED)
def test_faceswap_trains_the_converted_model(cases: dict[str, Case], name: str) -> None:
    """Two steps of Faceswap's own trainer: a finite, positive loss that the update moves, with
    convolutions in float16 exactly when the model is mixed."""
    report = _case(cases, name).load_report
    assert report["error"] is None, report["error"]
    losses = report["losses"]
    assert len(losses) == STEPS and all(math.isfinite(x) and x > 0 for x in losses), losses
    assert losses[0] != losses[1], f"the training step left the loss at {losses[0]}"
    if _case(cases, name).mixed:
        assert report["float16_convolutions"] > 0, "the mixed model trained in float32"
    else:
        assert report["float16_convolutions"] == 0, "the float32 model computed in float16"


@pytest.mark.parametrize("name", CASES)
def test_faceswap_save_reinspects_at_the_new_precision(cases: dict[str, Case],
                                                       name: str) -> None:
    """``fsprec inspect --json`` on Faceswap's save of the conversion."""
    case = _case(cases, name)
    assert case.load_report["error"] is None, case.load_report["error"]
    assert case.inspected["format"] == "keras3"  # Faceswap 3 saves .keras, upgrading a .h5
    assert case.inspected["precision"] == case.target


@pytest.mark.parametrize("name", CASES)
def test_fsprec_equals_faceswaps_own_switch(cases: dict[str, Case], name: str) -> None:
    """Config and state as JSON, layer by layer, equal what Faceswap's switch and save write."""
    case = _case(cases, name)
    assert case.switch_report["error"] is None, case.switch_report["error"]
    assert case.load_report["error"] is None, case.load_report["error"]
    # A Faceswap 2 source: both sides are compared after Faceswap 3 upgraded and saved them.
    config, state = case.converted if name.startswith(("fs3/", "built/")) else case.saved
    theirs = case.switch_report["documents"]
    theirs_config, theirs_state = theirs["config"], theirs["state"]
    ours_layers = dict(_leaf_configs(config))
    theirs_layers = dict(_leaf_configs(theirs_config))
    differing = [p for p in theirs_layers if ours_layers.get(p) != theirs_layers[p]]
    assert not differing, f"layers differ from Faceswap's switch: {differing[:5]}"
    assert config == theirs_config
    if not name.startswith(("fs3/", "built/")):
        # Faceswap 3's upgrade stamps its own session; the trainer counts its steps
        assert state["iterations"] == theirs_state["iterations"] + case.steps
        state, theirs_state = ({k: v for k, v in doc.items() if k not in ("sessions",
                                                                         "iterations")}
                               for doc in (state, theirs_state))
    assert state == theirs_state


def _leaf_configs(config: dict, prefix: str = ""):
    for entry in config["config"]["layers"]:
        path = f"{prefix}{entry.get('name') or entry['config'].get('name')}"
        if isinstance(entry.get("config"), dict) and "layers" in entry["config"]:
            yield from _leaf_configs(entry, f"{path}/")
        else:
            yield path, entry

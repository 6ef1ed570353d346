"""fsprec's switch, checked by Faceswap itself.

For each source model (the public fixtures, Faceswap 3 and Faceswap 2, and small Phaze-A models
Faceswap builds here) and each direction:

- Faceswap's own switch: Faceswap loads a copy of the source with ``train.ini`` at the other
  precision (it flags a rebuild and switches), then saves it;
- fsprec converts another copy; Faceswap loads the result as ``faceswap train`` does, with
  ``train.ini`` at the new precision, and must flag no rebuild, build every layer in the dtype
  the file says, train (two steps through its own trainer) with a finite loss, and save a model
  ``fsprec inspect`` reads back at the new precision;
- fsprec's output equals Faceswap's switch as JSON (config and state).

Training steps on the full-size public models take about half a minute each on two CPU cores
(float16 convolutions on CPU are slow), so the trainer runs on the small Phaze-A models, which
Faceswap builds and which carry Phaze-A's dotted layer names; the public models are loaded,
checked and saved.
"""
from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import FIXTURES, copy_tree
from fsprec.core import open_model
from fsprec.core.convert import convert

from .conftest import Faceswap, fsprec_cli

FS3 = ["original-fp32", "original-mixed", "lightweight-fp32", "lightweight-mixed",
       "dfaker-fp32", "dfaker-mixed", "phaze_a-fp32", "phaze_a-mixed",
       "original_lowmem_icnr_convaware_reflect-fp32",
       "original_lowmem_icnr_convaware_reflect-mixed"]
FS2 = ["lightweight-fp32", "lightweight-mixed", "original-fp32", "dfl_sae-fp32-opt"]
# A small Phaze-A, built by Faceswap from these train.ini options (fs_original encoder).
TINY_PHAZE_A = {"model.phaze_a": {
    "output_size": 64, "enc_scaling": 20, "bottleneck_size": 32, "fc_min_filters": 32,
    "fc_max_filters": 32, "fc_upsample_filters": 32, "fc_gblock_min_nodes": 32,
    "fc_gblock_max_nodes": 32, "dec_min_filters": 16, "dec_max_filters": 32,
    "fs_original_min_filters": 16, "fs_original_max_filters": 32, "fs_original_depth": 3}}
TINY = ["tiny_phaze_a-fp32", "tiny_phaze_a-mixed"]
STEPS = 2


@dataclass
class Case:
    """One source model and one direction, with every folder and Faceswap report."""

    name: str
    source: Path
    plugin: str
    target: str
    ini: dict = field(default_factory=dict)
    steps: int = 0
    by_faceswap: Path | None = None  # Faceswap's own switch
    by_fsprec: Path | None = None  # fsprec's conversion, as converted
    loaded: Path | None = None  # fsprec's conversion after Faceswap loaded (and saved) it
    switch_report: dict = field(default_factory=dict)
    load_report: dict = field(default_factory=dict)

    @property
    def mixed(self) -> bool:
        return self.target == "mixed_float16"


def _target(folder: str) -> str:
    return "float32" if folder.endswith("mixed") else "mixed_float16"


def _plugin(folder: Path) -> str:
    return next(p.stem for p in folder.iterdir() if p.suffix in (".keras", ".h5"))


def _job(case: Case, folder: Path, steps: int = 0) -> dict:
    return {"model_dir": str(folder), "plugin": case.plugin, "mixed": case.mixed,
            "steps": steps, "save": True, "ini": case.ini}


def _collect(work: Path) -> tuple[dict[str, Case], dict[str, Path]]:
    """Every case (public fixtures present here, and the small Phaze-A models) and the empty
    folders Faceswap builds the small models in."""
    found: dict[str, Case] = {}
    for kind, names in (("fs3", FS3), ("fs2", FS2)):
        for name in names:
            source = FIXTURES / kind / name
            if source.is_dir():
                found[f"{kind}/{name}"] = Case(f"{kind}/{name}", source, _plugin(source),
                                                _target(name))
    tiny = {name: work / "sources" / name for name in TINY}
    for name, folder in tiny.items():
        folder.mkdir(parents=True)
        found[name] = Case(name, folder, "phaze_a", _target(name), TINY_PHAZE_A, STEPS)
    return found, tiny


def _place(work: Path, case: Case, role: str) -> Path:
    """A copy of the case's source for one side (Faceswap's switch, fsprec's conversion)."""
    if not case.source.is_dir() or not any(case.source.iterdir()):
        raise AssertionError(f"no source model for {case.name}")
    return copy_tree(case.source, work / role / case.name.replace("/", "_"))


@pytest.fixture(scope="module")
def cases(faceswap: Faceswap, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Every case, run: two Faceswap processes in all (one before fsprec, one after)."""
    work = tmp_path_factory.mktemp("cases")
    found, tiny = _collect(work)
    # 1. Faceswap builds the small sources and switches every public source.
    build = [{"model_dir": str(folder), "plugin": "phaze_a", "mixed": name.endswith("mixed"),
              "steps": 0, "save": True, "ini": TINY_PHAZE_A} for name, folder in tiny.items()]
    public = [c for c in found.values() if c.name not in tiny]
    for case in public:
        case.by_faceswap = _place(work, case, "faceswap")
    reports = faceswap.run(build + [_job(c, c.by_faceswap) for c in public])
    for name, report in zip(tiny, reports[:len(build)], strict=True):
        assert report["error"] is None, f"Faceswap could not build {name}: {report['error']}"
    for case, report in zip(public, reports[len(build):], strict=True):
        case.switch_report = report

    # 2. fsprec converts every source; Faceswap switches the small ones and loads every result.
    jobs, pending = [], []
    for case in found.values():
        case.by_fsprec = _place(work, case, "fsprec")
        convert(case.by_fsprec, case.target, backup=False)
        case.loaded = copy_tree(case.by_fsprec, work / "loaded" / case.name.replace("/", "_"))
        if case.name in tiny:
            case.by_faceswap = _place(work, case, "faceswap")
            jobs.append(_job(case, case.by_faceswap))
            pending.append((case, "switch_report"))
        jobs.append(_job(case, case.loaded, case.steps))
        pending.append((case, "load_report"))
    for (case, attribute), report in zip(pending, faceswap.run(jobs), strict=True):
        setattr(case, attribute, report)
    return found


CASES = [f"fs3/{n}" for n in FS3] + [f"fs2/{n}" for n in FS2] + TINY


def _case(cases: dict[str, Case], name: str) -> Case:
    if name not in cases:
        pytest.skip(f"fixture {name} not found under {FIXTURES}")
    return cases[name]


def _keras_documents(folder: Path) -> tuple[dict, dict]:
    """``(config.json, state)`` of a Faceswap 3 folder."""
    model = next(folder.glob("*.keras"))
    with zipfile.ZipFile(model) as archive:
        config = json.loads(archive.read("config.json"))
    state = json.loads(next(folder.glob("*_state.json")).read_text())
    return config, state


def _file_dtypes(folder: Path) -> dict[str, str]:
    return {layer.path: layer.dtype_policy for layer in open_model(folder).leaves(False)
            if layer.dtype_policy is not None}


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
    file_dtypes = _file_dtypes(case.by_fsprec)
    live = case.load_report["dtypes"]
    assert set(live) <= set(file_dtypes)
    assert {p: d for p, d in live.items() if p in file_dtypes} == {
        p: d for p, d in file_dtypes.items() if p in live}


@pytest.mark.parametrize("name", TINY)
def test_faceswap_trains_the_converted_model(cases: dict[str, Case], name: str) -> None:
    losses = _case(cases, name).load_report["losses"]
    assert len(losses) == STEPS and all(math.isfinite(x) for x in losses), losses


@pytest.mark.parametrize("name", CASES)
def test_faceswap_save_reinspects_at_the_new_precision(cases: dict[str, Case],
                                                       name: str) -> None:
    case = _case(cases, name)
    proc = fsprec_cli("inspect", str(case.loaded), "--json")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["format"] == "keras3"  # Faceswap 3 saves .keras, upgrading a .h5 first
    assert document["precision"] == case.target


@pytest.mark.parametrize("name", CASES)
def test_fsprec_equals_faceswaps_own_switch(cases: dict[str, Case], name: str) -> None:
    """Config and state as JSON, layer by layer, equal what Faceswap's switch and save write."""
    case = _case(cases, name)
    # A Faceswap 2 source: both sides are compared after Faceswap 3 upgraded and saved them.
    ours = case.by_fsprec if name.startswith(("fs3/", "tiny")) else case.loaded
    config, state = _keras_documents(ours)
    theirs_config, theirs_state = _keras_documents(case.by_faceswap)
    ours_layers = dict(_leaf_configs(config))
    theirs_layers = dict(_leaf_configs(theirs_config))
    differing = [p for p in theirs_layers if ours_layers.get(p) != theirs_layers[p]]
    assert not differing, f"layers differ from Faceswap's switch: {differing[:5]}"
    assert config == theirs_config
    if not name.startswith(("fs3/", "tiny")):
        for doc in (state, theirs_state):  # Faceswap 3's upgrade stamps its own session
            doc.pop("sessions", None)
    assert state == theirs_state


def _leaf_configs(config: dict, prefix: str = ""):
    for entry in config["config"]["layers"]:
        path = f"{prefix}{entry.get('name') or entry['config'].get('name')}"
        if isinstance(entry.get("config"), dict) and "layers" in entry["config"]:
            yield from _leaf_configs(entry, f"{path}/")
        else:
            yield path, entry


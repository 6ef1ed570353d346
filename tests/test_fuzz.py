"""Fuzzed hostile input: every command, on damaged, planted and bomb folders (fuzz_cases.py).

Each case must exit 0, 1 or 2 with at most one line on stderr and no traceback, leave the
folder's files as they were when it fails, never change anything for the read-only commands,
never exit 0 from convert, rollback or health on a model that does not load, and never start
validation's Keras child on a model fsprec itself refuses. ``FSPREC_FUZZ_N`` sets the number of
cases (default 110: every command on every mutation family once; the long run is
``benchmarks/fuzz.py --n 5000``). The cases run in this process (the CLI's ``main``) with
``validate`` stopping where its child would start; a sample runs through the real ``fsprec``
entry point, and a few damaged models go all the way into the Keras child.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, REPO, copy_tree
from factory import PLUGIN, flip_stored_byte, make_keras2, make_keras3
from fuzz_cases import (COMMANDS, MUTATORS, VALIDATE, bomb, check_case, make_case, run_cli,
                        snapshot)

CASES = int(os.environ.get("FSPREC_FUZZ_N", str(len(MUTATORS) * len(COMMANDS))))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """health's weight-check cache in tmp, never the user's cache folder."""
    monkeypatch.setenv("FSPREC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("seed", range(CASES))
def test_fuzzed_folder_keeps_every_promise(tmp_path, seed):
    folder, argv, description = make_case(seed, tmp_path / "cases")
    outcome = check_case(folder, argv, child=False)
    assert outcome.broken == [], description


# One seed per command (seed 10 * c + f runs command c on family f), the families in turn;
# validate's (73: bit flips) is one its parent refuses: the Keras child is tested below.
SAMPLE = [10 * c + (3 if COMMANDS[c] == VALIDATE else c % len(MUTATORS))
          for c in range(len(COMMANDS))]


@pytest.mark.parametrize("seed", SAMPLE)
def test_real_entry_point_keeps_every_promise(tmp_path, seed):
    """The same checks on the installed ``fsprec`` script: its exit code and stderr as a
    shell sees them (validate's child included, where the parent lets the input through)."""
    folder, argv, description = make_case(seed, tmp_path / "cases")
    outcome = check_case(folder, argv, process=True)
    assert outcome.broken == [], description


def test_the_fuzz_covers_every_command_of_the_cli():
    from fsprec.core.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {c[0] for c in COMMANDS} == set(sub.choices)


def _flip_stored_weights(model: Path) -> None:
    flip_stored_byte(model, "model.weights.h5", 0xFF)


def _not_hdf5(model: Path) -> None:
    members = [(i, zipfile.ZipFile(model).read(i)) for i in zipfile.ZipFile(model).infolist()]
    with zipfile.ZipFile(model, "w") as archive:
        for info, data in members:
            archive.writestr(info, b"not hdf5 " * 100 if info.filename == "model.weights.h5"
                             else data)


@pytest.mark.parametrize("damage", [_flip_stored_weights, _not_hdf5])
def test_validate_refuses_damaged_weights_before_starting_keras(tmp_path, damage):
    folder = make_keras3(tmp_path / "m")
    damage(folder / f"{PLUGIN}.keras")
    before = snapshot(folder)
    code, _, err, started = run_cli([*VALIDATE[:1], str(folder), *VALIDATE[1:]], child=False)
    assert (code, started) == (2, False)
    assert len(err.strip().splitlines()) == 1 and "weights" in err and "Traceback" not in err
    assert snapshot(folder) == before


def _unknown_layer(folder: Path) -> None:
    """A real Faceswap 3 model whose config names a layer class Keras does not know."""
    model = folder / "lightweight.keras"
    members = [(i, zipfile.ZipFile(model).read(i)) for i in zipfile.ZipFile(model).infolist()]
    with zipfile.ZipFile(model, "w") as archive:
        for info, data in members:
            if info.filename == "config.json":
                data = data.replace(b'"LeakyReLU"', b'"NoSuchLayer"', 1)
            archive.writestr(info, data)


def _wrong_filters(folder: Path) -> None:
    """A real Faceswap 2 model whose config no longer matches its weights' shapes."""
    import h5py
    with h5py.File(folder / "lightweight.h5", "r+") as h5:
        config = h5.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        h5.attrs["model_config"] = config.replace('"filters": 128', '"filters": 96', 1)


@pytest.mark.parametrize("source, damage", [("fs3/lightweight-fp32", _unknown_layer),
                                            ("fs2/lightweight-fp32", _wrong_filters)],
                         ids=["fs3-unknown-layer", "fs2-wrong-shapes"])
def test_damage_only_keras_sees_comes_back_as_one_sentence(tmp_path, source, damage):
    """Input the parent cannot tell is damaged reaches the Keras child (seconds each, so only
    two); the child's refusal still ends as exit 2, one sentence, nothing changed. Without
    the shared fixtures: fsprec's tiny model of that format, which Keras cannot rebuild."""
    pytest.importorskip("keras")
    if (FIXTURES / source).is_dir():
        folder = copy_tree(FIXTURES / source, tmp_path / "m")
        for extra in ("SKELETON.json", "reference.json", "reference.npz"):
            (folder / extra).unlink()
        damage(folder)
    else:
        folder = (make_keras3 if source.startswith("fs3") else make_keras2)(tmp_path / "m")
    outcome = check_case(folder, [VALIDATE[0], str(folder), *VALIDATE[1:]])
    assert outcome.reached_child and outcome.code == 2, outcome
    assert outcome.broken == [] and "Keras" in outcome.message, outcome


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=25)


@pytest.fixture(scope="module")
def base_models(tmp_path_factory):
    """One tiny model of each format, copied for each example below."""
    root = tmp_path_factory.mktemp("bases")
    return {"keras3": make_keras3(root / "k3"), "keras2": make_keras2(root / "k2")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(state=json_values, key=st.sampled_from(["mixed_precision_layers", "config", "iterations",
                                                "sessions", None]),
       fmt=st.sampled_from(["keras3", "keras2"]))
def test_any_state_document_is_read_or_refused_in_one_sentence(tmp_path_factory, base_models,
                                                                 state, key, fmt):
    folder = tmp_path_factory.mktemp("m") / "model"
    shutil.copytree(base_models[fmt], folder)
    document = json.loads((folder / f"{PLUGIN}_state.json").read_text())
    document = state if key is None else document | {key: state}
    (folder / f"{PLUGIN}_state.json").write_text(json.dumps(document))
    for argv in (["inspect", str(folder)], ["convert", str(folder), "--to", "mixed_float16",
                                            "--yes"]):
        before = snapshot(folder)
        code, _, err, _ = run_cli(argv)
        assert code in (0, 2) and "Traceback" not in err and "Unexpected" not in err, err
        assert len(err.strip().splitlines()) <= 1
        if code:
            assert snapshot(folder) == before


# VmHWM: this process's own peak resident memory (ru_maxrss would count the forked parent's),
# reset between commands through /proc/self/clear_refs.
PEAK = textwrap.dedent("""
    import contextlib, io, re, sys
    from fsprec.core.cli import main
    folder = sys.argv[1]
    for command in sys.argv[2:]:
        open("/proc/self/clear_refs", "w").write("5")
        name, *rest = command.split()
        with contextlib.redirect_stdout(io.StringIO()):
            code = main([name, folder, *rest])
        status = open("/proc/self/status").read()
        print(int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) // 1024, code, name)
""")
BOMB_COMMANDS = ["inspect", "nan-scan", "health --all", "convert --to mixed_float16 --yes"]


@pytest.mark.parametrize("seed", range(3), ids=["config-40MB", "weights-1000x", "declares-10GB"])
def test_bombs_stay_under_200_mb(tmp_path, seed):
    """A config that inflates to 40 MB, weights that inflate 1000x, a central directory that
    declares 10 GB: refused or read with peak memory under 200 MB, by each command."""
    if not Path("/proc/self/clear_refs").is_file():
        pytest.skip("peak memory is read from /proc (Linux)")
    folder = make_keras3(tmp_path / "m")
    bomb(random.Random(seed), folder)  # seed 0, 1, 2: the three kinds of bomb
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", PEAK, str(folder), *BOMB_COMMANDS],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert "Traceback" not in done.stderr and done.returncode == 0, done.stderr
    results = [line.split() for line in done.stdout.splitlines()]
    assert [r[2] for r in results] == [c.split()[0] for c in BOMB_COMMANDS]
    for peak_mb, code, name in results:
        assert int(code) in (0, 1, 2), name
        assert int(peak_mb) < 200, f"{name}: peak RSS {peak_mb} MB"


def test_closed_pipe_ends_quietly(tmp_path):
    """`fsprec inspect DIR | head -1`: no BrokenPipeError traceback."""
    folder = make_keras3(tmp_path / "m")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(f"{sys.executable} -m fsprec.core.cli inspect {folder} | head -1",
                          shell=True, capture_output=True, text=True, env=env, cwd=REPO,
                          check=False)
    assert done.stdout.count("\n") == 1 and done.stderr == ""


def test_verbose_keeps_the_library_text(tmp_path):
    folder = make_keras3(tmp_path / "m")
    (folder / f"{PLUGIN}.keras").write_bytes(b"PK\x03\x04 damaged")
    code, _, err, _ = run_cli(["inspect", str(folder)])
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err, _ = run_cli(["inspect", str(folder), "--verbose"])
    assert code == 2 and "BadZipFile" in err and err.strip().splitlines()[-1].startswith("fsprec:")

"""Fuzzed hostile input: every command, on damaged, planted and bomb folders (fuzz_cases.py).

Each case must exit 0, 1 or 2 with at most one line on stderr and no traceback, leave the
folder's files as they were when it fails, never change anything for inspect / nan-scan,
and never exit 0 from convert on a model that does not load. ``FSPREC_FUZZ_N`` sets the
number of cases (the long run is ``benchmarks/fuzz.py --n 5000``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO
from factory import PLUGIN, make_keras3
from fuzz_cases import bomb, check_case, make_case, run_cli, snapshot

CASES = int(os.environ.get("FSPREC_FUZZ_N", "120"))


@pytest.mark.parametrize("seed", range(CASES))
def test_fuzzed_folder_keeps_every_promise(tmp_path, seed):
    folder, argv, description = make_case(seed, tmp_path)
    assert check_case(folder, argv) == [], description


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(state=json_values, key=st.sampled_from(["mixed_precision_layers", "config", "iterations",
                                                "sessions", None]))
def test_any_state_document_is_read_or_refused_in_one_sentence(tmp_path_factory, state, key):
    folder = make_keras3(tmp_path_factory.mktemp("m"))
    document = json.loads((folder / f"{PLUGIN}_state.json").read_text())
    document = state if key is None else document | {key: state}
    (folder / f"{PLUGIN}_state.json").write_text(json.dumps(document))
    for argv in (["inspect", str(folder)], ["convert", str(folder), "--to", "mixed_float16",
                                            "--yes"]):
        before = snapshot(folder)
        code, _, err = run_cli(argv)
        assert code in (0, 2) and "Traceback" not in err and "Unexpected" not in err, err
        assert len(err.strip().splitlines()) <= 1
        if code:
            assert snapshot(folder) == before


# VmHWM: this process's own peak resident memory (ru_maxrss would count the forked parent's).
PEAK = textwrap.dedent("""
    import re, sys
    from fsprec.core.cli import main
    code = main(sys.argv[1:])
    status = open("/proc/self/status").read()
    print(int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) // 1024, code)
""")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("command", [["inspect"], ["nan-scan"],
                                     ["convert", "--to", "mixed_float16", "--yes"]])
def test_bombs_stay_under_200_mb(tmp_path, seed, command):
    """A config that inflates to 40 MB, weights that inflate 1000x, a central directory that
    declares 10 GB: refused or read with peak memory under 200 MB."""
    import random
    if not Path("/proc/self/status").is_file():
        pytest.skip("peak memory is read from /proc (Linux)")
    folder = make_keras3(tmp_path / "m")
    bomb(random.Random(seed), folder)  # seed 0, 1, 2: the three kinds of bomb
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", PEAK, command[0], str(folder), *command[1:]],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    peak_mb, code = map(int, done.stdout.split()[-2:])
    assert code in (0, 1, 2) and "Traceback" not in done.stderr
    assert peak_mb < 200, f"peak RSS {peak_mb} MB"


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
    code, _, err = run_cli(["inspect", str(folder)])
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["inspect", str(folder), "--verbose"])
    assert code == 2 and "BadZipFile" in err and err.strip().splitlines()[-1].startswith("fsprec:")


"""Loss history from Faceswap's TensorBoard logs, and the health check's memory bound."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, REPO, fixture_path, needs_fixtures
from health_factory import write_events
from fsprec.core.tblog import read_history
from fsprec.core.task import Task

# Read out once from the fixtures' logs with tensorboard's EventFileLoader (TensorFlow's own
# record reader), tags batch_face_A / batch_face_B / batch_total at each step.
FP32 = {"first": 1, "last": 20, "face_A": {1: 2.5444817543029785, 20: 2.5263023376464844},
        "face_B": {1: 2.550374984741211, 20: 2.5213987827301025},
        "total": {1: 5.0948567390441895, 20: 5.047700881958008}}
MIXED = {"first": 1, "last": 12, "face_A": {1: 2.5354247093200684, 12: 2.5189342498779297},
         "face_B": {1: 2.5113613605499268, 12: 2.5540080070495605},
         "total": {1: 5.046786308288574, 12: 5.07294225692749}}


@needs_fixtures
@pytest.mark.parametrize("name, expected", [("original-fp32-trained", FP32),
                                            ("original-mixed-trained", MIXED)])
def test_real_faceswap_logs(name, expected):
    history = read_history(fixture_path(f"fs3/{name}"), "original")
    assert history.problems == []
    assert history.sides == ["face_A", "face_B"]
    (session,) = history.sessions
    assert (session.number, session.first, session.last) == (1, expected["first"],
                                                             expected["last"])
    for tag in ("face_A", "face_B", "total"):
        steps, values = history.curve(tag)
        assert steps.tolist() == list(range(expected["first"], expected["last"] + 1))
        for step, value in expected[tag].items():
            assert values[steps.tolist().index(step)] == pytest.approx(value, rel=1e-7)
    assert history.nan_steps() == []


@needs_fixtures
def test_values_match_tensorboards_own_reader():
    """The same numbers as tensorboard's EventFileLoader (which imports TensorFlow if present),
    read in a child process so this one stays free of TensorFlow."""
    folder = fixture_path("fs3/original-fp32-trained")
    code = ("import json, glob, sys\n"
            "from tensorboard.backend.event_processing.event_file_loader import "
            "EventFileLoader\n"
            "out = {}\n"
            f"for path in glob.glob({str(folder)!r} + '/original_logs/session_*/**/events*',"
            " recursive=True):\n"
            "    for event in EventFileLoader(path).Load():\n"
            "        for v in event.summary.value:\n"
            "            if v.tag == 'batch_face_B':\n"
            "                out[event.step] = float(v.tensor.float_val[0])\n"
            "print(json.dumps(out))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    theirs = {int(k): v for k, v in json.loads(run.stdout.strip().splitlines()[-1]).items()}
    steps, values = read_history(folder, "original").curve("face_B")
    assert dict(zip(steps.tolist(), values.tolist(), strict=True)) == theirs


def test_sessions_nan_steps_and_a_cut_record(tmp_path):
    logs = tmp_path / "villain_logs"
    write_events(logs / "session_1" / "events.out.tfevents.1.host", [1, 2, 3],
                 {"face_A": [0.5, 0.4, 0.3], "face_B": [0.6, 0.5, 0.4], "total": [1.1, .9, .7]})
    second = logs / "session_2" / "train" / "events.out.tfevents.2.host"
    write_events(second, [4, 5, 6], {"face_A": [0.3, math.nan, math.nan],
                                     "face_B": [0.4, 0.5, math.inf]})
    with open(second, "ab") as handle:  # a record cut short: training was killed mid-write
        handle.write(b"\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    history = read_history(tmp_path, "villain")
    assert [(s.number, s.first, s.last) for s in history.sessions] == [(1, 1, 3), (2, 4, 6)]
    assert history.nan_steps() == [5, 6]
    steps, values = history.curve("face_A")
    assert steps.tolist() == [1, 2, 3, 4, 5, 6]
    assert np.isnan(values[4])
    doc = history.to_json()
    assert doc["sessions"][1]["last_loss"] == {"face_A": None, "face_B": None}
    assert doc["sessions"][0]["last_loss"]["face_B"] == pytest.approx(0.4)
    assert doc["nan_iterations"] == [5, 6]


def test_garbage_log_is_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "m_logs" / "session_1" / "events.out.tfevents.1.x"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00abcd\xff\xff\xff\xff\xffxxxx")
    history = read_history(tmp_path, "m")
    assert history.sessions == [] and len(history.problems) == 1


def test_no_logs_is_an_empty_history(tmp_path):
    assert read_history(tmp_path, "original").sessions == []


def test_reading_logs_reports_progress(tmp_path):
    write_events(tmp_path / "m_logs" / "session_1" / "events.out.tfevents.1.x", [1, 2],
                 {"face_A": [1.0, 2.0]})
    seen: list[tuple[int, int]] = []
    read_history(tmp_path, "m", Task(lambda stage, done, total: seen.append((done, total))))
    assert seen[-1][0] == seen[-1][1] > 0


_MEMORY_PROBE = """
import json, resource, sys
from pathlib import Path
from fsprec.core import health
from fsprec.core.health_cache import HealthCache
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = health.check(sys.argv[1], cache=HealthCache(Path(sys.argv[2])), with_loss=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"verdict": report.live.verdict, "values": report.live.check.values,
                  "grown_kb": after - before}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="resource.getrusage is POSIX only")
@pytest.mark.skipif(not (FIXTURES / "rehydrate.py").is_file(), reason="no rehydrate.py")
def test_memory_stays_bounded_on_a_full_size_model(tmp_path):
    model = tmp_path / "original-mixed"
    subprocess.run([sys.executable, str(FIXTURES / "rehydrate.py"),
                    str(fixture_path("fs3/original-mixed")), str(model)], check=True,
                   capture_output=True)
    size = (model / "original.keras").stat().st_size
    assert size > 300 * 1024 * 1024
    run = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(model),
                          str(tmp_path / "cache.json")], capture_output=True, text=True,
                         check=True, cwd=REPO)
    result = json.loads(run.stdout)
    assert result["verdict"] == "clean" and result["values"] == 82_062_470
    assert result["grown_kb"] * 1024 < 128 * 1024 * 1024  # the model is 313 MB

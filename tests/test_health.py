"""Model health: the timeline of versions, weight checks, verdicts, advice and the cache."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_tree, fixture_path, needs_fixtures, run_cli_blocked
from health_factory import (BACKUP_NAN, BIAS_INF, KERNEL_NAN, OVERFLOW, UNDERFLOW, make_history,
                            plant)
from fsprec.core import health, nanscan
from fsprec.core.cli import main
from fsprec.core.errors import Cancelled, FsprecError
from fsprec.core.health_cache import HealthCache
from fsprec.core.modelfile import open_model
from fsprec.core.task import Task

pytestmark = needs_fixtures


@pytest.fixture
def cache(tmp_path: Path) -> HealthCache:
    return HealthCache(tmp_path / "cache" / "health.json")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    """One damaged history, checked once (every version), for the tests that only read it;
    its cache dir makes the CLI runs on it cheap."""
    root = tmp_path_factory.mktemp("history")
    history = make_history(root)
    cache_dir = root / "user-cache"
    report = health.check(history.model_dir, all_versions=True,
                          cache=HealthCache(cache_dir / "health.json"))
    return history, report, cache_dir


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FSPREC_CACHE_DIR", str(tmp_path / "user-cache"))


def test_timeline_lists_every_version_live_first_then_newest(shared):
    history = shared[0]
    _, versions = health.timeline(history.model_dir)
    assert [(v.id, v.kind, v.iterations) for v in versions] == [
        ("live", "live", 12), ("backup", "backup", 11), ("snapshot-10", "snapshot", 10),
        ("snapshot-5", "snapshot", 5), ("archive-20260101_120000", "archive", 3)]
    assert all(v.precision == "mixed_float16" for v in versions)
    assert versions[0].saved == "2026-11-24T19:40:16"  # Keras's date_saved
    assert versions[2].folder == history.snapshot_at_risk
    assert all(v.size > 500_000 for v in versions)


def test_verdicts_name_the_layers_and_find_the_newest_clean(shared):
    history, _, cache_dir = shared
    report = health.check(history.model_dir, cache=HealthCache(cache_dir / "health.json"))
    verdicts = {v.id: v.verdict for v in report.versions}
    assert verdicts == {"live": "damaged", "backup": "damaged", "snapshot-10": "at_risk",
                        "snapshot-5": "clean", "archive-20260101_120000": "not_checked"}
    assert report.newest_clean.id == "snapshot-5"
    live = report.live
    assert {(layer.path, layer.nan, layer.inf) for layer in live.check.damaged} == {
        (KERNEL_NAN, 5, 0), (BIAS_INF, 0, 2)}
    assert [layer.path for layer in report.version("backup").check.damaged] == [BACKUP_NAN]
    risky = {layer.path: layer for layer in report.version("snapshot-10").check.at_risk}
    assert set(risky) == {OVERFLOW, UNDERFLOW}
    assert risky[OVERFLOW].overflow == 7 and risky[OVERFLOW].max_abs == 70000.0
    assert "larger than float16 can hold" in risky[OVERFLOW].risk
    assert risky[UNDERFLOW].underflow == 200
    assert "become zero" in risky[UNDERFLOW].risk
    assert live.summary.startswith("Broken: 2 layer(s)") and KERNEL_NAN in live.summary
    assert report.version("snapshot-10").summary.startswith(
        f"At risk: 1 layer(s) have weights at or near float16's largest value ({OVERFLOW})")


def test_all_versions_checks_past_the_first_clean(shared):
    report = shared[1]
    assert report.version("archive-20260101_120000").verdict == "clean"
    assert report.complete


def test_a_clean_live_model_is_the_only_one_read(tmp_path, cache, monkeypatch):
    history = make_history(tmp_path, live_damaged=False)
    scanned: list[Path] = []
    real = health.scan_weights

    def spy(model, task, ranges):
        scanned.append(model.model_file)
        return real(model, task, ranges=ranges)
    monkeypatch.setattr(health, "scan_weights", spy)
    report = health.check(history.model_dir, cache=cache)
    assert report.live.verdict == "clean" and report.newest_clean is report.live
    assert scanned == [history.model_dir / "original.keras"]
    assert report.advice == []


def test_advice_rolls_back_then_switches_or_pins(shared):
    advice = shared[1].advice
    assert [a.action for a in advice] == ["rollback", "switch", "pin"]
    assert advice[0].version == "snapshot-5" and "Snapshot at 5 iterations" in advice[0].text
    assert advice[1].target == "float32" and advice[1].text.startswith("Then switch")
    assert advice[2].target == "mixed_float16"
    assert set(advice[2].pins) == {"conv_128_0_conv2d", "upscale_64_1_conv2d_conv2d"}


def test_float16_range_matters_only_for_float16_layers(copy_fixture, cache):
    folder = copy_fixture("fs3/original-fp32")
    plant(open_model(folder), OVERFLOW, 70000.0, count=7)
    report = health.check(folder, cache=cache, with_loss=False)
    assert report.live.verdict == "clean"
    assert report.live.check.max_abs == 70000.0
    assert report.advice == []


def test_weights_too_small_for_float16_put_a_mixed_model_at_risk(copy_fixture, cache):
    folder = copy_fixture("fs3/original-mixed")
    plant(open_model(folder), UNDERFLOW, 1e-9, count=200)
    report = health.check(folder, cache=cache, with_loss=False)
    assert report.live.verdict == "at_risk"
    assert "too small for float16" in report.live.summary and UNDERFLOW in report.live.summary
    assert [a.action for a in report.advice] == ["switch", "pin"]  # nothing to roll back from
    assert report.advice[0].text.startswith("Switch to float32")
    assert report.advice[1].pins == ("face_out_a_0_conv2d",)


def test_the_cache_spares_a_rescan_until_the_file_changes(tmp_path, monkeypatch):
    history = make_history(tmp_path, live_damaged=False)
    plant(open_model(history.model_dir), KERNEL_NAN, np.nan, count=1)
    path = tmp_path / "cache.json"
    first = health.check(history.model_dir, cache=HealthCache(path), with_loss=False)

    def no_scan(*args, **kwargs):
        raise AssertionError("weights read again")
    monkeypatch.setattr(health, "scan_weights", no_scan)
    again = health.check(history.model_dir, cache=HealthCache(path), with_loss=False)  # restart
    assert again.to_json() == first.to_json()
    assert health.cached_verdict(history.model_dir, HealthCache(path)) == "damaged"
    os.utime(history.model_dir / "original.keras", ns=(1, 1))
    assert health.cached_verdict(history.model_dir, HealthCache(path)) is None
    with pytest.raises(AssertionError, match="read again"):
        health.check_live(history.model_dir, cache=HealthCache(path))


def test_a_damaged_cache_file_is_ignored(tmp_path):
    history = make_history(tmp_path, live_damaged=False)
    path = tmp_path / "cache.json"
    path.write_text("{not json")
    assert health.check_live(history.model_dir, cache=HealthCache(path)) == "clean"
    assert health.cached_verdict(history.model_dir, HealthCache(path)) == "clean"


def test_an_unreadable_snapshot_is_reported_not_fatal(tmp_path, cache):
    history = make_history(tmp_path)
    (history.snapshot_at_risk / "original.keras").write_bytes(b"not a zip")
    report = health.check(history.model_dir, cache=cache)
    broken = report.version("snapshot-10")
    assert broken.verdict == "unreadable" and broken.summary.startswith("Can't be read")
    assert report.newest_clean.id == "snapshot-5"


def test_progress_and_cancel(tmp_path, cache):
    history = make_history(tmp_path, live_damaged=False)
    stages: list[str] = []
    health.check(history.model_dir, Task(lambda s, d, t: stages.append(s)), cache=cache)
    assert any(s.startswith("Checking 1 of 5: Live model") for s in stages)
    assert "Reading logs" in stages

    task = Task(lambda s, d, t: task.cancel())
    with pytest.raises(Cancelled):
        health.check(history.model_dir, task, cache=HealthCache(tmp_path / "other.json"))


def test_nan_scan_keeps_its_json_and_measures_ranges_on_request(shared):
    history = shared[0]
    plain = nanscan.scan_weights(history.snapshot_at_risk)
    assert set(plain.to_json()["layers"][0]) == {"layer", "size", "nan", "inf", "clean"}
    ranged = nanscan.scan_weights(history.snapshot_at_risk, ranges=True)
    by_layer = {layer.layer: layer for layer in ranged.layers}
    assert by_layer[OVERFLOW].overflow == 7 and by_layer[UNDERFLOW].underflow == 200
    assert [layer.nan for layer in plain.layers] == [layer.nan for layer in ranged.layers]


def test_nan_and_ranges_in_one_block():
    finding = nanscan.LayerFinding("x", 6)
    finding.tally(np.array([np.nan, np.inf, 1e5, -3.0, 1e-9, 0.0], np.float32),
                   nanscan.Ranges())
    assert (finding.nan, finding.inf, finding.overflow, finding.underflow) == (1, 1, 1, 1)
    assert finding.max_abs == pytest.approx(1e5)


# --- the command line --------------------------------------------------------------------------

def test_cli_health_json_exits_1_for_a_damaged_live_model(shared, capsys, monkeypatch):
    history, _, cache_dir = shared
    monkeypatch.setenv("FSPREC_CACHE_DIR", str(cache_dir))
    assert main(["health", str(history.model_dir), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["live_verdict"] == "damaged" and doc["newest_clean"] == "snapshot-5"
    assert [v["id"] for v in doc["versions"]][:2] == ["live", "backup"]
    live = doc["versions"][0]
    assert set(live) >= {"id", "kind", "label", "folder", "model_file", "iterations", "saved",
                         "precision", "size", "verdict", "summary", "damaged_layers",
                         "at_risk_layers", "check"}
    assert sorted(live["damaged_layers"]) == sorted([KERNEL_NAN, BIAS_INF])
    assert doc["advice"][0] == {"action": "rollback", "text": doc["advice"][0]["text"],
                                "version": "snapshot-5", "target": None, "pins": []}
    assert doc["loss"]["sides"] == ["face_A", "face_B"]


def test_cli_health_text_and_exit_0_when_healthy(tmp_path, capsys):
    history = make_history(tmp_path, live_damaged=False)
    assert main(["health", str(history.model_dir)]) == 0
    out = capsys.readouterr().out
    assert "Live model: Healthy" in out and "Session 1: iterations 1-12" in out


def test_cli_health_text_names_the_rollback_command(shared, capsys, monkeypatch):
    history, _, cache_dir = shared
    monkeypatch.setenv("FSPREC_CACHE_DIR", str(cache_dir))
    assert main(["health", str(history.model_dir)]) == 1
    out = capsys.readouterr().out
    assert "--to snapshot-5" in out and "Roll back to Snapshot at 5 iterations" in out


def test_cli_health_bad_input_exits_2(tmp_path, capsys):
    assert main(["health", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err




def test_health_and_rollback_work_without_tensorflow_keras_or_qt(tmp_path):
    history = make_history(tmp_path, live_damaged=False)
    env = {"FSPREC_CACHE_DIR": str(tmp_path / "cache")}
    for argv, code in ((["health", history.model_dir, "--json"], 0),
                       (["rollback", history.model_dir, "--to", "snapshot-5", "--yes"], 0)):
        run = run_cli_blocked(argv, env)
        assert run.returncode == code, run.stderr
        if argv[0] == "health":
            assert json.loads(run.stdout)["loss"]["sessions"][0]["last_iteration"] == 12


def test_bad_version_file_is_bad_input_not_a_crash(tmp_path):
    folder = copy_tree(fixture_path("fs3/original-fp32-trained"), tmp_path / "m")
    (folder / "original.keras.bk").write_bytes(b"garbage")
    report = health.check(folder, all_versions=True, cache=HealthCache(tmp_path / "c.json"))
    assert report.version("backup").verdict == "unreadable"
    with pytest.raises(FsprecError, match="No version 'snapshot-1'"):
        report.version("snapshot-1")

"""Roll back: the current files are archived unchanged, the version becomes the live model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import copy_tree, fixture_path, needs_fixtures, snapshot
from health_factory import make_history
from fsprec.core import health, rollback
from fsprec.core.cli import main
from fsprec.core.errors import FsprecError
from fsprec.core.health_cache import HealthCache

pytestmark = needs_fixtures


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FSPREC_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))


def _live(folder: Path) -> dict[str, str]:
    """The live files (what a restore archives) with their hashes."""
    return {k: v for k, v in snapshot(folder).items()
            if not k.endswith(".bk") and "_archived_" not in k}


def _archives(folder: Path) -> set[Path]:
    return set(folder.glob("original_archived_*"))


def test_roll_back_to_a_snapshot_archives_what_was_live(tmp_path):
    history = make_history(tmp_path)
    before = _live(history.model_dir)
    backups = {k: v for k, v in snapshot(history.model_dir).items() if k.endswith(".bk")}
    old_archives = _archives(history.model_dir)
    plan = rollback.plan(history.model_dir, "snapshot-5")
    assert "Archived first (moved, not deleted)" in " ".join(plan.summary())
    assert [p.name for p in plan.archived] == ["original.keras", "original_logs",
                                               "original_state.json"]
    result = rollback.run(plan)
    (archive,) = _archives(history.model_dir) - old_archives
    assert result.archive_dir == archive
    assert snapshot(archive) == before  # the archive is exactly what was live
    assert {k: v for k, v in snapshot(history.model_dir).items() if k.endswith(".bk")} == backups
    restored = {k: v for k, v in _live(history.model_dir).items()}
    assert restored == snapshot(history.snapshot_clean)  # model, state and logs of the snapshot
    assert json.loads((history.model_dir / "original_state.json").read_text())[
        "iterations"] == 5
    assert result.logs == [history.model_dir / "original_logs" / "session_1"]
    report = health.check(history.model_dir, cache=HealthCache(tmp_path / "after.json"))
    assert report.live.verdict == "clean" and report.live.iterations == 5
    assert any(v.kind == "archive" and v.verdict == "not_checked" for v in report.versions)
    assert not list(history.model_dir.glob(".*fsprec*"))  # no temp file or journal left


def test_roll_back_to_the_backup_is_faceswaps_restore(tmp_path):
    folder = copy_tree(fixture_path("fs3/original-fp32-trained"), tmp_path / "original")
    for extra in ("SKELETON.json", "reference.json", "reference.npz"):
        (folder / extra).unlink()
    before = _live(folder)
    bk_model = (folder / "original.keras.bk").read_bytes()
    result = rollback.run(rollback.plan(folder, "backup"))
    assert snapshot(result.archive_dir) == before
    assert (folder / "original.keras").read_bytes() == bk_model
    assert (folder / "original.keras.bk").read_bytes() == bk_model  # .bk kept, as Faceswap does


def test_a_damaged_version_is_refused_and_nothing_changes(tmp_path):
    history = make_history(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(FsprecError, match="is damaged"):
        rollback.plan(history.model_dir, "backup")
    with pytest.raises(FsprecError, match="live model already"):
        rollback.plan(history.model_dir, "live")
    with pytest.raises(FsprecError, match="No version 'snapshot-99'"):
        rollback.plan(history.model_dir, "snapshot-99")
    assert snapshot(tmp_path) == before


def test_a_folder_changed_after_the_plan_is_refused(tmp_path):
    history = make_history(tmp_path)
    plan = rollback.plan(history.model_dir, "snapshot-5")
    (history.model_dir / "original_state.json").write_text("{}")
    before = snapshot(tmp_path)
    with pytest.raises(FsprecError, match="changed since the roll back was planned"):
        rollback.run(plan)
    assert snapshot(tmp_path) == before


def test_cancel_while_copying_leaves_the_folder_as_it_was(tmp_path):
    from fsprec.core.errors import Cancelled
    from fsprec.core.task import Task

    history = make_history(tmp_path)
    plan = rollback.plan(history.model_dir, "snapshot-5")
    before = snapshot(tmp_path)
    task = Task(lambda stage, done, total: task.cancel())
    with pytest.raises(Cancelled):
        rollback.run(plan, task)
    assert snapshot(tmp_path) == before


def test_an_at_risk_version_may_be_restored_with_a_note(tmp_path):
    history = make_history(tmp_path)
    plan = rollback.plan(history.model_dir, "snapshot-10")
    assert plan.verdict == "at_risk" and "Note: this version is at risk." in plan.summary()


def test_cli_rollback(tmp_path, capsys):
    history = make_history(tmp_path)
    assert main(["rollback", str(history.model_dir), "--to", "archive-20260101_120000",
                 "--yes"]) == 0
    out = capsys.readouterr().out
    assert "Roll original back to Archived 2026-01-01 12:00 (3 iterations)." in out
    assert "the previous files are in" in out
    assert json.loads((history.model_dir / "original_state.json").read_text())[
        "iterations"] == 3
    assert (history.model_dir / "original_archived_20260101_120000").is_dir()  # kept
    before = snapshot(tmp_path)
    assert main(["rollback", str(history.model_dir), "--to", "nope", "--yes"]) == 2
    assert "No version 'nope'" in capsys.readouterr().err
    assert snapshot(tmp_path) == before

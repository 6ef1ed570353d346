"""The conversion job: lossless, backed up, atomic, cancellable, Faceswap-identical."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import convert_killed, fixture_path, needs_fixtures, snapshot
from factory import ELIGIBLE, make_keras2, make_keras3
from fsprec.core import Cancelled, FsprecError, atomic, convert, open_model
from fsprec.core.archive import data_offset
from fsprec.core.atomic import TMP_SUFFIX
from fsprec.core.convert import recover
from fsprec.core.task import Task


def raw_members(path: Path) -> dict[str, tuple[int, bytes]]:
    """Each zip member's compression type and raw (still compressed) bytes."""
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        found = {}
        for info in archive.infolist():
            handle.seek(data_offset(handle, info))
            found[info.filename] = (info.compress_type, handle.read(info.compress_size))
        return found


def no_temp_files(folder: Path) -> bool:
    return not list(folder.rglob(f"*{TMP_SUFFIX}")) and not list(folder.glob(".fsprec-*"))


@needs_fixtures
@pytest.mark.parametrize("source,switched,target", [
    ("fs3/original-fp32", "fs3/original-fp32-switched-to-mixed", "mixed_float16"),
    ("fs3/original-mixed", "fs3/original-mixed-switched-to-fp32", "float32"),
    ("fs2/lightweight-fp32", "fs2/lightweight-fp32_to_mixed", "mixed_float16"),
    ("fs2/lightweight-mixed", "fs2/lightweight-mixed_to_fp32", "float32")])
def test_convert_matches_faceswap_and_keeps_weights(copy_fixture, source, switched, target):
    folder = copy_fixture(source)
    before = open_model(folder)
    original_bytes = before.model_file.read_bytes()
    result = convert.convert(folder, target)
    after = open_model(folder)
    reference = open_model(fixture_path(switched))
    assert after.config == reference.config
    assert after.precision == target
    if before.format == "keras3":
        old, new = raw_members(before.model_file.with_name("original.keras.bk")), \
            raw_members(after.model_file)
        assert list(old) == list(new)
        for name in old:
            if name != "config.json":
                assert new[name] == old[name]
        assert json.loads(zipfile.ZipFile(after.model_file).read("metadata.json")) == \
            json.loads(zipfile.ZipFile(fixture_path(source) / "original.keras")
                       .read("metadata.json"))
    else:
        with h5py.File(fixture_path(source) / before.model_file.name) as a, \
                h5py.File(after.model_file) as b:
            names: list[str] = []
            a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for name in names:
                assert np.array_equal(a[name][()], b[name][()])
                assert a[name].dtype == b[name].dtype
    if reference.format == "keras3":  # Faceswap 3's switched state, byte for byte
        ref_state = (fixture_path(switched) / "original_state.json").read_bytes()
        assert after.state_file.read_bytes() == ref_state
    assert after.state.mixed_precision == (target != "float32")
    # Faceswap-style backups of both files, holding the old bytes.
    assert [p.name for p in result.backups] == [f"{before.model_file.name}.bk",
                                                f"{before.plugin}_state.json.bk"]
    assert result.backups[0].read_bytes() == original_bytes
    assert no_temp_files(folder)


@needs_fixtures
def test_trained_model_keeps_optimizer_and_logs(copy_fixture):
    folder = copy_fixture("fs3/original-fp32-trained")
    before = raw_members(folder / "original.keras")
    convert.convert(folder, "mixed_float16")
    after = raw_members(folder / "original.keras")
    assert after["optimizer.pt"] == before["optimizer.pt"]
    assert after["optimizer.pt"][0] == zipfile.ZIP_DEFLATED
    assert after["model.weights.h5"] == before["model.weights.h5"]
    assert (folder / "original_logs").is_dir()
    state = json.loads((folder / "original_state.json").read_text())
    old_state = json.loads((fixture_path("fs3/original-fp32-trained") /
                            "original_state.json").read_text())
    assert list(state) == list(old_state)
    assert state["sessions"] == old_state["sessions"]
    assert state["iterations"] == 20
    assert {k: v for k, v in state["config"].items() if k != "mixed_precision"} == \
        {k: v for k, v in old_state["config"].items() if k != "mixed_precision"}


@pytest.mark.parametrize("maker", [make_keras3, make_keras2])
def test_round_trip_restores_every_dtype_and_byte_of_weights(tmp_path, maker):
    folder = maker(tmp_path / "m")
    first = open_model(folder)
    dtypes = {leaf.path: leaf.dtype_policy for leaf in first.leaves()}
    weights_before = _weights(first)
    convert.convert(folder, "mixed_float16")
    mixed = open_model(folder)
    assert mixed.precision == "mixed_float16"
    assert mixed.state.mixed_precision_layers == ELIGIBLE
    convert.convert(folder, "float32")
    back = open_model(folder)
    assert {leaf.path: leaf.dtype_policy for leaf in back.leaves()} == dtypes
    assert _weights(back) == weights_before


def _weights(model) -> dict[str, bytes]:
    if model.format == "keras3":
        return {k: v[1] for k, v in raw_members(model.model_file).items() if k != "config.json"}
    with h5py.File(model.model_file) as h5:
        found: dict[str, bytes] = {}
        h5.visititems(lambda n, o: found.__setitem__(n, o[()].tobytes())
                      if isinstance(o, h5py.Dataset) else None)
        return found


def _first_dataset(h5: h5py.File) -> str:
    found: list[str] = []
    h5.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
    return found[0]


@pytest.mark.parametrize("stored", ["contiguous", "gzip-chunked", "compact"])
def test_a_keras2_copy_whose_weights_changed_is_refused(tmp_path, monkeypatch, stored):
    """The written .h5 is compared with its source dataset by dataset before it replaces it:
    a weight changed in the copy (as a library rewriting more than the attribute would) is
    refused, however the dataset is stored, and the folder is left as it was."""
    folder = make_keras2(tmp_path / "m")
    if stored != "contiguous":
        with h5py.File(folder / "tiny.h5", "r+") as h5:
            name = _first_dataset(h5)
            data = h5[name][()]
            del h5[name]
            if stored == "compact":
                space = h5py.h5s.create_simple(data.shape)
                plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                plist.set_layout(h5py.h5d.COMPACT)
                h5py.h5d.create(h5.id, name.encode(), h5py.h5t.IEEE_F32LE, space,
                                dcpl=plist).write(h5py.h5s.ALL, h5py.h5s.ALL, data)
            else:
                h5.create_dataset(name, data=data, compression="gzip", chunks=True)
    before = snapshot(folder)
    real_copy = atomic.copy_temp

    def copy_then_change_a_weight(source, target, *args, **kwargs):
        real_copy(source, target, *args, **kwargs)
        with h5py.File(atomic.temp_path(target), "r+") as h5:
            dataset = h5[_first_dataset(h5)]
            dataset[...] = dataset[()] + 1

    monkeypatch.setattr(atomic, "copy_temp", copy_then_change_a_weight)
    with pytest.raises(FsprecError, match="Verification failed: weights .* differ from the "
                                          "source"):
        convert.convert(folder, "mixed_float16")
    assert snapshot(folder) == before
    monkeypatch.setattr(atomic, "copy_temp", real_copy)
    convert.convert(folder, "mixed_float16")  # the same copy, unchanged, passes
    assert open_model(folder).precision == "mixed_float16"


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["kernel-copy", "portable-copy"])
def test_unknown_members_kept_with_their_compression(tmp_path, monkeypatch, kernel_copy):
    if not kernel_copy:  # as on Windows and macOS
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    folder = make_keras3(tmp_path / "m")
    before = raw_members(folder / "tiny.keras")
    convert.convert(folder, "mixed_float16")
    after = raw_members(folder / "tiny.keras")
    assert list(after) == list(before)
    assert after["notes/unknown.bin"] == before["notes/unknown.bin"]
    assert after["optimizer.pt"] == before["optimizer.pt"]
    assert zipfile.ZipFile(folder / "tiny.keras").testzip() is None


def test_pins_are_written_and_reported(tmp_path):
    folder = make_keras3(tmp_path / "m")
    convert.convert(folder, "mixed_float16", pins=["dense"])
    model = open_model(folder)
    assert model.precision == "mixed_float16"
    assert model.pinned == ["dense"]
    policies = {leaf.path: leaf.dtype_policy for leaf in model.leaves()}
    assert policies["encoder/dense"] == "float32"
    assert policies["encoder/flatten"] == "mixed_float16"


def test_out_dir_writes_a_copy_and_leaves_the_source(tmp_path):
    folder = make_keras3(tmp_path / "m")
    before = snapshot(folder)
    result = convert.convert(folder, "mixed_float16", out_dir=tmp_path / "copy")
    assert snapshot(folder) == before
    assert result.backups == []
    copy = open_model(tmp_path / "copy")
    assert copy.precision == "mixed_float16"
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["tiny.keras",
                                                                    "tiny_state.json"]
    with pytest.raises(FsprecError, match="already holds"):
        convert.convert(folder, "mixed_float16", out_dir=tmp_path / "copy")


def test_no_op_says_so_and_changes_nothing(tmp_path):
    folder = make_keras3(tmp_path / "m")
    before = snapshot(folder)
    plan = convert.plan(folder, "float32")
    assert plan.nothing_to_do
    assert "already float32" in plan.summary()[0]
    convert.run(plan)
    assert snapshot(folder) == before


def test_no_backup_option(tmp_path):
    folder = make_keras3(tmp_path / "m")
    result = convert.convert(folder, "mixed_float16", backup=False)
    assert result.backups == [] and not list(folder.glob("*.bk"))


def test_cancel_leaves_folder_unchanged(tmp_path):
    folder = make_keras3(tmp_path / "m")
    before = snapshot(folder)
    task = Task(lambda stage, done, total: task.cancel() if done > 0 else None)
    with pytest.raises(Cancelled):
        convert.convert(folder, "mixed_float16", task=task)
    assert snapshot(folder) == before
    assert no_temp_files(folder)


def test_progress_is_reported(tmp_path):
    folder = make_keras3(tmp_path / "m")
    seen = []
    convert.convert(folder, "mixed_float16", task=Task(lambda *a: seen.append(a)))
    stages = [s for s, _, _ in seen]
    assert stages[0] == "Writing model" and stages[-1] == "Switching"
    writing = [(d, t) for s, d, t in seen if s == "Writing model"]
    assert writing[-1][0] == writing[-1][1] == (folder / "tiny.keras.bk").stat().st_size


def test_train_ini_is_reported_and_updated(tmp_path):
    folder = make_keras3(tmp_path / "m")
    faceswap = tmp_path / "faceswap"
    (faceswap / "config").mkdir(parents=True)
    ini = faceswap / "config" / "train.ini"
    text = ("[global]\n# NVIDIA GPUs can run operations in float16 faster.\n"
            "mixed_precision = False\n\n# Stop on NaN.\nnan_protection = True\n\n"
            "[model.original]\nlowmem = False\n")
    ini.write_text(text)
    plan = convert.plan(folder, "mixed_float16", train_ini=faceswap)
    assert any("switch the model back" in line for line in plan.summary())
    result = convert.run(plan)
    assert ini.read_text() == text
    assert any("switch the model back" in m for m in result.messages)
    convert.convert(folder, "float32", train_ini=ini, update_train_ini=True)
    assert ini.read_text() == text  # already False: unchanged
    convert.convert(folder, "mixed_float16", train_ini=ini, update_train_ini=True)
    assert ini.read_text() == text.replace("mixed_precision = False", "mixed_precision = True")


def test_derived_list_is_stored_for_old_models(tmp_path):
    folder = make_keras3(tmp_path / "m")
    state = json.loads((folder / "tiny_state.json").read_text())
    state["mixed_precision_layers"] = []
    (folder / "tiny_state.json").write_text(json.dumps(state, indent=2))
    plan = convert.plan(folder, "mixed_float16")
    assert plan.model.eligible_source == "derived"
    assert any("derived" in w for w in plan.warnings)
    convert.run(plan)
    assert open_model(folder).state.mixed_precision_layers == ELIGIBLE


# --- a kill at any instant: the folder is as it was or fully converted --------------------

KILL_POINTS = {"replace": "fsprec.core.atomic:os.replace",
               "copy": "fsprec.core.archive:_copy_range", "link": "fsprec.core.atomic:os.link"}


@pytest.mark.parametrize("mode,count", [("copy", 0), ("copy", 2), ("link", 0), ("link", 1),
                                        ("replace", 0), ("replace", 1), ("replace", 2),
                                        ("replace", 3), ("replace", 4)])
def test_kill_at_any_instant(tmp_path, mode, count):
    if mode == "link" and not atomic.fast_paths():
        pytest.skip("portable mode stages backups by copy: no hard link to die at")
    folder = make_keras3(tmp_path / "m")
    before = snapshot(folder)
    done = make_keras3(tmp_path / "done")
    convert.convert(done, "mixed_float16")
    converted = snapshot(done)
    convert_killed(folder, count, KILL_POINTS[mode])
    recover(folder)  # what fsprec does before its next write in this folder
    after = snapshot(folder)
    assert after in (before, converted), f"half-converted folder after a kill ({mode} {count})"
    assert no_temp_files(folder)


def test_interrupted_switch_is_completed_by_the_next_plan(tmp_path):
    folder = make_keras3(tmp_path / "m")
    # Die after the journal and the first two moves (backups) are done.
    convert_killed(folder, 4, KILL_POINTS["replace"])
    assert (folder / ".fsprec-journal.json").exists()
    plan = convert.plan(folder, "mixed_float16")
    assert plan.nothing_to_do and plan.model.precision == "mixed_float16"
    assert not (folder / ".fsprec-journal.json").exists()

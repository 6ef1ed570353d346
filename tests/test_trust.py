"""Issue 9's findings, each as a test: planted journals, leftovers, Faceswap training on the
folder, files changed under us, restores in the same second, all-or-nothing restore, damaged
members, the portable (Windows) code paths, kills during an FS2 conversion."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import convert_killed, snapshot
from factory import PLUGIN, flip_stored_byte, make_keras2, make_keras3
from fsprec.core import FsprecError, atomic, convert, nanscan, open_model, procs, restore
from fsprec.core.cli import main
from fsprec.core.convert import recover

MODEL = f"{PLUGIN}.keras"


def refused(capsys, folder: Path, argv: list[str], message: str) -> None:
    before = snapshot(folder)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert snapshot(folder) == before


# --- the journal is data --------------------------------------------------------------------

@pytest.mark.parametrize("journal", [
    [[".fsprec-tmp-evil", MODEL]],
    [["/tmp/fsprec-outside", "/tmp/fsprec-outside-target"]],
    [1, 2],
    {"fsprec_journal": 1, "moves": [[f".{MODEL}.1-deadbeef.fsprec-tmp", MODEL]]},
    {"fsprec_journal": 1, "moves": [["../x", MODEL]]},
], ids=["plain-name", "absolute", "not-pairs", "junk-temp", "parent-dir"])
def test_planted_journal_is_set_aside_never_followed(tmp_path, journal):
    folder = make_keras3(tmp_path / "m")
    model_bytes = (folder / MODEL).read_bytes()
    (folder / ".fsprec-tmp-evil").write_bytes(b"junk")
    (folder / f".{MODEL}.1-deadbeef.fsprec-tmp").write_bytes(b"junk")
    (folder / ".fsprec-journal.json").write_text(json.dumps(journal))
    plan = convert.plan(folder, "mixed_float16")
    assert any(".fsprec-journal.json.rejected" in w for w in plan.warnings)
    assert (folder / MODEL).read_bytes() == model_bytes
    assert (folder / ".fsprec-journal.json.rejected").is_file()
    assert not Path("/tmp/fsprec-outside-target").exists()
    assert not (folder / f".{MODEL}.1-deadbeef.fsprec-tmp").exists()  # a leftover: removed
    convert.run(plan)  # later conversions work
    assert convert.plan(folder, "mixed_float16").nothing_to_do


def test_leftover_temp_files_are_cleaned_by_the_next_run(tmp_path):
    folder = make_keras3(tmp_path / "m")
    for name in (f".{MODEL}.77-0123abcd.fsprec-tmp", ".fsprec-write-test.5-00000000.fsprec-tmp"):
        (folder / name).write_bytes(b"x" * 1000)
    convert.convert(folder, "mixed_float16")
    assert not list(folder.glob("*.fsprec-tmp")) and not list(folder.glob(".*.fsprec-tmp"))


def test_temp_names_are_unique_per_process(tmp_path):
    code = "from pathlib import Path; from fsprec.core.atomic import temp_path; " \
           "print(temp_path(Path('/x/m.keras')))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    names = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, check=True).stdout for _ in range(3)}
    assert len(names) == 3


# --- nothing changes under our feet ---------------------------------------------------------

FAKE_FACESWAP = "import time\ntime.sleep(60)\n"


@pytest.fixture
def faceswap_training(tmp_path):
    """A process whose command line is ``python faceswap.py train -m FOLDER``."""
    folder = make_keras3(tmp_path / "m")
    script = tmp_path / "faceswap.py"
    script.write_text(FAKE_FACESWAP)
    proc = subprocess.Popen([sys.executable, str(script), "train", "-A", "a", "-B", "b",
                             "-m", "m", "-t", "original"], cwd=tmp_path)
    deadline = time.monotonic() + 30
    while procs.faceswap_training(folder) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    yield folder, proc
    proc.kill()
    proc.wait()


def test_faceswap_training_blocks_writes_and_inspect_says_so(faceswap_training, capsys):
    folder, proc = faceswap_training
    assert procs.training_message(folder) == f"Faceswap is training this model (pid {proc.pid})."
    refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
            f"Faceswap is training this model (pid {proc.pid})")
    (folder / f"{MODEL}.bk").write_bytes((folder / MODEL).read_bytes())
    refused(capsys, folder, ["restore", str(folder)], "Faceswap is training this model")
    assert main(["inspect", str(folder)]) == 0
    assert "Faceswap is training this model" in capsys.readouterr().out


def test_faceswap_command_lines_are_recognised():
    parse = procs._model_dir
    assert parse(["python", "/opt/fs/faceswap.py", "train", "-m", "/models/a"]) == "/models/a"
    assert parse(["python", "faceswap.py", "train", "--model-dir=/models/b"]) == "/models/b"
    assert parse(["python", "faceswap.py", "train", "-m/models/c"]) == "/models/c"
    assert parse(["python", "faceswap.py", "convert", "-m", "/models/a"]) is None
    assert parse(["python", "other.py", "train", "-m", "/models/a"]) is None


def test_a_program_holding_the_model_open_blocks_the_switch(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    script = (f"import time\nf = open({str(folder / MODEL)!r}, 'r+b')\n"
              "print('open', flush=True)\ntime.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
                f"(pid {holder.pid}) has this model's files open")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


@pytest.mark.parametrize("change", ["model", "state"])
def test_a_file_changed_after_the_plan_aborts_with_nothing_changed(tmp_path, change):
    folder = make_keras3(tmp_path / "m")
    plan = convert.plan(folder, "mixed_float16")
    path = folder / (MODEL if change == "model" else f"{PLUGIN}_state.json")
    path.write_bytes(path.read_bytes())  # same bytes, new mtime: as a Faceswap save
    os.utime(path, ns=(time.time_ns() + 10 ** 9,) * 2)
    before = snapshot(folder)
    with pytest.raises(FsprecError, match="changed since fsprec read it; nothing was changed"):
        convert.run(plan)
    assert snapshot(folder) == before


# --- restore ----------------------------------------------------------------------------------

def test_restores_in_the_same_second_get_their_own_archives(tmp_path):
    folder = make_keras3(tmp_path / "m")
    convert.convert(folder, "mixed_float16")
    first = restore.restore(folder)
    second = restore.restore(folder)
    assert first.archive_dir != second.archive_dir
    assert first.archive_dir.is_dir() and second.archive_dir.is_dir()


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_restore_failing_half_way_puts_everything_back(tmp_path, monkeypatch, fail_at):
    folder = make_keras3(tmp_path / "m")
    convert.convert(folder, "mixed_float16")
    before = snapshot(folder)
    calls = [0]
    real = os.replace

    def failing(src, dst):
        calls[0] += 1
        if calls[0] == fail_at:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(restore.os, "replace", failing)
    with pytest.raises(FsprecError, match="nothing was restored"):
        restore.restore(folder)
    assert snapshot(folder) == before
    assert [p.name for p in folder.iterdir() if "archived" in p.name] == []


def test_restore_refuses_a_model_that_is_a_folder(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    convert.convert(folder, "mixed_float16")
    (folder / MODEL).unlink()
    (folder / MODEL).mkdir()
    refused(capsys, folder, ["restore", str(folder)], f"{MODEL} is not a plain file")


def test_backup_name_taken_by_a_folder_is_refused_before_anything_moves(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    (folder / f"{MODEL}.bk").mkdir()
    refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
            f"{MODEL}.bk is not a plain file")


def test_journal_write_failing_leaves_no_temp_files(tmp_path, monkeypatch):
    """Out of inodes at the journal: a sentence, nothing changed, no full-size copy left."""
    folder = make_keras3(tmp_path / "m")
    before = snapshot(folder)
    real = atomic.write_temp

    def no_inodes(target, data):
        if target.name == atomic.JOURNAL:
            raise OSError(28, "No space left on device")
        return real(target, data)

    monkeypatch.setattr(atomic, "write_temp", no_inodes)
    with pytest.raises(FsprecError, match="nothing was changed"):
        convert.convert(folder, "mixed_float16")
    assert snapshot(folder) == before


# --- damaged members --------------------------------------------------------------------------

def _rezip(path: Path, edit) -> None:
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in edit(members):
            archive.writestr(info, data)


def test_duplicate_members_are_refused(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    with pytest.warns(UserWarning, match="Duplicate name"):
        _rezip(folder / MODEL, lambda members: members + [members[1]])
    refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
            "holds config.json twice")


def test_weights_that_are_not_hdf5_are_refused(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    _rezip(folder / MODEL, lambda members: [(i, b"not hdf5" * 100 if i.filename ==
                                             "model.weights.h5" else d) for i, d in members])
    refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
            "model.weights.h5 in tiny.keras is not an HDF5 file")


def test_nan_scan_refuses_weights_with_a_wrong_crc(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m", optimizer=False)
    flip_stored_byte(folder / MODEL, "model.weights.h5")
    refused(capsys, folder, ["nan-scan", str(folder)], "CRC mismatch")


def test_a_damaged_optimizer_member_is_not_copied(tmp_path, capsys):
    """Compressed members are copied raw; their CRC is still checked."""
    folder = make_keras3(tmp_path / "m")
    flip_stored_byte(folder / MODEL, "optimizer.pt", 0x55)
    refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
            "optimizer.pt in tiny.keras is damaged")


def test_deep_nesting_is_one_sentence(tmp_path, capsys):
    folder = make_keras3(tmp_path / "m")
    (folder / f"{PLUGIN}_state.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["inspect", str(folder)]) == 0  # the model opens; the state is reported
    assert "nested too deeply" in capsys.readouterr().out
    refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"],
            "nested too deeply")


def test_a_config_in_an_error_is_never_printed(tmp_path, capsys, monkeypatch):
    """A refusal whose text carries a layer config (as a validation child's may) prints one
    short sentence; the config is cut."""
    from factory import tiny_config
    folder = make_keras3(tmp_path / "m")
    config = json.dumps(tiny_config())

    def refuse(*args, **kwargs):
        raise FsprecError(f"Cannot build layer dense with config {config}.")

    monkeypatch.setattr(convert, "plan", refuse)
    assert main(["convert", str(folder), "--to", "mixed_float16", "--yes"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fsprec: Cannot build layer dense with config {")
    assert "class_name" not in err and len(err) < 320 and len(err.splitlines()) == 1


# --- portable code paths (Windows, file systems without hard links) -----------------------------

def test_portable_mode_copies_backups_instead_of_linking(tmp_path, monkeypatch):
    monkeypatch.setenv(atomic.PORTABLE_ENV, "1")
    monkeypatch.delattr(os, "link")  # as on a file system without hard links
    folder = make_keras3(tmp_path / "m")
    original = (folder / MODEL).read_bytes()
    inode = (folder / MODEL).stat().st_ino
    convert.convert(folder, "mixed_float16")
    backup = folder / f"{MODEL}.bk"
    assert backup.read_bytes() == original and backup.stat().st_ino != inode


def test_replace_onto_a_file_held_open_on_windows_is_retried_then_refused(tmp_path,
                                                                            monkeypatch):
    """Windows refuses os.replace onto a file another program has open; fsprec retries,
    then says so."""
    monkeypatch.setenv(atomic.PORTABLE_ENV, "1")
    target = tmp_path / "a.json"
    target.write_text("old")
    real, calls = os.replace, [0]

    def held_twice(src, dst):
        calls[0] += 1
        if calls[0] <= 2:
            raise PermissionError(13, "The process cannot access the file")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", held_twice)
    atomic.write_atomic(target, b"new")
    assert target.read_text() == "new" and calls[0] == 3
    monkeypatch.setattr(atomic.os, "replace", lambda s, d: (_ for _ in ()).throw(
        PermissionError(13, "The process cannot access the file")))
    with pytest.raises(FsprecError, match="a.json is in use by another program"):
        atomic.write_atomic(target, b"newer")
    assert target.read_text() == "new" and not list(tmp_path.glob(".*fsprec-tmp"))


# --- kills during an FS2 (.h5) conversion -------------------------------------------------------

@pytest.mark.parametrize("count", range(9))
def test_kill_during_fs2_conversion(tmp_path, count):
    folder = make_keras2(tmp_path / "m")
    before = snapshot(folder)
    done = make_keras2(tmp_path / "done")
    convert.convert(done, "mixed_float16")
    converted = snapshot(done)
    convert_killed(folder, count, *(f"fsprec.core.atomic:os.{name}"
                                     for name in ("replace", "link", "fsync")))
    recover(folder)
    assert snapshot(folder) in (before, converted), f"half-converted after kill {count}"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_reading_is_not_blocked_by_a_writer(tmp_path):
    from fsprec.core import lock
    folder = make_keras3(tmp_path / "m")
    before = snapshot(folder)
    with lock.writing(folder):
        nanscan.scan_weights(folder)
        assert lock.busy(folder) == os.getpid()
    assert snapshot(folder) == before


# --- the HDF5 library crashing or hanging on a hostile file ------------------------------------

def _crash(path: str, fmt: str) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _hang(path: str, fmt: str) -> None:
    time.sleep(30)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
@pytest.mark.parametrize("child,message", [(_crash, "crashed the HDF5 library"),
                                           (_hang, "did not finish")])
def test_a_crash_or_hang_in_the_hdf5_library_is_a_sentence(tmp_path, capsys, monkeypatch,
                                                            child, message):
    from fsprec.core import h5guard
    monkeypatch.setattr(h5guard, "_visit", child)
    monkeypatch.setattr(h5guard, "TIMEOUT_S", 1.0)
    monkeypatch.setattr(h5guard, "_done", {})
    folder = make_keras3(tmp_path / "m")
    refused(capsys, folder, ["nan-scan", str(folder)], message)
    refused(capsys, folder, ["convert", str(folder), "--to", "mixed_float16", "--yes"], message)


def _slow_crcs(path: str) -> None:
    time.sleep(1.5)
    from fsprec.core.archive import check_crcs
    check_crcs(Path(path), skip="config.json", mapped=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
def test_the_guard_still_reading_is_not_another_program(tmp_path, monkeypatch):
    """The guard's child holds the model open while the conversion copies it; that is fsprec
    reading, not a program to wait for, and the conversion waits for its answer."""
    from fsprec.core import h5guard
    monkeypatch.setattr(h5guard, "_crcs", _slow_crcs)
    folder = make_keras3(tmp_path / "m")
    plan = convert.plan(folder, "mixed_float16", wait=False)
    assert h5guard.reader_pids(), "the guard should still be reading"
    convert.run(plan)
    assert not h5guard.reader_pids()
    assert open_model(folder).precision == "mixed_float16"


def _holding_the_file(path: str, fmt: str) -> None:
    with open(path, "rb"):
        time.sleep(1.5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
@pytest.mark.parametrize("make", [make_keras3, make_keras2], ids=["keras3", "keras2"])
def test_a_guard_child_started_during_the_look_is_not_another_program(tmp_path, monkeypatch,
                                                                      make):
    """The look for programs using the model runs beside the copy; a guard child the
    conversion starts meanwhile holds the model open too and is still fsprec (a Keras 2
    conversion was once refused as "python (pid N) has this model's files open")."""
    from fsprec.core import h5guard
    folder = make(tmp_path / "m")
    model_file = next(folder.glob(f"{PLUGIN}.*"))
    monkeypatch.setattr(h5guard, "_crcs", _slow_crcs)
    monkeypatch.setattr(h5guard, "_visit", _holding_the_file)
    real = procs._psutil
    started = []

    def a_reader_starts_first():
        monkeypatch.setattr(h5guard, "_done", {})  # nothing read yet: a new child
        started.append(h5guard.start(model_file, "keras3" if make is make_keras3 else "keras2"))
        return real()

    monkeypatch.setattr(procs, "_psutil", a_reader_starts_first)
    model = open_model(folder)
    try:
        convert.refuse_if_in_use(model)
        assert started[0]._child is not None and started[0]._child.is_alive()
    finally:
        for reading in started:
            reading.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
def test_a_keras2_conversion_reads_each_part_of_its_model_once(tmp_path, monkeypatch):
    """A Keras 2 file has no zip CRCs to prove: asking for them must not start its guard's
    reading again (a fork each time, and a child started late raced the in-use look)."""
    from fsprec.core import h5guard
    folder = make_keras2(tmp_path / "m")
    asked: list[str] = []  # the parts each guard child of the source file was asked for
    real = h5guard.Reading.__init__

    def counted(self, model_file, *args, **kwargs):
        real(self, model_file, *args, **kwargs)
        if self._child is not None and model_file == folder / f"{PLUGIN}.h5":
            asked.extend(p for p, w in self._want.items() if w and p not in self._results)

    monkeypatch.setattr(h5guard.Reading, "__init__", counted)
    convert.convert(folder, "mixed_float16")
    assert sorted(asked) == ["index", "visit"], asked
    assert open_model(folder).precision == "mixed_float16"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
def test_a_crc_error_found_after_the_copy_changes_nothing(tmp_path, monkeypatch):
    """The conversion copies before the guard's CRC answer arrives; a mismatch then still
    leaves the folder as it was, with no temp file."""
    from fsprec.core import h5guard
    monkeypatch.setattr(h5guard, "_crcs", _slow_crcs)
    folder = make_keras3(tmp_path / "m", optimizer=False)
    flip_stored_byte(folder / MODEL, "model.weights.h5")
    before = snapshot(folder)
    with pytest.raises(FsprecError, match="CRC mismatch"):
        convert.convert(folder, "mixed_float16")
    assert snapshot(folder) == before



@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
def test_a_model_already_read_is_only_crc_checked_when_converted(tmp_path, monkeypatch):
    """Open then switch (as the GUI does): the guard does not walk the HDF5 again for the
    conversion, yet still proves the CRCs of what it copies."""
    from fsprec.core import h5guard
    folder = make_keras3(tmp_path / "m", optimizer=False)
    flip_stored_byte(folder / MODEL, "model.weights.h5")  # in the data: the metadata still reads
    model = open_model(folder)
    model.reading().index()  # what opening the folder in the window reads
    monkeypatch.setattr(h5guard, "_visit", lambda *_: os._exit(9))  # a second walk "crashes"
    before = snapshot(folder)
    with pytest.raises(FsprecError, match="CRC mismatch"):
        convert.convert(folder, "mixed_float16")
    assert snapshot(folder) == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
@pytest.mark.parametrize(("code", "sentence"), [
    (errno.ENOMEM, "far more memory"), (errno.EIO, "cannot be read")])
def test_the_crc_pass_failing_to_map_or_read_is_a_sentence(tmp_path, monkeypatch, code,
                                                           sentence):
    """The CRC thread shares the guard's memory cap with the HDF5 walk: a map refused for
    memory, or a read error, is a sentence and nothing changes (not a traceback)."""
    from fsprec.core import archive

    def fails(*_args):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(archive, "_mapped_crc", fails)
    folder = make_keras3(tmp_path / "m", optimizer=False)
    before = snapshot(folder)
    with pytest.raises(FsprecError, match=sentence):
        convert.convert(folder, "mixed_float16")
    assert snapshot(folder) == before

def _holders(inode: int) -> list[int]:
    """Pids of the processes with a file of this inode open (Linux /proc)."""
    found = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.stat(fd).st_ino == inode:
                found.append(int(fd.parts[2]))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_an_old_backup_is_freed_by_a_helper_and_not_kept(tmp_path):
    """Replacing a large old ``.bk`` must not leave it open here (the disk space would stay
    taken while the GUI runs), and its blocks must be freed soon after, by no lasting process."""
    backup = tmp_path / "m.keras.bk"
    backup.write_bytes(os.urandom(1024) * (20 * 1024))  # 20 MB, the only link
    inode = backup.stat().st_ino
    atomic.write_temp(backup, b"new backup")
    atomic.commit(tmp_path, [(atomic.temp_path(backup), backup)])
    assert backup.read_bytes() == b"new backup"
    assert os.getpid() not in _holders(inode)
    deadline = time.monotonic() + 10
    while _holders(inode) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _holders(inode), "the replaced backup is still held open"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras.bk"]

"""Hostile inputs for the fuzz suite (tests/test_fuzz.py) and its long run (benchmarks/fuzz.py).

``make_case(seed, root)`` builds one damaged model folder, deterministically from ``seed``:
JSON mutations of the config and state, zip damage, h5 damage, bombs, path tricks, planted
journals and temp files, files replaced by directories or symlinks. The seed picks the family
(``seed % 10``) and the command (``seed // 10 % 11``), so seeds 0-109 run every command on
every family once. ``check_case`` runs the command on it, in this process (or through the real
``fsprec`` entry point with ``process=True``) and returns what happened and the broken promises.
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import hashlib
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from factory import PLUGIN, make_keras2, make_keras3

from fsprec.core.cli import main
from fsprec.core.errors import FsprecError
from fsprec.core.validate import runner

# Every command of `fsprec --help`; validate with the cheapest pass (its child starts Keras).
VALIDATE = ["validate", "--steps", "0", "--batch", "1", "--no-autopin", "--device", "cpu"]
COMMANDS = (["inspect"], ["inspect", "--json"], ["nan-scan"], ["restore"], ["scan"],
            ["convert", "--to", "mixed_float16", "--yes"], ["convert", "--to", "float32", "--yes"],
            VALIDATE, ["health"], ["health", "--all", "--json"], ["rollback", "--to", "backup",
                                                                 "--yes"])
READ_ONLY = ("inspect", "nan-scan", "scan", "validate", "health")
JUNK = [None, True, 0, -1, 1e308, "", "x" * 300, [], {}, [[[]]], {"a": {"b": {}}}, "\u202e",
        2 ** 70, [1, "a", None]]


# --- folder snapshots that see directories and symlinks too --------------------------------

def snapshot(folder: Path) -> dict[str, str]:
    """Every entry below ``folder``: file hashes, symlink targets, directories."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            out[key] = "link:" + os.readlink(path)
        elif path.is_dir():
            out[key] = "dir"
        elif path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --- zip helpers -------------------------------------------------------------------------

def _members(path: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()]


def _rezip(path: Path, members: list[tuple[zipfile.ZipInfo, bytes]]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            new = zipfile.ZipInfo(info.filename, info.date_time)
            new.compress_type = info.compress_type
            with warnings.catch_warnings():  # a duplicate member is the point
                warnings.simplefilter("ignore", UserWarning)
                archive.writestr(new, data)


def _replace_member(path: Path, name: str, data: bytes) -> None:
    _rezip(path, [(i, data if i.filename == name else d) for i, d in _members(path)])


# --- JSON mutations ------------------------------------------------------------------------

def _nodes(value):
    stack = [((), value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            stack.extend((path + (key,), child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((path + (index,), child) for index, child in enumerate(item))


def _set(root, path, value):
    if not path:
        return value
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return root


def _deep(levels: int) -> str:
    """A marker that :func:`dump` turns into ``levels`` nested lists."""
    return f"__deep_{levels}__"


def dump(doc) -> str:
    """JSON text of a mutated document, deep-nesting markers expanded."""
    text = json.dumps(doc)
    for levels in (70, 500, 3000, 5000):
        text = text.replace(f'"{_deep(levels)}"', "[" * levels + "1" + "]" * levels)
    return text


def mutate_json(rng: random.Random, doc):
    """One to three random edits of a JSON document: values replaced, keys dropped,
    containers emptied, deep nesting, type swaps."""
    for _ in range(rng.randint(1, 3)):
        nodes = list(_nodes(doc))
        path, value = rng.choice(nodes)
        kind = rng.randrange(5)
        if kind == 0:
            doc = _set(doc, path, copy.deepcopy(rng.choice(JUNK)))
        elif kind == 1 and path:
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        elif kind == 2:
            doc = _set(doc, path, _deep(rng.choice([70, 500, 5000])))
        elif kind == 3 and isinstance(value, (dict, list)):
            doc = _set(doc, path, list(value.values()) if isinstance(value, dict) else
                       {str(i): v for i, v in enumerate(value)})
        else:
            doc = _set(doc, path, [copy.deepcopy(value), copy.deepcopy(value)]
                       if rng.random() < 0.5 else str(value)[:50])
    return doc


# --- the mutators ----------------------------------------------------------------------------

def _model(folder: Path) -> Path:
    return next(p for p in folder.iterdir() if p.suffix in (".keras", ".h5"))


def config_json(rng, folder):
    model = _model(folder)
    if model.suffix == ".keras":
        config = json.loads(zipfile.ZipFile(model).read("config.json"))
        _replace_member(model, "config.json", dump(mutate_json(rng, config)).encode())
    else:
        import h5py
        with h5py.File(model, "r+") as h5:
            config = json.loads(h5.attrs["model_config"])
            h5.attrs["model_config"] = dump(mutate_json(rng, config))


def state_json(rng, folder):
    state = folder / f"{PLUGIN}_state.json"
    state.write_text(dump(mutate_json(rng, json.loads(state.read_text()))))


def metadata_json(rng, folder):
    model = _model(folder)
    if model.suffix == ".keras":
        meta = json.loads(zipfile.ZipFile(model).read("metadata.json"))
        _replace_member(model, "metadata.json", dump(mutate_json(rng, meta)).encode())


def bit_flips(rng, folder):
    model = _model(folder)
    data = bytearray(model.read_bytes())
    for _ in range(rng.choice([1, 1, 3, 20])):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    model.write_bytes(bytes(data))


def h5_flips(rng, folder):
    """Bit flips inside the HDF5 part only (the zip stays valid when the CRC is fixed)."""
    model = _model(folder)
    if model.suffix == ".h5":
        return bit_flips(rng, folder)
    members = _members(model)
    out = []
    for info, data in members:
        if info.filename == "model.weights.h5":
            data = bytearray(data)
            for _ in range(rng.choice([1, 4, 16])):
                data[rng.randrange(min(len(data), rng.choice([4096, len(data)])))] ^= 0xFF
            data = bytes(data)
        out.append((info, data))
    _rezip(model, out)  # a fresh zip: CRCs match the damaged bytes


def truncate(rng, folder):
    model = _model(folder)
    data = model.read_bytes()
    model.write_bytes(data[:rng.randrange(len(data))])


def zip_damage(rng, folder):
    model = _model(folder)
    if model.suffix != ".keras":
        return truncate(rng, folder)
    members = _members(model)
    kind = rng.randrange(5)
    if kind == 0:  # a duplicate member
        dup = rng.choice(members)
        members.append((dup[0], dup[1][::-1] if rng.random() < 0.5 else dup[1]))
        _rezip(model, members)
    elif kind == 1:  # a member missing
        members.pop(rng.randrange(len(members)))
        _rezip(model, members)
    elif kind == 2:  # compression changed
        info, data = rng.choice(members)
        info.compress_type = zipfile.ZIP_DEFLATED if info.compress_type == 0 else 0
        _rezip(model, members)
    elif kind == 3:  # the weights are not HDF5
        _replace_member(model, "model.weights.h5", b"PK not hdf5 " * rng.randint(1, 5000))
    else:  # a wrong CRC in the central directory
        data = bytearray(model.read_bytes())
        cd = data.rfind(b"PK\x01\x02")
        data[cd + 16:cd + 20] = struct.pack("<I", rng.getrandbits(32))
        model.write_bytes(bytes(data))


def bomb(rng, folder):
    """A member that inflates far beyond its stored size, or declares it does."""
    model = _model(folder)
    if model.suffix != ".keras":
        state = folder / f"{PLUGIN}_state.json"
        state.write_bytes(b"[" * 200_000 + b"]" * 200_000)
        return
    kind = rng.randrange(3)
    members = _members(model)
    if kind == 0:  # config.json of 40 MB of spaces: 40 KB stored
        raw = b'{"config": {"layers": []}' + b" " * (40 * 1024 * 1024) + b"}"
        target = "config.json"
    elif kind == 1:  # weights that inflate 1000x
        raw = b"\x89HDF\r\n\x1a\n" + bytes(60 * 1024 * 1024)
        target = "model.weights.h5"
    else:  # a central directory declaring 10 GB for config.json
        data = bytearray(model.read_bytes())
        cd = data.find(b"PK\x01\x02")
        while cd >= 0:
            name_len = struct.unpack("<H", data[cd + 28:cd + 30])[0]
            if data[cd + 46:cd + 46 + name_len] == b"config.json":
                data[cd + 24:cd + 28] = struct.pack("<I", 0xFFFFFFF0)
            cd = data.find(b"PK\x01\x02", cd + 4)
        model.write_bytes(bytes(data))
        return
    out = []
    for info, data in members:
        if info.filename == target:
            info.compress_type = zipfile.ZIP_DEFLATED
            data = raw
        out.append((info, data))
    _rezip(model, out)


def path_tricks(rng, folder):
    """Model, state, backups, journal or lock replaced by directories or symlinks."""
    model = _model(folder)
    state = folder / f"{PLUGIN}_state.json"
    kind = rng.randrange(9)
    if kind == 0:
        state.unlink()
        state.mkdir()
    elif kind == 1:
        state.unlink()
        state.symlink_to("/etc/hostname")
    elif kind == 2:
        (folder / f"{model.name}.bk").unlink(missing_ok=True)
        (folder / f"{model.name}.bk").mkdir()
    elif kind == 3:
        outside = folder.parent / f"outside-{rng.randrange(10 ** 6)}"
        shutil.move(str(model), outside)
        model.symlink_to(outside)
    elif kind == 4:
        (folder / ".fsprec.lock").mkdir()
    elif kind == 5:
        (folder / f"{state.name}.bk").unlink(missing_ok=True)
        (folder / f"{state.name}.bk").symlink_to("/nonexistent/target")
    elif kind == 6:
        (folder / ".fsprec-journal.json").mkdir()
    elif kind == 7:
        shutil.copy(model, folder / f"{model.name}.bk")
        state.unlink()
        state.mkdir()
    else:
        data = model.read_bytes()
        model.unlink()
        model.mkdir()
        (folder / f"{model.name}.bk").write_bytes(data)


def planted(rng, folder):
    """Journals and temp files that fsprec did not write."""
    model = _model(folder)
    junk = folder / ".fsprec-tmp-evil"
    junk.write_bytes(b"junk")
    temp = folder / f".{model.name}.{rng.randrange(10 ** 5)}-deadbeef.fsprec-tmp"
    temp.write_bytes(b"junk")
    journals = [
        [[junk.name, model.name]],
        [["/tmp/x", "/tmp/y"]],
        [1, 2],
        {"fsprec_journal": 1, "moves": [[temp.name, model.name]]},  # valid names: followed
        {"fsprec_journal": 1, "moves": [["../" + temp.name, model.name]]},
        {"fsprec_journal": 1, "moves": [[".x.1-deadbeef.fsprec-tmp", "x"]]},
        {"fsprec_journal": 1, "moves": "evil"},
        "\x00\x01",
        [_deep(3000)],
    ]
    choice = rng.choice(journals)
    (folder / ".fsprec-journal.json").write_text(dump(choice))


MUTATORS: dict[str, Callable] = {
    "config": config_json, "state": state_json, "metadata": metadata_json, "bits": bit_flips,
    "h5": h5_flips, "truncate": truncate, "zip": zip_damage, "bomb": bomb,
    "paths": path_tricks, "journal": planted,
}


_BASES: dict[tuple[str, bool], Path] = {}


def _base(fmt: str, mixed: bool) -> Path:
    """The undamaged folder of each kind, built once per process and copied for each case."""
    if (fmt, mixed) not in _BASES:
        if not _BASES:
            home = Path(tempfile.mkdtemp(prefix="fsprec-fuzz-bases-"))
            atexit.register(shutil.rmtree, home, ignore_errors=True)
            _BASES[("home", False)] = home
        folder = _BASES[("home", False)] / f"{fmt}-{int(mixed)}"
        (make_keras3 if fmt == "keras3" else make_keras2)(folder, mixed=mixed)
        _BASES[(fmt, mixed)] = folder
    return _BASES[(fmt, mixed)]


def make_case(seed: int, root: Path) -> tuple[Path, list[str], str]:
    """Build case ``seed`` under ``root``; returns (folder, argv, description)."""
    rng = random.Random(seed)
    kind = list(MUTATORS)[seed % len(MUTATORS)]
    fmt = "keras3" if rng.random() < 0.7 else "keras2"
    folder = root / f"case{seed}"
    shutil.copytree(_base(fmt, rng.random() < 0.3), folder)
    if rng.random() < 0.3:  # some cases have backups to restore from
        for path in list(folder.iterdir()):
            if path.is_file():
                shutil.copy(path, path.with_name(path.name + ".bk"))
    MUTATORS[kind](rng, folder)
    command = COMMANDS[seed // len(MUTATORS) % len(COMMANDS)]
    argv = [command[0], str(folder), *command[1:]]
    return folder, argv, f"seed {seed}: {kind} on {fmt}, fsprec {' '.join(command)}"


def _loads(folder: Path) -> str | None:
    """Why the model in ``folder`` does not load in fsprec (None: it does)."""
    from fsprec.core import open_model
    from fsprec.core.nanscan import scan_weights
    try:
        model = open_model(folder)
        model.leaves()
        scan_weights(model)
        if model.format == "keras3":
            with zipfile.ZipFile(model.model_file) as archive:
                bad = archive.testzip()
                if bad is not None:
                    return f"{bad} fails its CRC"
    except Exception as err:  # any failure is the finding
        return f"{type(err).__name__}: {err}"
    return None


KERAS_READS = ("config.json", "metadata.json", "model.weights.h5")


def _keras_would_fail(why: str | None) -> bool:
    """Whether a :func:`_loads` finding is damage Keras reads too (not a bad CRC in a member
    that neither Keras nor fsprec opens, such as ``notes/`` or the optimizer)."""
    return why is not None and (not why.endswith("fails its CRC") or
                                why.split()[0] in KERAS_READS)


class ChildWouldStart(FsprecError):
    """Raised where ``validate`` would start its Keras child, when a case runs without it."""

    SENTENCE = "fuzz: the validation child would start here"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(self.SENTENCE)


def run_cli(argv: list[str], child: bool = True) -> tuple[int, str, str, bool]:
    """Run ``fsprec argv`` in this process: (exit code, stdout, stderr, whether ``validate``
    started its child). ``child=False``: ``validate`` stops where it would start Keras."""
    out, err = io.StringIO(), io.StringIO()
    starts = []

    def child_command(*args: object, **kwargs: object) -> list[str]:
        starts.append(args)
        if not child:
            raise ChildWouldStart
        return command(*args, **kwargs)

    command = runner.command
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            mock.patch.object(runner, "command", child_command):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, out.getvalue(), err.getvalue(), bool(starts)


def entry_point() -> list[str]:
    """The installed ``fsprec`` script next to this Python, else ``python -m``."""
    script = Path(sys.executable).with_name("fsprec")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "fsprec.core.cli"]


def run_process(argv: list[str], timeout: float = 300) -> tuple[int, str, str, bool]:
    """Run ``fsprec argv`` as its own process, as a user does (the last item, whether the
    validation child started, is not known from outside: False)."""
    done = subprocess.run([*entry_point(), *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)
    return done.returncode, done.stdout, done.stderr, False


def _ours(name: str) -> bool:
    """fsprec's own bookkeeping files, which a failed run may clean up (temp files, a
    journal set aside, a stale lock)."""
    return name.startswith(".fsprec") or name.endswith(".fsprec-tmp")


def user_files(snap: dict[str, str]) -> dict[str, str]:
    """A snapshot without fsprec's bookkeeping files."""
    return {k: v for k, v in snap.items() if not _ours(Path(k).name)}


@dataclass
class Outcome:
    """What one case did: its exit code, first stderr line, the promises it broke, and for
    ``validate`` whether the parent let the input through to the Keras child."""

    code: int
    message: str
    broken: list[str] = field(default_factory=list)
    reached_child: bool = False
    child_on_damage: str | None = None  # why fsprec itself rejects what reached the child


def _wrong_success(folder: Path, argv: list[str], out: str, could_load: bool,
                   before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The broken promises of a command that exited 0."""
    broken = []
    if argv[0] == "health" and _keras_would_fail(_loads(folder)):
        broken.append(f"health exited 0 on a live model that does not load ({_loads(folder)})")
    if argv[0] == "validate" and _loads(folder) is not None:
        broken.append(f"validate said safe on a model that does not load ({_loads(folder)})")
    if argv[0] in ("convert", "rollback") and "already" not in out:
        why = _loads(folder)
        if why is not None:
            broken.append(f"{argv[0]} exited 0 but its result does not load ({why})")
        if argv[0] == "convert" and not could_load:
            broken.append("convert exited 0 on a model that does not load")
        model = next((k for k in before if k.endswith((".keras", ".h5"))), None)
        if argv[0] == "convert" and model and after.get(f"{model}.bk") != before[model]:
            broken.append("after convert, the .bk is not the model from before")
    return broken


def check_case(folder: Path, argv: list[str], child: bool = True,
               process: bool = False) -> Outcome:
    """Run one case and check every promise. ``child=False``: ``validate`` runs its parent
    side only; ``process=True``: through the real entry point (exit code, stderr as a user
    sees them)."""
    before = snapshot(folder)
    could_load = _loads(folder) is None if argv[0] == "convert" else True
    code, out, err, started = run_process(argv) if process else run_cli(argv, child=child)
    after = snapshot(folder)
    outcome = Outcome(code, err.strip().splitlines()[0] if err.strip() else "",
                      reached_child=started, child_on_damage=_loads(folder) if started else None)
    broken = outcome.broken
    if code not in (0, 1, 2):
        broken.append(f"exit code {code}")
    if "Traceback" in err + out or "Unexpected error" in err:
        broken.append("traceback or unexpected error: " + err.strip()[-300:])
    if len(err.strip().splitlines()) > 1:
        broken.append(f"more than one line on stderr: {err.strip()[:300]!r}")
    if code != 0 and user_files(after) != user_files(before):
        broken.append("the folder changed although the command failed")
    if argv[0] in READ_ONLY and after != before:
        broken.append(f"{argv[0]} changed the folder")
    if started and _keras_would_fail(outcome.child_on_damage):
        broken.append("validate started Keras on a model fsprec itself refuses "
                      f"({outcome.child_on_damage})")
    if code == 0:
        broken += _wrong_success(folder, argv, out, could_load, before, after)
    return outcome


if __name__ == "__main__":  # python tests/fuzz_cases.py SEED: run one case (Keras child too)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FSPREC_CACHE_DIR"] = str(Path(tmp) / "cache")  # health's, not the user's
        case = make_case(int(sys.argv[1]), Path(tmp))
        print(case[2], check_case(case[0], case[1]))

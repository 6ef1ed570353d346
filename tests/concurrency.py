"""Many fsprec processes changing one model folder at once (tests/test_concurrency.py and
benchmarks/concurrency.py).

Every process imports fsprec, then waits for a start file, so that they really do start
together. The folder starts converted (mixed model, float32 ``.bk``); each process either
converts it to float32 or restores it. Whatever order the lock lets them run in, the result
must be one of the folders a sequence of those operations gives, never a mix.
"""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from factory import PLUGIN, make_keras3

from fsprec.core import convert

RUNNER = textwrap.dedent("""
    import os, sys, time
    from fsprec.core.cli import main
    start = sys.argv[1]
    while not os.path.exists(start):
        time.sleep(0.001)
    sys.exit(main(sys.argv[2:]))
""")
# Refusals a process may meet when another is writing: the lock, or a file changed under it.
REFUSALS = ("Another fsprec is changing this model", "changed while fsprec was reading",
            "changed since fsprec read", "has this model's files open")


def _hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def prepare(folder: Path) -> dict[str, str]:
    """A converted folder; returns the hashes of its versions ``fp32`` (the original),
    ``mixed`` (converted) and ``fp32_again`` (mixed converted back to float32)."""
    make_keras3(folder)
    fp32 = _hash(folder / f"{PLUGIN}.keras")
    convert.convert(folder, "mixed_float16")
    mixed = _hash(folder / f"{PLUGIN}.keras")
    probe = folder.parent / f"{folder.name}-probe"
    make_keras3(probe)
    convert.convert(probe, "mixed_float16")
    convert.convert(probe, "float32", backup=False)
    return {"fp32": fp32, "mixed": mixed, "fp32_again": _hash(probe / f"{PLUGIN}.keras")}


def trial(folder: Path, processes: int, rng: random.Random) -> list[str]:
    """One trial; every broken promise, in words."""
    versions = prepare(folder)
    start = folder.parent / f"{folder.name}.start"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    commands = [["restore", str(folder)] if rng.random() < 0.5 else
                ["convert", str(folder), "--to", "float32", "--yes"] for _ in range(processes)]
    procs = [subprocess.Popen([sys.executable, "-c", RUNNER, str(start), *argv], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for argv in commands]
    time.sleep(0.5 + 0.15 * processes)  # let every process import fsprec and wait
    start.touch()
    results = [(argv[0], proc.wait(120), proc.stderr.read()) for argv, proc in
               zip(commands, procs, strict=True)]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()
    broken = []
    for command, code, err in results:
        if code not in (0, 2) or (code == 2 and not any(s in err for s in REFUSALS)):
            broken.append(f"{command} exited {code}: {err.strip()[-200:]}")
    model, backup = _hash(folder / f"{PLUGIN}.keras"), _hash(folder / f"{PLUGIN}.keras.bk")
    v = versions
    # The folders a sequence of restores and conversions to float32 can give (a round trip
    # may give back the original's very bytes: fp32_again == fp32):
    allowed = {(v["mixed"], v["fp32"]),        # nothing ran (all refused)
               (v["fp32_again"], v["mixed"]),  # convert (then any number of no-op converts)
               (v["fp32"], v["fp32"]),         # restore (a second restore copies it again)
               (v["mixed"], v["mixed"])}       # convert, then restore
    if (model, backup) not in allowed:
        names = {value: key for key, value in versions.items()}
        pair = (names.get(model, "?"), names.get(backup, "?"))
        broken.append(f"model/backup are {pair}: the .bk is not the true previous version")
    state = _hash(folder / f"{PLUGIN}_state.json")
    if state is None:
        broken.append("the state file is missing")
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".fsprec")
                 or p.name.endswith(".fsprec-tmp")]
    if leftovers:
        broken.append(f"left behind: {leftovers}")
    if not any(code == 0 for _, code, _ in results):
        broken.append("no process succeeded")
    start.unlink()
    return broken


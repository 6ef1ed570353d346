#!/usr/bin/env python3
"""Kill a real conversion at random instants: ``python benchmarks/kills.py --fs3 200 --fs2 100``.

Full-size models are rebuilt from the shared fixtures with ``rehydrate.py``. Each trial runs
``fsprec convert`` to the other precision in a child process and SIGKILLs it after a random
delay (or SIGTERMs it, one trial in four); then fsprec's next run in that folder recovers it
(:func:`fsprec.core.convert.recover`). The folder must then be exactly as it was, or fully
converted: model and state switched together, each ``.bk`` the version from before the trial,
no temp file, journal or lock left.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, UTC
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("FSPREC_FIXTURES", REPO.parent / "shared" / "fixtures"))


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def _check(folder: Path, before: dict[str, str], target: str) -> str | None:
    """Why the folder is neither as before nor fully converted (None: it is one of them)."""
    from fsprec.core import open_model

    after = _hashes(folder)
    leftovers = [n for n in after if n.startswith(".")]
    if leftovers:
        return f"left behind: {leftovers}"
    if after == before:
        return None
    model = open_model(folder)
    if model.precision != target or model.state.mixed_precision != (target != "float32"):
        return f"half converted: model {model.precision}, state {model.state.mixed_precision}"
    for name in (model.model_file.name, model.state_file.name):
        if after.get(f"{name}.bk") != before[name]:
            return f"{name}.bk is not the version from before the conversion"
    return None


def trials(kind: str, count: int, work: Path, rng: random.Random) -> dict:
    from fsprec.core import open_model
    from fsprec.core.convert import recover

    name = "original-fp32"
    folder = work / kind
    subprocess.run([sys.executable, str(FIXTURES / "rehydrate.py"), str(FIXTURES / kind / name),
                    str(folder)], check=True, capture_output=True)
    for path in folder.iterdir():
        path.chmod(0o644)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fsprec.core.cli", "convert", str(folder), "--to",
                    "mixed_float16", "--yes"], check=True, capture_output=True)
    span = time.perf_counter() - start  # one whole conversion, process start included
    result = {"trials": count, "model_mb": round(open_model(folder).model_file.stat().st_size
                                                 / 1e6), "conversion_s": round(span, 2),
              "as_before": 0, "converted": 0, "inconsistent": []}
    for trial in range(count):
        target = "float32" if open_model(folder).precision != "float32" else "mixed_float16"
        before = _hashes(folder)
        child = subprocess.Popen([sys.executable, "-m", "fsprec.core.cli", "convert",
                                  str(folder), "--to", target, "--yes"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, span * 1.1))
        child.send_signal(signal.SIGTERM if trial % 4 == 3 else signal.SIGKILL)
        child.wait()
        recover(folder)
        problem = _check(folder, before, target)
        if problem:
            result["inconsistent"].append(f"trial {trial}: {problem}")
        elif _hashes(folder) == before:
            result["as_before"] += 1
        else:
            result["converted"] += 1
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fs3", type=int, default=200, help="kills during FS3 conversions")
    parser.add_argument("--fs2", type=int, default=100, help="kills during FS2 conversions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="write the summary here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    summary = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"{platform.system()} {platform.release()}"}
    with tempfile.TemporaryDirectory() as work:
        for kind, count in (("fs3", args.fs3), ("fs2", args.fs2)):
            if count:
                summary[kind] = trials(kind, count, Path(work), rng)
                print(kind, json.dumps(summary[kind]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

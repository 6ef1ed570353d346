#!/usr/bin/env python3
"""The health check against reading the files once, on full-size rehydrated models.

A model folder with ``--snapshots`` snapshot folders beside it (copies of the model) is
checked with every version (``--all``) and with the default early stop, each in a fresh child
process, warm page cache; the baseline reads every model file once in 16 MB blocks.

Usage: python benchmarks/bench_health.py [--model original-mixed] [--snapshots 4]
Prints a Markdown table for docs/health.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("FSPREC_FIXTURES", REPO.parent / "shared" / "fixtures"))

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
op, folder, cache = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
from fsprec.core import health
from fsprec.core.health_cache import HealthCache
start = time.perf_counter()  # imports are not timed
if op == "read":
    files = [folder / "original.keras",
             *sorted(folder.parent.glob(folder.name + "_snapshot_*_iters/*.keras"))]
    for path in files:
        with open(path, "rb") as handle:
            while handle.read(16 << 20):
                pass
else:
    cache.unlink(missing_ok=True)
    health.check(folder, all_versions=op == "all", with_loss=False, cache=HealthCache(cache))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(op: str, folder: Path, cache: Path) -> dict:
    run = subprocess.run([sys.executable, "-c", CHILD, op, str(folder), str(cache)],
                         capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="original-mixed")
    parser.add_argument("--snapshots", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "original"
        subprocess.run([sys.executable, str(FIXTURES / "rehydrate.py"),
                        str(FIXTURES / "fs3" / args.model), str(folder)], check=True,
                       capture_output=True)
        for number in range(1, args.snapshots + 1):
            shutil.copytree(folder, Path(tmp) / f"original_snapshot_{number * 1000}_iters")
        size = (folder / "original.keras").stat().st_size * (args.snapshots + 1)
        cache = Path(tmp) / "cache.json"
        child("read", folder, cache)  # warm the page cache
        read = child("read", folder, cache)
        every = child("all", folder, cache)
        first = child("first", folder, cache)
    print(f"{args.model}, {args.snapshots + 1} versions, {size / 1e6:.0f} MB in all\n")
    print("| operation | seconds | x reading the files | peak RSS MB |")
    print("|---|---|---|---|")
    for name, result in (("read every model file once", read),
                         ("health --all (every version)", every),
                         ("health (stops at the first clean)", first)):
        print(f"| {name} | {result['seconds']:.2f} | {result['seconds'] / read['seconds']:.2f} "
              f"| {result['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()

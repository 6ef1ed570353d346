#!/usr/bin/env python3
"""Benchmarks of the file engine on full-size rehydrated Faceswap models.

Measured side by side in one run, each operation in a fresh child process (its peak RSS is
its own, or its HDF5 guard's child's when larger), median of ``--repeat`` runs, warm page
cache for every contender:

* inspect (``open_model`` + full layer tree with params; in the process, and the whole process)
  vs ``keras.saving.load_model``;
* convert in place, backups included, as a whole process (interpreter start, imports and
  all, as ``fsprec convert DIR --to P --yes`` runs it) vs ``cp`` and ``cp`` + ``sync`` of the
  same file, also whole processes;
* peak RSS of a conversion, for models of different sizes;
* nan-scan vs reading the model file once.

Usage: python benchmarks/bench_core.py [--models original-fp32 dfaker-fp32] [--repeat 3]
Prints a Markdown table; paste it into docs/benchmarks.md with the machine and date.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("FSPREC_FIXTURES", REPO.parent / "shared" / "fixtures"))

# Each child prints {"seconds": op time, "rss_mb": peak RSS} as its last line.
CHILD = r"""
import json, resource, sys, time
op, path = sys.argv[1], sys.argv[2]
if op == "load":
    import os
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    from fsprec.core.keras import compat
    custom = compat.custom_objects()
from fsprec.core import open_model
start = time.perf_counter()
if op == "inspect":
    model = open_model(path)
    sum(top.params for top in model.layer_tree())
elif op == "load":
    from fsprec.core.modelfile import find_model_file
    from pathlib import Path
    keras.saving.load_model(find_model_file(Path(path)), custom_objects=custom, compile=False)
elif op == "convert":  # as the command line runs it
    from fsprec.core.cli import main
    assert main(["convert", path, "--to", sys.argv[3], "--yes"]) == 0
elif op == "nanscan":
    from fsprec.core.nanscan import scan_weights
    assert scan_weights(path).clean
elif op == "read":
    with open(path, "rb") as handle:
        while handle.read(8 << 20):
            pass
seconds = time.perf_counter() - start
peak = max(resource.getrusage(who).ru_maxrss  # the guard's child counts too
           for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(json.dumps({"seconds": seconds, "rss_mb": peak / 1024}))
"""


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache (as if read from disk for the first time)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def prepare(cold: Path | None) -> None:
    """Flush pending writes so no contender pays for another's write-back; evict if cold."""
    os.sync()
    if cold is not None:
        evict(cold)


def child(op: str, *args: str, cold: Path | None = None) -> dict:
    prepare(cold)
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", CHILD, op, *args], capture_output=True,
                         text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"{op} failed: {run.stderr[-2000:]}")
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "wall": wall}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def timed_cp(source: Path, dest: Path, cold: bool, durable: bool = False) -> float:
    """``cp`` of the file; ``durable`` adds ``sync FILE`` (an fsync, as fsprec's write has)."""
    prepare(source if cold else None)
    start = time.perf_counter()
    subprocess.run(["cp", str(source), str(dest)], check=True)
    if durable:
        subprocess.run(["sync", str(dest)], check=True)
    return time.perf_counter() - start


def bench_model(name: str, work: Path, repeat: int, with_keras: bool, cold: bool) -> dict:
    source = work / name
    if not source.exists():
        subprocess.run([sys.executable, str(FIXTURES / "rehydrate.py"),
                        str(FIXTURES / "fs3" / name), str(source)], check=True,
                       capture_output=True)
    model_file = next(source.glob("*.keras"))
    evicted = model_file if cold else None
    row: dict = {"model": name, "size_mb": model_file.stat().st_size / 1e6}
    child("read", str(model_file))  # warm the cache (or evict below, per run)
    inspect = [child("inspect", str(source), cold=evicted) for _ in range(repeat)]
    row["inspect_s"], row["inspect_rss"] = median(inspect, "seconds"), median(inspect, "rss_mb")
    row["inspect_wall"] = median(inspect, "wall")
    if with_keras:
        load = [child("load", str(source), cold=evicted) for _ in range(repeat)]
        row["load_s"], row["load_rss"] = median(load, "seconds"), median(load, "rss_mb")
    target = "float32" if "mixed" in name else "mixed_float16"
    converts, copies, durable = [], [], []
    for index in range(repeat):
        scratch = work / f"{name}-scratch"
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.copytree(source, scratch)
        scratch_file = scratch / model_file.name
        if not cold:
            child("read", str(scratch_file))
        converts.append(child("convert", str(scratch), target,
                              cold=scratch_file if cold else None))
        copies.append(timed_cp(scratch / f"{model_file.name}.bk", scratch / f"copy-{index}",
                               cold))
        durable.append(timed_cp(scratch / f"{model_file.name}.bk", scratch / f"sync-{index}",
                                cold, durable=True))
        shutil.rmtree(scratch)
    row["convert_s"], row["convert_rss"] = median(converts, "wall"), median(converts, "rss_mb")
    row["cp_s"] = statistics.median(copies)
    row["cp_sync_s"] = statistics.median(durable)
    scans = [child("nanscan", str(source), cold=evicted) for _ in range(repeat)]
    reads = [child("read", str(model_file), cold=evicted) for _ in range(repeat)]
    row["nanscan_s"], row["nanscan_rss"] = median(scans, "seconds"), median(scans, "rss_mb")
    row["read_s"] = median(reads, "seconds")
    return row


def markdown(rows: list[dict], with_keras: bool) -> str:
    lines = ["| model | size | inspect | inspect process | load_model | speed-up | "
             "RSS inspect / load | convert | cp | convert/cp | cp+sync | convert/(cp+sync) | "
             "convert RSS | nan-scan | read once | scan/read |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        load = (f"{r['load_s']:.2f} s", f"{r['load_s'] / r['inspect_s']:.0f}x",
                f"{r['inspect_rss']:.0f} / {r['load_rss']:.0f} MB "
                f"({r['inspect_rss'] / r['load_rss']:.2f})") if with_keras else ("-", "-", "-")
        lines.append(
            f"| {r['model']} | {r['size_mb']:.0f} MB | {r['inspect_s'] * 1000:.0f} ms | "
            f"{r['inspect_wall'] * 1000:.0f} ms | "
            f"{load[0]} | {load[1]} | {load[2]} | {r['convert_s']:.2f} s | {r['cp_s']:.2f} s | "
            f"{r['convert_s'] / r['cp_s']:.2f} | {r['cp_sync_s']:.2f} s | "
            f"{r['convert_s'] / r['cp_sync_s']:.2f} | {r['convert_rss']:.0f} MB | "
            f"{r['nanscan_s']:.2f} s | {r['read_s']:.2f} s | {r['nanscan_s'] / r['read_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["original-fp32", "dfaker-fp32"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work", type=Path, help="where to rehydrate (default: a temp dir)")
    parser.add_argument("--no-keras", action="store_true", help="skip keras load_model")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="fsprec-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
          f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d')}; "
          f"median of {args.repeat} runs, each in a fresh process.")
    for cold in (True, False):
        rows = [bench_model(name, work, args.repeat, not args.no_keras, cold)
                for name in args.models]
        print(f"\n{'Cold' if cold else 'Warm'} page cache "
              f"({'the model file evicted before each run' if cold else 'file already cached'}):\n")
        print(markdown(rows, not args.no_keras))


if __name__ == "__main__":
    main()

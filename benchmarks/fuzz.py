#!/usr/bin/env python3
"""The long fuzz run: ``python benchmarks/fuzz.py --n 5000``.

The same cases as tests/test_fuzz.py (tests/fuzz_cases.py): every command of the CLI on every
mutation family, in turn. They run in a worker process that a watchdog restarts when a case
crashes it or runs past ``--timeout`` (a hang). For each case the worker resets its peak-memory
mark (``/proc/self/clear_refs``) and reports the case's own peak RSS (fsprec's process; the
Keras child of ``validate`` is a process of its own and not counted). ``validate`` runs its
Keras child where the parent lets the input through, unless ``--no-child`` (then it stops
there, as in the bounded suite). Prints a summary (and ``--json`` writes it) for
docs/reliability.md.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, UTC
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def _peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def worker(child: bool) -> None:
    """Read seeds on stdin, answer one JSON line per case on stdout."""
    from fuzz_cases import check_case, make_case

    root = Path(tempfile.mkdtemp(prefix="fsprec-fuzz-"))
    cache = Path(tempfile.mkdtemp(prefix="fsprec-fuzz-cache-"))
    os.environ["FSPREC_CACHE_DIR"] = str(cache)  # health's cache, never the user's
    for line in sys.stdin:
        seed = int(line)
        folder, argv, description = make_case(seed, root)
        _reset_peak()
        start = time.perf_counter()
        outcome = check_case(folder, argv, child=child)
        answer = {"seed": seed, "case": description, "broken": outcome.broken,
                  "command": argv[0], "code": outcome.code, "child": outcome.reached_child,
                  "seconds": time.perf_counter() - start, "rss_mb": _peak_mb()}
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        print(json.dumps(answer), flush=True)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)


class Worker:
    """The worker process, restarted after a crash or a hang."""

    def __init__(self, child: bool) -> None:
        self.argv = [sys.executable, __file__, "--worker"] + ([] if child else ["--no-child"])
        self.proc = self._start()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, cwd=REPO)

    def run(self, seed: int, timeout: float) -> dict | str:
        """The case's answer, or "hang" / "crash"."""
        self.proc.stdin.write(f"{seed}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        outcome = "hang" if not ready else "crash"
        self.proc.kill()
        self.proc.wait()
        self.proc = self._start()
        return outcome

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="cases to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a hang")
    parser.add_argument("--json", metavar="FILE", help="write the summary here")
    parser.add_argument("--no-child", action="store_true",
                        help="validate stops where it would start its Keras child")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(child=not args.no_child)
        return
    started = time.time()
    kinds, commands, codes, failures = (collections.Counter(), collections.Counter(),
                                        collections.Counter(), [])
    hangs = crashes = children = 0
    peak, slowest = 0.0, (0.0, "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    pool = Worker(child=not args.no_child)
    done = 0
    for seed in range(args.start, args.start + args.n):
        answer = pool.run(seed, args.timeout)
        done += 1
        if answer in ("hang", "crash"):
            hangs, crashes = hangs + (answer == "hang"), crashes + (answer == "crash")
            failures.append({"seed": seed, "broken": [f"the case ended in a {answer}"]})
            print(f"BROKEN seed {seed}: {answer}", flush=True)
            continue
        kinds[answer["case"].split(":")[1].split(" on ")[0].strip()] += 1
        commands[answer["command"]] += 1
        codes[str(answer["code"])] += 1
        children += answer["child"]
        peak = max(peak, answer["rss_mb"])
        if answer["rss_mb"] > 200:
            answer["broken"].append(f"peak RSS {answer['rss_mb']:.0f} MB")
        slowest = max(slowest, (answer["seconds"], answer["case"]))
        if answer["broken"]:
            failures.append(answer)
            print(f"BROKEN {answer['case']}: {answer['broken']}", flush=True)
        if done % 250 == 0 or done == args.n:
            summary = {
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
                           f"{platform.release()}, Python {platform.python_version()}",
                "load_average_at_start": load,
                "load_average_at_end": os.getloadavg()[0] if load is not None else None,
                "cases": done, "first_seed": args.start, "by_kind": dict(kinds),
                "by_command": dict(commands), "exit_codes": dict(codes),
                "validate_child": "not started" if args.no_child else "started",
                "validate_reached_child": children,
                "broken": len(failures), "hangs": hangs, "crashes": crashes,
                "peak_rss_mb": round(peak, 1), "slowest_case_s": round(slowest[0], 2),
                "slowest_case": slowest[1], "wall_s": round(time.time() - started),
                "failures": failures[:50],
            }
            print(f"{done} cases, {len(failures)} broken, peak {peak:.0f} MB", flush=True)
            if args.json:  # written as it goes: a run stopped early still has its figures
                Path(args.json).write_text(json.dumps(summary, indent=2))
    pool.close()
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=2))

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Many writers at once, many trials: ``python benchmarks/concurrency.py --trials 60``.

Each trial starts 2-8 processes together (tests/concurrency.py), converting and restoring
one folder; it counts trials whose folder or ``.bk`` is not what some order of the successful
operations gives, and how many processes won or were refused.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
from datetime import datetime, UTC
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    from concurrency import trial

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="write the summary here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    by_size: dict[int, int] = {}
    broken = []
    for number in range(args.trials):
        processes = 2 + number % 7
        with tempfile.TemporaryDirectory() as work:
            problems = trial(Path(work) / "m", processes, rng)
        by_size[processes] = by_size.get(processes, 0) + 1
        if problems:
            broken.append({"trial": number, "processes": processes, "problems": problems})
            print("BROKEN", broken[-1], flush=True)
    summary = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "trials": args.trials, "trials_by_processes": by_size,
               "broken_trials": len(broken), "broken": broken}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

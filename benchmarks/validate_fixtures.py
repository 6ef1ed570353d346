#!/usr/bin/env python3
"""Run ``fsprec validate`` on every rehydrated fixture and print a Markdown table.

Usage: python benchmarks/validate_fixtures.py [--work DIR] [--batch 2] [--steps 5] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("FSPREC_FIXTURES", REPO.parent / "shared" / "fixtures"))
SKIP = ("-backup", "-trained", "-switched-to-mixed", "-switched-to-fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", nargs="*", help="fixture names (fs3/original-fp32 ...)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="fsprec-validate-"))
    names = args.only or [f"{kind}/{p.name}" for kind in ("fs3", "fs2")
                          for p in sorted((FIXTURES / kind).iterdir())
                          if p.is_dir() and not p.name.endswith(SKIP)]
    print(f"{platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; "
          f"batch {args.batch}, {args.steps} training steps, device {args.device}\n")
    print("| fixture | verdict | worst rel. L2 | layers at risk | loss fp32 / mixed (last) | "
          "skipped | forward img/s fp32 / mixed | wall |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        target = work / name.replace("/", "_")
        if not target.exists():
            subprocess.run([sys.executable, str(FIXTURES / "rehydrate.py"), str(FIXTURES / name),
                            str(target)], check=True, capture_output=True)
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "fsprec.core.cli", "validate", str(target),
                              "--json", "--batch", str(args.batch), "--steps", str(args.steps),
                              "--device", args.device], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if run.returncode not in (0, 1):
            print(f"| {name} | error: {run.stderr.strip().splitlines()[-1][:80]} | | | | | | |")
            continue
        r = json.loads(run.stdout)
        worst = max(o["rel_l2"] for o in r["outputs"])
        risky = sorted({l["risk"] for l in r["layers"] if l["risk"]})
        count = sum(1 for l in r["layers"] if l["risk"])
        t = r["training"]
        loss = (f"{t['float32']['loss'][-1]:.4f} / {t['target']['loss'][-1]:.4f}" if t else "-")
        skipped = t["target"]["skipped_steps"] if t else "-"
        s = r["speed"]
        print(f"| {name} | {r['verdict']['status']} | {worst:.1e} | "
              f"{count} ({', '.join(risky) or '-'}) | {loss} | {skipped} | "
              f"{s['forward_float32_ips']:.1f} / {s['forward_target_ips']:.1f} | {wall:.0f} s |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Run ``fsprec validate`` on every rehydrated fixture and print a Markdown table.

Usage: python benchmarks/validate_fixtures.py [--work DIR] [--batch N] [--steps K] [--device cpu]
       [--backend auto|torch|tensorflow|jax]
(batch and steps default to the quick preset on a CPU, the full one on a GPU.)
On a GPU machine: KERAS_BACKEND=torch python benchmarks/validate_fixtures.py --device gpu
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
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--only", nargs="*", help="fixture names (fs3/original-fp32 ...)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="fsprec-validate-"))
    names = args.only or [f"{kind}/{p.name}" for kind in ("fs3", "fs2")
                          for p in sorted((FIXTURES / kind).iterdir())
                          if p.is_dir() and not p.name.endswith(SKIP)]
    from fsprec.core.validate import ValidationResult
    from fsprec.core.validate.result import sig

    print(f"{platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; "
          f"batch {args.batch or 'preset'}, {args.steps or 'preset'} training steps, device "
          f"{args.device}, backend {args.backend}\n")
    print("| fixture | verdict | worst PSNR | layers flagged | stress Inf/NaN | "
          "loss fp32 / mixed (last) | skipped | forward img/s fp32 / mixed | wall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        target = work / name.replace("/", "_")
        if not target.exists():
            subprocess.run([sys.executable, str(FIXTURES / "rehydrate.py"), str(FIXTURES / name),
                            str(target)], check=True, capture_output=True)
        argv = [sys.executable, "-m", "fsprec.core.cli", "validate", str(target), "--json",
                "--device", args.device, "--backend", args.backend]
        argv += ["--batch", str(args.batch)] if args.batch else []
        argv += ["--steps", str(args.steps)] if args.steps is not None else []
        start = time.perf_counter()
        run = subprocess.run(argv, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if run.returncode not in (0, 1):
            print(f"| {name} | error: {run.stderr.strip().splitlines()[-1][:80]} |||||||| ")
            continue
        r = ValidationResult.from_json(json.loads(run.stdout))
        worst = min((o.psnr_db for o in r.outputs if o.psnr_db is not None), default=None)
        risky = sorted({layer.risk for layer in r.layers if layer.risk})
        count = sum(1 for layer in r.layers if layer.risk)
        stress = ", ".join(s.name for s in r.stress if s.new_nonfinite) or "-"
        t = r.training
        loss = f"{sig(t.float32.loss[-1])} / {sig(t.target.loss[-1])}" if t else "-"
        skipped = t.target.skipped_steps if t else "-"
        speed = (f"{sig(r.speed.forward_float32_ips)} / {sig(r.speed.forward_target_ips)}"
                 if r.speed else "-")
        print(f"| {name} | {r.verdict.status} | {sig(worst, ' dB')} | "
              f"{count} ({', '.join(risky) or '-'}) | {stress} | {loss} | {skipped} | {speed} | "
              f"{wall:.0f} s |")


if __name__ == "__main__":
    main()

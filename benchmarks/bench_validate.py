#!/usr/bin/env python3
"""The validator's forward throughput against a bare Keras predict loop, side by side.

Same model, same policy, same batch, same process and device: fsprec's ``measure.throughput``
of ``measure.forward`` (what ``fsprec validate`` reports) vs ``model.predict`` over the same
number of batches. Target: >= 0.9x. Also times a whole ``fsprec validate`` pass.

Usage: python benchmarks/bench_validate.py MODEL_DIR [--batch 8] [--policy mixed_float16]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--policy", default="mixed_float16")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    from fsprec.core.keras.backend import ensure_backend
    ensure_backend()
    from fsprec.core.validate.child import measure
    from fsprec.core.validate import Options
    from fsprec.core.validate.child.engine import Builder, make_inputs

    builder = Builder(args.folder)
    inputs = make_inputs(builder.base, Options(batch=args.batch))
    print(f"device: {measure.device_info()}; batch {args.batch}")
    print("| policy | fsprec forward img/s | bare model.predict img/s | ratio |")
    print("|---|---|---|---|")
    for policy in ("float32", args.policy):
        model = builder.build(policy)
        ours = measure.throughput(lambda: measure.forward(model, inputs), args.batch,
                                  budget=args.seconds)
        batches = max(3, int(ours * args.seconds / args.batch))
        stacked = [np.concatenate([x] * batches) for x in inputs]
        feed = stacked if len(stacked) > 1 else stacked[0]
        model.predict(feed[:args.batch] if len(stacked) == 1 else [s[:args.batch] for s in
                                                                    stacked], verbose=0)
        start = time.perf_counter()
        model.predict(feed, batch_size=args.batch, verbose=0)
        bare = batches * args.batch / (time.perf_counter() - start)
        print(f"| {policy} | {ours:.1f} | {bare:.1f} | {ours / bare:.2f} |")

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fsprec.core.cli", "validate", str(args.folder),
                    "--batch", str(args.batch), "--policy", args.policy, "--json"],
                   capture_output=True, check=False)
    print(f"\nwhole `fsprec validate` pass (20 training steps): "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

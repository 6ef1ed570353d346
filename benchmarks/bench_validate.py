#!/usr/bin/env python3
"""The validator's forward throughput against a bare Keras predict loop, and a whole pass.

Same model, same policy, same batch, same process and device: fsprec's ``measure.throughput``
of ``measure.forward`` (what ``fsprec validate`` reports) vs ``model.predict`` over the same
number of batches. Target: >= 0.9x. Then times a whole ``fsprec validate`` pass with the
default preset (quick on a CPU, full on a GPU) and prints its stage timeline.

Usage: python benchmarks/bench_validate.py MODEL_DIR [--batch N] [--policy mixed_float16]
On a GPU machine (Faceswap 3's backend):
    KERAS_BACKEND=torch python benchmarks/bench_validate.py MODEL_DIR --device gpu
To measure the quick CPU pass on 2 cores: taskset -c 0,1 python benchmarks/bench_validate.py
    MODEL_DIR --device cpu --pass-only
"""
from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np


def forward_throughput(folder: Path, batch: int, policy: str, seconds: float) -> None:
    """Print fsprec's forward throughput against a bare ``model.predict`` loop."""
    from fsprec.core.keras.backend import ensure_backend
    ensure_backend()
    from fsprec.core.validate import Options
    from fsprec.core.validate.child import measure
    from fsprec.core.validate.child.engine import Builder, make_inputs

    builder = Builder(folder)
    inputs = [x[:batch] for x in make_inputs(builder.base, Options(), batch)]  # faces only
    print(f"device: {measure.device_info()}; batch {batch}")
    print("| policy | fsprec forward img/s | bare model.predict img/s | ratio |")
    print("|---|---|---|---|")
    for name in ("float32", policy):
        model = builder.build(name)
        ours = measure.throughput(lambda m=model: measure.forward(m, inputs), batch,
                                  budget=seconds)
        batches = max(3, int(ours * seconds / batch))
        stacked = [np.concatenate([x] * batches) for x in inputs]
        feed = stacked if len(stacked) > 1 else stacked[0]
        warm = [s[:batch] for s in stacked]
        model.predict(warm if len(warm) > 1 else warm[0], verbose=0)
        start = time.perf_counter()
        model.predict(feed, batch_size=batch, verbose=0)
        bare = batches * batch / (time.perf_counter() - start)
        print(f"| {name} | {ours:.3g} | {bare:.3g} | {ours / bare:.2f} |")


def whole_pass(folder: Path, policy: str, device: str, batch: int | None) -> None:
    """Time a whole validation pass (its own child process) and each stage's arrival."""
    from fsprec.core.validate import Options, run_validation

    start = time.perf_counter()
    arrivals: list[str] = []

    def stage(name: str, _partial: object) -> None:
        arrivals.append(f"{name} {time.perf_counter() - start:.0f} s")
    result = run_validation(folder, Options(policy=policy, batch=batch), device,
                            on_stage=stage)
    wall = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child's CPU time, any load
    run = result.runtime
    print(f"\nwhole `fsprec validate` pass on {run.where} ({run.backend}, Keras "
          f"{run.keras_version}), batch {result.inputs.batch}, "
          f"{result.training.steps if result.training else 0} training steps: {wall:.0f} s "
          f"wall, {used.ru_utime + used.ru_stime:.0f} s CPU time in the child (stages: "
          f"{', '.join(arrivals)}); verdict {result.verdict.status}")
    if result.speed:
        print(f"forward {result.speed.forward_float32_ips:.3g} img/s float32, "
              f"{result.speed.forward_target_ips:.3g} img/s {policy}; peak memory "
              f"{result.speed.peak_memory_float32_mb} / {result.speed.peak_memory_target_mb} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--batch", type=int, help="default: the device's preset")
    parser.add_argument("--policy", default="mixed_float16")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--pass-only", action="store_true", help="only time the whole pass")
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if not args.pass_only:
        forward_throughput(args.folder, args.batch or 8, args.policy, args.seconds)
    whole_pass(args.folder, args.policy, args.device, args.batch)


if __name__ == "__main__":
    main()

"""``fsprec validate``: its arguments and its command (the parent side; no Keras)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TextIO

from ..errors import FsprecError
from ..layers import MIXED_POLICIES
from .options import BACKEND_CHOICES, DEVICES, FULL, QUICK, Options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``validate`` to the ``fsprec`` subcommands."""
    p = sub.add_parser("validate", help="compare float32 and mixed precision on this machine "
                       "(exit 1 unless safe)")
    p.add_argument("dir", help="the model folder")
    p.add_argument("--policy", default="mixed_float16", choices=MIXED_POLICIES)
    p.add_argument("--batch", type=int, help=f"face images per batch (default {QUICK.batch} "
                   f"on a CPU, {FULL.batch} on a GPU)")
    p.add_argument("--steps", type=int, help=f"training-check steps (default {QUICK.steps} on "
                   f"a CPU, {FULL.steps} on a GPU)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--backend", choices=BACKEND_CHOICES, help="Keras backend (default: "
                   "$KERAS_BACKEND, else auto: torch, else TensorFlow, else JAX)")
    p.add_argument("--python", metavar="PATH", help="run the pass in this Python, e.g. "
                   "Faceswap's environment's (it needs Keras and a backend, not fsprec); "
                   "'faceswap': the conda environment named faceswap")
    p.add_argument("--images", metavar="DIR", help="a folder of face images (default: "
                   "synthetic faces)")
    p.add_argument("--tolerance", type=float, help="RMS error allowed per unit of the "
                   "output's own variation (default 0.1 for float16, 0.25 for bfloat16)")
    p.add_argument("--pin", action="append", metavar="NAME",
                   help="keep this layer float32 (default: the model's own pins)")
    p.add_argument("--no-autopin", action="store_true", help="do not search for pins")
    p.add_argument("--json", action="store_true", help="print the result document")
    p.set_defaults(func=command)
    return p


class Progress:
    """Stage, bar and time left on one stderr line (only on a terminal)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream, self.enabled = stream, stream.isatty()
        self.eta: float | None = None
        self._last = 0.0

    def progress(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.2 and done < total):
            return
        self._last = now
        fraction = min(1.0, done / total) if total else 0.0
        left = "" if self.eta is None else f"  about {self.eta:.0f} s left"
        self.stream.write(f"\r{stage:<16} [{'#' * int(fraction * 24):<24}]{left:<22}")
        self.stream.flush()

    def set_eta(self, seconds: float | None) -> None:
        self.eta = seconds

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()


def command(args: argparse.Namespace) -> int:
    """Run the pass; print the report (or ``--json``); 0 when safe, else 1."""
    from .environments import CONDA_ROOTS, ENV_NAME, faceswap_pythons
    from .report import text_report
    from .runner import run_validation

    options = Options(args.policy, args.batch, args.steps, args.images, args.tolerance,
                      autopin=not args.no_autopin, pins=args.pin)
    python = args.python
    if python == "faceswap":
        found = faceswap_pythons()
        if not found:
            raise FsprecError(f"No conda environment named {ENV_NAME} was found (looked under "
                              f"~/{', ~/'.join(CONDA_ROOTS)}); give --python PATH.")
        python = str(found[0])
    bar = Progress()
    try:
        result = run_validation(args.dir, options, args.device, on_progress=bar.progress,
                                on_eta=bar.set_eta, backend=args.backend, python=python)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(text_report(result))
    return 0 if result.verdict is not None and result.verdict.status == "safe" else 1

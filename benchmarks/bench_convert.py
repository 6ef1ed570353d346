#!/usr/bin/env python3
"""A conversion against a durable copy, in a folder as Faceswap leaves it.

One rehydrated model folder is switched to the other precision and back, ``--repeat`` times,
each conversion a whole ``fsprec convert DIR --to P --yes`` process (interpreter start and
imports included). From the second conversion on, each replaces the previous ``.bk`` (as in a
folder Faceswap has saved in: it keeps a backup too). Against: ``cp`` of the model file to a
new file followed by ``sync FILE``, also a whole process. Warm page cache throughout; every
timed command, conversion or copy, starts on an idle disk (a ``sync`` before it, not timed).

``--optimizer-mb N`` adds an ``optimizer.pt`` member of N MB (random, stored) to the model, the
size a trained model carries (Adam keeps two moments per weight: about twice the weights).
fsprec runs as a user's install runs it: the ``fsprec`` command of a new virtual environment
with this checkout's wheel and its dependencies from the wheelhouse (``.whl/``, ``make
wheelhouse``; no package index), bytecode compiled by pip. ``--here`` runs this interpreter's
``python -m fsprec.core.cli`` instead (the development install). ``--baseline DIR`` times
another fsprec too, run by this interpreter with ``PYTHONPATH=DIR`` (a folder holding an
``fsprec/`` package of an earlier version), conversion for conversion beside this one.

Usage: python benchmarks/bench_convert.py [--model dfaker-fp32] [--optimizer-mb 900]
       [--repeat 5] [--here] [--baseline DIR]
Prints a Markdown table; paste it into docs/benchmarks.md with the machine and date.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("FSPREC_FIXTURES", REPO.parent / "shared" / "fixtures"))
WHEELHOUSE = REPO / ".whl"
HERE = [sys.executable, "-m", "fsprec.core.cli"]


def installed(work: Path) -> list[str]:
    """The ``fsprec`` command of a new venv holding this checkout as pip installs it."""
    if not (WHEELHOUSE / ".ready").is_file():
        sys.exit("No wheelhouse at .whl/: run `make wheelhouse` first (or pass --here).")
    root = work / "venv"
    venv.create(root, with_pip=True, clear=True)
    subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
                    "--find-links", str(WHEELHOUSE), str(REPO)], check=True)
    return [str(root / "bin" / "fsprec")]


def prepare(name: str, work: Path, optimizer_mb: int) -> Path:
    """A writable full-size copy of fixture ``fs3/name``, with an optimizer member if asked."""
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, str(FIXTURES / "rehydrate.py"), str(FIXTURES / "fs3" / name),
                    str(folder)], check=True, capture_output=True)
    for path in folder.iterdir():
        path.chmod(0o644)
    if optimizer_mb:
        block = os.urandom(1 << 20)
        with zipfile.ZipFile(next(folder.glob("*.keras")), "a") as archive, \
                archive.open("optimizer.pt", "w", force_zip64=True) as member:
            for _ in range(optimizer_mb):
                member.write(block)
    return folder


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds of ``command``, started once the disk has written everything pending."""
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def convert(fsprec: list[str], folder: Path, target: str,
            pythonpath: str | None = None) -> float:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return timed([*fsprec, "convert", str(folder), "--to", target, "--yes"], env)


def durable_copy(model: Path, dest: Path) -> float:
    dest.unlink(missing_ok=True)
    return timed(["sh", "-c", f"cp '{model}' '{dest}' && sync '{dest}'"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dfaker-fp32")
    parser.add_argument("--optimizer-mb", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--here", action="store_true",
                        help="run this interpreter's fsprec, not a fresh install's")
    parser.add_argument("--baseline", help="PYTHONPATH of an earlier fsprec to time beside")
    parser.add_argument("--work", type=Path, help="where to rehydrate (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="fsprec-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    fsprec = HERE if args.here else installed(work)
    folder = prepare(args.model, work, args.optimizer_mb)
    model = next(folder.glob("*.keras"))
    other = work / "baseline"
    if args.baseline:
        shutil.rmtree(other, ignore_errors=True)
        shutil.copytree(folder, other)
    targets = ("mixed_float16", "float32") if "fp32" in args.model else ("float32",
                                                                           "mixed_float16")
    ours, theirs, copies = [], [], []
    for _ in range(args.repeat):
        for target in targets:
            if args.baseline:
                theirs.append(convert(HERE, other, target, args.baseline))
            ours.append(convert(fsprec, folder, target))
        copies.append(durable_copy(model, work / "copy.keras"))
    (work / "copy.keras").unlink()
    shutil.rmtree(other, ignore_errors=True)
    copy = statistics.median(copies)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}; fsprec "
          f"{'of this interpreter' if args.here else 'installed from its wheel'}; median of "
          f"{len(ours)} conversions and {len(copies)} copies, warm page cache.\n")
    header = "| model | size | convert | cp+sync | convert/(cp+sync) |"
    row = (f"| {args.model}{f' + {args.optimizer_mb} MB optimizer' if args.optimizer_mb else ''}"
           f" | {model.stat().st_size / 1e6:.0f} MB | {statistics.median(ours):.2f} s | "
           f"{copy:.2f} s | {statistics.median(ours) / copy:.2f} |")
    if args.baseline:
        header += " baseline convert | baseline/(cp+sync) |"
        row += (f" {statistics.median(theirs):.2f} s | "
                f"{statistics.median(theirs) / copy:.2f} |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    print(row)
    shutil.rmtree(folder)
    shutil.rmtree(work / "venv", ignore_errors=True)


if __name__ == "__main__":
    main()

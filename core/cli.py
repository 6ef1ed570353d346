"""``fsprec``: the command line, thin over the core functions.

Exit codes: 0 success; 1 a check found a problem; 2 bad input or usage (one clear sentence on
stderr, nothing changed on disk); 130 cancelled with Ctrl-C (nothing changed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from . import __version__, atomic, convert, failures, lock, nanscan, procs, restore, scan
from .layers import MIXED_POLICIES, POLICIES
from .modelfile import open_model
from .task import Task

FACESWAP_ENV = "FSPREC_FACESWAP"


class ProgressBar:
    """A one-line progress bar on stderr, drawn only on a terminal and at most 10 times/s."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0
        self._drawn = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and done < total):
            return
        self._last = now
        if total > 0:
            fraction = min(1.0, done / total)
            bar = "#" * int(fraction * 30)
            text = f"\r{stage:<18} [{bar:<30}] {fraction:6.1%}"
        else:
            text = f"\r{stage:<18} {done}"
        self.stream.write(text)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Clear the bar's line."""
        if self._drawn:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def _run_task(job: Callable[[Task], Any]) -> Any:
    bar = ProgressBar()
    try:
        return job(Task(bar))
    finally:
        bar.close()


def _table(rows: list[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    return "\n".join(lines)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def cmd_inspect(args: argparse.Namespace) -> int:
    model = open_model(args.dir)
    if args.json:
        _print_json(model.to_json() | {"in_use": _in_use_notes(model.path)})
        return 0
    leaves = model.leaves()
    print(f"{model.model_file}  ({'Faceswap 3' if model.format == 'keras3' else 'Faceswap 2'}, "
          f"Keras {model.keras_version or '?'})")
    print(f"Precision: {model.precision}   Iterations: {model.iterations}   "
          f"Parameters: {model.weights.total_params:,}")
    print(f"Eligible for mixed precision: {len(model.eligible)} of {len(leaves)} layers "
          f"(from {model.eligible_source})")
    if model.pinned:
        print(f"Pinned to float32: {', '.join(model.pinned)}")
    if model.state_problem:
        print(f"Warning: {model.state_problem}")
    for note in _in_use_notes(model.path):
        print(f"Note: {note}")
    print()
    rows = [(layer.path, layer.class_name, layer.dtype_policy or "-",
             "yes" if layer.eligible else "no", f"{layer.params:,}", layer.reason)
            for top in model.layer_tree() for layer in top.walk()]
    print(_table(rows, ("Layer", "Class", "dtype policy", "Eligible", "Params", "Why")))
    return 0


def _in_use_notes(folder) -> list[str]:
    """What inspect says about other programs and leftovers in the folder."""
    notes = []
    training = procs.training_message(folder)
    if training:
        notes.append(training)
    holder = lock.busy(folder)
    if holder is not None:
        who = f" (pid {holder})" if holder else ""
        notes.append(f"Another fsprec is changing this model{who}.")
    if atomic.interrupted(folder):
        notes.append("An interrupted switch will be completed by fsprec's next change here.")
    return notes


def _confirm(plan: convert.Plan) -> bool:
    print("\n".join(plan.summary()))
    if not sys.stdin.isatty():
        return True
    return input("Proceed? [y/N] ").strip().lower() in ("y", "yes")


def cmd_convert(args: argparse.Namespace) -> int:
    ini = args.update_train_ini or args.faceswap or os.environ.get(FACESWAP_ENV) or None
    plan = convert.plan(args.dir, args.to, args.pin or (), out_dir=args.out,
                        backup=not args.no_backup, train_ini=ini,
                        update_train_ini=bool(args.update_train_ini))
    if plan.nothing_to_do:
        print("\n".join(plan.summary()))
        return 0
    if args.json:
        result = _run_task(lambda task: convert.run(plan, task))
    else:
        if not args.yes and not _confirm(plan):
            print("Cancelled; nothing was changed.")
            return 0
        result = _run_task(lambda task: convert.run(plan, task))
    if args.json:
        _print_json({"model_file": str(result.model_file),
                     "state_file": str(result.state_file) if result.state_file else None,
                     "backups": [str(p) for p in result.backups], "changed": result.changed,
                     "precision": args.to, "pinned": plan.pinned, "messages": result.messages})
    else:
        print("\n".join(result.messages))
    return 0


def cmd_nan_scan(args: argparse.Namespace) -> int:
    report = _run_task(lambda task: nanscan.scan_weights(args.dir, task))
    if args.json:
        _print_json(report.to_json())
    elif report.clean:
        print(f"{report.model_file.name}: all {sum(f.size for f in report.layers):,} weights "
              "are finite.")
    else:
        rows = [(f.layer, f"{f.nan:,}", f"{f.inf:,}", f"{f.size:,}") for f in report.bad_layers]
        print(f"{report.model_file.name}: non-finite weights found.\n")
        print(_table(rows, ("Layer", "NaN", "Inf", "Values")))
    return 0 if report.clean else 1


def cmd_restore(args: argparse.Namespace) -> int:
    result = _run_task(lambda task: restore.restore(args.dir, task))
    print(f"Restored {', '.join(p.name for p in result.restored)}; the previous files are in "
          f"{result.archive_dir}.")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import Options, run_validation, text_report

    options = Options(args.policy, args.batch, args.steps, args.images, args.tolerance,
                      autopin=not args.no_autopin, pins=args.pin)
    result = _run_task(lambda task: run_validation(args.dir, options, args.device,
                                                   on_progress=task.progress))
    if args.json:
        _print_json(result)
    else:
        print(text_report(result))
    return 0 if result["verdict"]["status"] == "safe" else 1


def cmd_scan(args: argparse.Namespace) -> int:
    entries = _run_task(lambda task: scan.scan(args.root, task))
    if args.json:
        _print_json([entry.to_json() for entry in entries])
        return 0
    if not entries:
        print(f"No Faceswap models under {args.root}.")
        return 0
    rows = [(str(e.path), e.plugin or "?", {"keras3": "FS3", "keras2": "FS2"}.get(e.format, "?"),
             e.precision or "?", str(e.iterations), scan.human_size(e.size),
             "yes" if e.has_backup else "no", e.problem or "") for e in entries]
    print(_table(rows, ("Folder", "Plugin", "Format", "Precision", "Iterations", "Size",
                        "Backup", "Note")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``fsprec`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="fsprec", description="Inspect and switch the precision of Faceswap models.")
    parser.add_argument("--version", action="version", version=f"fsprec {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="on failure, also print the library's own text and traceback")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="show every layer, its dtype policy and eligibility")
    p.add_argument("dir", help="the model folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("convert", help="switch the model between float32 and mixed precision")
    p.add_argument("dir", help="the model folder")
    p.add_argument("--to", required=True, choices=POLICIES, help="the target precision")
    p.add_argument("--pin", action="append", metavar="NAME",
                   help="keep this layer in float32 (repeatable)")
    p.add_argument("--out", metavar="DIR", help="write a converted copy to DIR instead")
    p.add_argument("--no-backup", action="store_true", help="do not write .bk backups")
    p.add_argument("--update-train-ini", metavar="PATH",
                   help="set mixed_precision in Faceswap's train.ini (file or Faceswap folder)")
    p.add_argument("--faceswap", metavar="DIR",
                   help=f"Faceswap folder, to check its train.ini (default: ${FACESWAP_ENV})")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("validate", help="compare float32 and mixed precision on this machine "
                       "(exit 1 unless safe)")
    p.add_argument("dir", help="the model folder")
    p.add_argument("--policy", default="mixed_float16", choices=MIXED_POLICIES)
    p.add_argument("--batch", type=int, default=4, help="images per batch (default 4)")
    p.add_argument("--steps", type=int, default=20, help="training-check steps (default 20)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument("--images", metavar="DIR", help="a folder of face images (default: "
                   "synthetic faces)")
    p.add_argument("--tolerance", type=float, help="relative L2 error allowed (default 1%% "
                   "for float16, 5%% for bfloat16)")
    p.add_argument("--pin", action="append", metavar="NAME",
                   help="keep this layer float32 (default: the model's own pins)")
    p.add_argument("--no-autopin", action="store_true", help="do not search for pins")
    p.add_argument("--json", action="store_true", help="print the result document")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("nan-scan", help="look for NaN/Inf weights (exit 1 if any)")
    p.add_argument("dir", help="the model folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_nan_scan)

    p = sub.add_parser("restore", help="restore the model from its .bk backups")
    p.add_argument("dir", help="the model folder")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("scan", help="list the Faceswap model folders under ROOT")
    p.add_argument("root", help="the folder to search")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_scan)
    for command in sub.choices.values():
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="on failure, also print the library's own text")
    return parser


def _report_failure(err: BaseException, verbose: bool) -> int:
    """The one place that turns an error into a sentence on stderr and an exit code."""
    code = failures.exit_code(err)
    if verbose:
        print(failures.details(err), file=sys.stderr, end="")
    text = failures.sentence(err)
    print(text if code == 130 else f"fsprec: {text}", file=sys.stderr)
    return code


def _quiet_closed_pipe() -> None:
    """The reader of our output went away (``fsprec inspect DIR | head``): stop quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _quiet_closed_pipe()
        return 0
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - one sentence, never a traceback
        return _report_failure(err, args.verbose)


if __name__ == "__main__":
    sys.exit(main())

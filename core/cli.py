"""``fsprec``: the command line, thin over the core functions.

Exit codes: 0 success; 1 a check found a problem; 2 bad input or usage (one clear sentence on
stderr, nothing changed on disk); 130 cancelled with Ctrl-C (nothing changed).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from . import __version__, convert, nanscan, restore, scan
from .errors import Cancelled, CheckFailed, FsprecError
from .layers import MIXED_POLICIES, POLICIES
from .modelfile import open_model
from .task import Task
from .traincfg import FACESWAP_ENV



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
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def cmd_inspect(args: argparse.Namespace) -> int:
    model = open_model(args.dir)
    if args.json:
        _print_json(model.to_json())
        return 0
    leaves = model.leaves()
    print(f"{model.model_file}  ({'Faceswap 3' if model.format == 'keras3' else 'Faceswap 2'}, "
          f"Keras {model.keras_version or '?'})")
    print(f"Precision: {model.precision}   Iterations: {model.iterations}   "
          f"Parameters: {model.weights.total_params:,}")
    print(f"Eligible for mixed precision: {len(model.eligible)} of {len(leaves)} layers "
          f"(from {model.eligible_source})")
    if model.partial:
        layers = model.partial.layers
        listed = (f": {', '.join(layers[:8])}{', ...' if len(layers) > 8 else ''}"
                  if layers else "")
        print(f"Partial: {model.partial.reason}{listed}. `fsprec convert --to "
              f"{model.consistent_precision}` makes it consistent.")
    if model.pinned:
        print(f"Pinned to float32: {', '.join(model.pinned)}")
    if model.state_problem:
        print(f"Warning: {model.state_problem}")
    print()
    rows = [(layer.path, layer.class_name, layer.dtype_policy or "-",
             "yes" if layer.eligible else "no", f"{layer.params:,}", layer.reason)
            for top in model.layer_tree() for layer in top.walk()]
    print(_table(rows, ("Layer", "Class", "dtype policy", "Eligible", "Params", "Why")))
    return 0


def _confirm(plan: convert.Plan) -> bool:
    print("\n".join(plan.summary()))
    if not sys.stdin.isatty():
        return True
    return input("Proceed? [y/N] ").strip().lower() in ("y", "yes")


def cmd_convert(args: argparse.Namespace) -> int:
    plan = convert.plan(args.dir, args.to, args.pin or (), out_dir=args.out,
                        backup=not args.no_backup, train_ini=args.update_train_ini or None,
                        update_train_ini=bool(args.update_train_ini), faceswap=args.faceswap)
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
                     "precision": args.to, "pinned": plan.pinned, "messages": result.messages,
                     "faceswap": _next_start_json(plan)})
    else:
        print("\n".join(result.messages))
        if not plan.update_train_ini and plan.next_start is not None:
            start = plan.next_start
            hint = f" (--update-train-ini {start.train_ini})" if start.can_update else ""
            print(f"{start.line}{hint}")
    return 0


def _next_start_json(plan: convert.Plan) -> dict[str, Any] | None:
    """What Faceswap will do at its next start, for ``convert --json``."""
    if plan.update_train_ini or plan.next_start is None:
        return None
    start = plan.next_start
    return {"verdict": start.verdict, "line": start.line,
            "faceswap": str(start.faceswap) if start.faceswap else None,
            "train_ini": str(start.train_ini) if start.train_ini else None}


def cmd_nan_scan(args: argparse.Namespace) -> int:
    report = _run_task(lambda task: nanscan.scan_weights(args.dir, task))
    if args.json:
        _print_json(report.to_json())
    elif report.clean:
        print(f"{report.model_file.name}: all {sum(l.size for l in report.layers):,} weights "
              "are finite.")
    else:
        rows = [(l.layer, f"{l.nan:,}", f"{l.inf:,}", f"{l.size:,}") for l in report.bad_layers]
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
                   help=f"Faceswap folder, to check its train.ini (default: ${FACESWAP_ENV}, "
                        "then a Faceswap folder above the model, then ~/faceswap)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Cancelled as err:
        print(err, file=sys.stderr)
        return 130
    except CheckFailed as err:
        print(f"fsprec: {err}", file=sys.stderr)
        return 1
    except FsprecError as err:
        print(f"fsprec: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Cancelled; nothing was changed.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

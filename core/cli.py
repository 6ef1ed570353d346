"""``fsprec``: the command line, thin over the core functions.

Exit codes: 0 success; 1 a check found a problem; 2 bad input or usage (one clear sentence on
stderr, nothing changed on disk); 130 cancelled with Ctrl-C (nothing changed).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from . import __version__, atomic, convert, lock, procs
from .layers import POLICIES
from .modelfile import open_model
from .task import Task
from .traincfg import FACESWAP_ENV
from .validate import cli as validate_cli



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
    plan = convert.plan(args.dir, args.to, args.pin or (), out_dir=args.out,
                        backup=not args.no_backup, train_ini=args.update_train_ini or None,
                        update_train_ini=bool(args.update_train_ini), faceswap=args.faceswap,
                        wait=not (args.yes or args.json))  # else run() waits for the weights
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
            if start.verdict == "not_found":
                hint = f" Give its folder with --faceswap or ${FACESWAP_ENV}."
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
    from . import nanscan  # numpy: loaded for this command only

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
    from . import restore

    result = _run_task(lambda task: restore.restore(args.dir, task))
    print(f"Restored {', '.join(p.name for p in result.restored)}; the previous files are in "
          f"{result.archive_dir}.")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from . import scan

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


# --- health and rollback (docs/health.md) ---------------------------------------------------

def cmd_health(args: argparse.Namespace) -> int:
    from . import health
    from .scan import human_size

    report = _run_task(lambda task: health.check(args.dir, task, all_versions=args.all))
    if args.json:
        _print_json(report.to_json())
        return 1 if report.live.verdict == health.DAMAGED else 0
    live = report.live
    print(f"{live.model_file}  ({live.precision}, {live.iterations:,} iterations)\n")
    rows = [(v.id, v.label, f"{v.iterations:,}", v.saved.replace("T", " ")[:16],
             v.precision or "?", human_size(v.size), v.verdict.replace("_", " "))
            for v in report.versions]
    print(_table(rows, ("Version", "What", "Iterations", "Saved", "Precision", "Size",
                        "Verdict")))
    print(f"\nLive model: {live.summary}")
    for version in report.versions[1:]:
        if version.verdict in (health.DAMAGED, health.AT_RISK, health.UNREADABLE):
            print(f"{version.label}: {version.summary}")
    clean = report.newest_clean
    if clean is None:
        print("No healthy version found" + ("." if report.complete else
                                              " (run with --all to check every version)."))
    elif clean is not live:
        print(f"Newest healthy version: {clean.label} "
              f"(fsprec rollback {args.dir} --to {clean.id})")
    for number, advice in enumerate(report.advice, 1):
        print(f"  {number}. {advice.text}")
    if report.loss is not None:
        for session in report.loss.sessions:
            last = ", ".join(f"{tag} {values.values[-1]:.4g}"
                             for tag, values in sorted(session.series.items()) if values.values)
            print(f"Session {session.number}: iterations {session.first:,}-{session.last:,}; "
                  f"last loss {last}")
        if report.loss.nan_steps():
            print("The loss was NaN at iteration(s) "
                  + ", ".join(f"{s:,}" for s in report.loss.nan_steps()[:10]) + ".")
    return 1 if live.verdict == health.DAMAGED else 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from . import rollback

    plan = _run_task(lambda task: rollback.plan(args.dir, args.to, task=task))
    print("\n".join(plan.summary()))
    if not args.yes and sys.stdin.isatty() and \
            input("Proceed? [y/N] ").strip().lower() not in ("y", "yes"):
        print("Cancelled; nothing was changed.")
        return 0
    result = _run_task(lambda task: rollback.run(plan, task))
    print(result.message())
    return 0


def _add_health_commands(sub: Any) -> None:
    p = sub.add_parser("health", help="check every saved version of the model (exit 1 if the "
                       "live model is damaged)")
    p.add_argument("dir", help="the model folder")
    p.add_argument("--all", action="store_true",
                   help="check every version (default: stop at the newest healthy one)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("rollback", help="make an older, healthy version the live model "
                       "(the current files are archived)")
    p.add_argument("dir", help="the model folder")
    p.add_argument("--to", required=True, metavar="VERSION",
                   help="the version id that `fsprec health` lists (backup, snapshot-N, "
                   "archive-YYYYmmdd_HHMMSS)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_rollback)


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
                   help=f"Faceswap folder, to check its train.ini (default: ${FACESWAP_ENV}, "
                        "then a Faceswap folder above the model, then ~/faceswap)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_convert)

    validate_cli.add_parser(sub)

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
    _add_health_commands(sub)
    for command in sub.choices.values():
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="on failure, also print the library's own text")
    return parser


def _report_failure(err: BaseException, verbose: bool) -> int:
    """The one place that turns an error into a sentence on stderr and an exit code."""
    from . import failures

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
    except (Exception, KeyboardInterrupt) as err:  # one sentence, never a traceback
        return _report_failure(err, args.verbose)


def run() -> NoReturn:
    """The ``fsprec`` command: :func:`main` in a process of its own.

    Everything imported so far lives until the process ends, so it is moved out of the
    garbage collector's way first (``gc.freeze``): the collector's passes while the command
    runs and at interpreter exit then skip it (35 ms of a conversion's exit).
    """
    gc.freeze()
    sys.exit(main())


if __name__ == "__main__":
    run()

"""Run a validation pass in a child Python process and follow it (no Keras in the parent).

The child (``python -m fsprec.core.validate.child --jsonl ...``) writes one JSON object per line:
``{"event": "progress", "stage", "done", "total", "eta_s"}``, ``{"event": "stage", "stage",
"result"}`` with the partial result as soon as a stage is measured, then ``{"event": "result",
"result"}`` or ``{"event": "error", "kind": "input"|"internal", "message"}``. The child may run
in another Python (Faceswap's own environment): it needs only fsprec's pure-Python package,
which :func:`child_path` puts on its path. A crash or an out-of-memory
kill in the child never takes the caller down, cancel ends the child, and its GPU memory is
freed with it.
"""
from __future__ import annotations

import getpass
import hashlib
import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import Cancelled, FsprecError
from ..modelfile import open_model
from .options import BACKEND_CHOICES, DEVICES, IMAGE_SUFFIXES, Options, resolve_backend
from .result import ValidationResult

Progress = Callable[[str, int, int], None]
OnStage = Callable[[str, ValidationResult], None]
OnEta = Callable[[float | None], None]


class ValidationCrashed(FsprecError):
    """The child process died without a result."""


def command(folder: str | Path, options: Options, python: str = sys.executable,
            backend: str = "auto") -> list[str]:
    """The child's command line."""
    argv = [python, "-m", "fsprec.core.validate.child", "--jsonl", str(folder), "--policy",
            options.policy, "--backend", backend]
    if options.batch is not None:
        argv += ["--batch", str(options.batch)]
    if options.steps is not None:
        argv += ["--steps", str(options.steps)]
    if options.images:
        argv += ["--images", str(options.images)]
    if options.tolerance is not None:
        argv += ["--tolerance", str(options.tolerance)]
    if not options.autopin:
        argv.append("--no-autopin")
    if not options.speed:
        argv.append("--no-speed")
    for pin in options.pins or ():
        argv += ["--pin", pin]
    return argv


def check_inputs(folder: str | Path, options: Options, device: str) -> None:
    """Refuse bad input before a process is started (a clear FsprecError): damaged weights
    (unreadable HDF5, a CRC mismatch) are refused here, in fsprec's own words, before the
    child spends seconds starting Keras on them."""
    open_model(folder).check_readable()
    if device not in DEVICES:
        raise FsprecError(f"Unknown device {device!r}; choose auto, cpu or gpu.")
    if (options.batch is not None and options.batch < 1) or \
            (options.steps is not None and options.steps < 0):
        raise FsprecError("The batch size must be at least 1 and the steps at least 0.")
    if options.images:
        images = Path(options.images).expanduser()
        if not images.is_dir():
            raise FsprecError(f"The image folder {images} does not exist.")
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in images.iterdir()):
            raise FsprecError(f"No PNG or JPG images in {images}.")


CHILD_NEEDS = ("numpy", "h5py", "PIL", "keras")  # besides a backend, which the child checks
_MISSING = ("import importlib.util as u, sys; "
            "print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None))")


def check_python(python: str) -> None:
    """Refuse a Python that is not an executable or lacks what the child imports."""
    path = Path(python).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FsprecError(f"{python} is not a Python executable; give the path of the python "
                          "in Faceswap's environment (e.g. ~/miniconda3/envs/faceswap/bin/python).")
    try:
        found = subprocess.run([str(path), "-c", _MISSING, *CHILD_NEEDS], capture_output=True,
                               text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as err:
        raise FsprecError(f"{python} does not run as a Python: {err}") from err
    missing = found.stdout.split()
    if missing:
        names = ", ".join("Pillow" if m == "PIL" else m for m in missing)
        raise FsprecError(f"{python} lacks {names}, which validation needs; choose the Python "
                          "of Faceswap's environment, or install them there.")


def child_path() -> str:
    """A folder holding only fsprec's ``core`` package, for another Python's path: that Python
    then imports fsprec without anything else from this environment.

    The standalone app carries that folder (``fsprec-python``); otherwise it is a link to this
    fsprec's package in the temp folder, or a copy where links cannot be made (Windows without
    the privilege).
    """
    bundled = Path(getattr(sys, "_MEIPASS", "")) / "fsprec-python"
    if getattr(sys, "frozen", False) and (bundled / "fsprec" / "core").is_dir():
        return str(bundled)
    spec = importlib.util.find_spec("fsprec.core")
    assert spec is not None and spec.submodule_search_locations
    core = Path(list(spec.submodule_search_locations)[0])
    digest = hashlib.sha1(f"{core}|{getpass.getuser()}".encode()).hexdigest()[:12]
    shim = Path(tempfile.gettempdir()) / f"fsprec-child-{digest}"
    link = shim / "fsprec" / "core"
    if link.is_symlink() and link.exists():
        return str(shim)
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f"core.{os.getpid()}")
    try:
        temporary.symlink_to(core, target_is_directory=True)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.copytree(core, temporary, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.rmtree(link, ignore_errors=True)  # a copy is refreshed on every use
    os.replace(temporary, link)
    return str(shim)


def child_env(device: str, base: dict[str, str] | None = None,
              foreign: bool = False) -> dict[str, str]:
    """The child's environment: ``cpu`` hides every GPU; ``gpu`` insists on one; a
    ``foreign`` Python (not this one) gets fsprec's package on its path."""
    env = dict(os.environ if base is None else base)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if foreign:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (child_path(), env.get("PYTHONPATH"))
                                            if p)
    env["PYTHONUNBUFFERED"] = "1"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env["FSPREC_REQUIRE_GPU"] = "1" if device == "gpu" else ""
    return env


def run_validation(folder: str | Path, options: Options, device: str = "auto",
                   on_progress: Progress = lambda s, d, t: None,
                   cancel: threading.Event | None = None,
                   env: dict[str, str] | None = None, *,
                   on_stage: OnStage = lambda stage, partial: None,
                   on_eta: OnEta = lambda seconds: None,
                   backend: str | None = None,
                   python: str | None = None) -> ValidationResult:
    """Validate in a child process; returns the result.

    ``on_stage(stage, partial)`` gets the partial result as soon as each of
    :data:`~.result.STAGES` is measured; ``on_eta(seconds)`` the estimated time left (None:
    unknown yet). ``backend``: ``auto`` (torch, else TensorFlow, else JAX), a backend name, or
    None for ``$KERAS_BACKEND`` (else ``auto``). ``python``: the interpreter that runs the
    child (default: this one), e.g. Faceswap's own environment's.

    Raises :class:`FsprecError` for bad input, :class:`ValidationCrashed` when the child dies,
    and :class:`Cancelled` (after ending the child) when ``cancel`` is set.
    """
    check_inputs(folder, options, device)
    base = dict(os.environ if env is None else env)
    choice = backend or base.get("KERAS_BACKEND") or "auto"
    if choice not in BACKEND_CHOICES:
        raise FsprecError(f"Unknown backend {choice!r}; choose auto, torch, tensorflow or jax.")
    # Not resolved: a virtual environment's python links to its base interpreter.
    foreign = python is not None and Path(python).expanduser().absolute() != \
        Path(sys.executable).absolute()
    if foreign:
        check_python(python)
    else:
        choice = resolve_backend(choice)  # a missing backend is a clear message, here
    cancel = cancel or threading.Event()
    handlers = _Handlers(on_progress, on_stage, on_eta)
    with tempfile.TemporaryFile("w+") as stderr:
        argv = command(folder, options, str(Path(python).expanduser()) if foreign
                       else sys.executable, choice)
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   env=child_env(device, base, foreign))
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            result = _follow(process, lines, handlers, cancel)
        finally:
            _end(process)
            reader.join(timeout=1)
        if result is not None:
            return result
        stderr.seek(0)
        tail = "\n".join(stderr.read().strip().splitlines()[-8:])
    raise ValidationCrashed(_crash_message(process.returncode, tail))


def _pump(stream: Any, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


class _Handlers:
    """The caller's callbacks, fed from the child's events."""

    def __init__(self, progress: Progress, stage: OnStage, eta: OnEta) -> None:
        self.progress, self.stage, self.eta = progress, stage, eta

    def handle(self, event: dict[str, Any]) -> ValidationResult | None:
        """Pass one event on; the result when it is the final one."""
        kind = event.get("event")
        if kind == "progress":
            self.progress(event["stage"], event["done"], event["total"])
            self.eta(event.get("eta_s"))
        elif kind == "stage":
            self.stage(event["stage"], ValidationResult.from_json(event["result"]))
        elif kind == "result":
            return ValidationResult.from_json(event["result"])
        elif kind == "error":
            if event.get("kind") == "input":
                raise FsprecError(event["message"])
            raise ValidationCrashed(f"Validation failed: {event['message']}")
        return None


def _follow(process: subprocess.Popen, lines: queue.Queue, handlers: _Handlers,
            cancel: threading.Event) -> ValidationResult | None:
    while True:
        if cancel.is_set():
            raise Cancelled("Validation cancelled.")
        try:
            line = lines.get(timeout=0.05)
        except queue.Empty:
            continue
        if line is None:
            process.wait()
            return None
        try:
            event = json.loads(line)
        except ValueError:
            continue
        result = handlers.handle(event)
        if result is not None:
            return result


def _end(process: subprocess.Popen) -> None:
    """Make sure the child is gone (within about a second)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _crash_message(code: int | None, tail: str) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
        why = f"was killed ({name})"
        if code == -signal.SIGKILL:
            why += ", most likely because the machine ran out of memory; try a smaller batch size"
    else:
        why = f"stopped with exit code {code} without a result"
    return f"The validation process {why}." + (f"\n{tail}" if tail else "")

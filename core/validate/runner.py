"""Run a validation pass in a child Python process and follow it (no Keras in the parent).

The child (``python -m fsprec.core.validate.child --jsonl ...``) writes one JSON object per line:
``{"event": "progress", "stage", "done", "total"}``, then ``{"event": "result", "result"}``
or ``{"event": "error", "kind": "input"|"internal", "message"}``. A crash or an out-of-memory
kill in the child never takes the caller down, cancel ends the child, and its GPU memory is
freed with it.
"""
from __future__ import annotations

import json
import os
import queue
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
from .options import DEVICES, IMAGE_SUFFIXES, Options

Progress = Callable[[str, int, int], None]


class ValidationCrashed(FsprecError):
    """The child process died without a result."""


def command(folder: str | Path, options: Options, python: str = sys.executable) -> list[str]:
    """The child's command line."""
    argv = [python, "-m", "fsprec.core.validate.child", "--jsonl", str(folder), "--policy",
            options.policy, "--batch", str(options.batch), "--steps", str(options.steps)]
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
    """Refuse bad input before a process is started (a clear FsprecError)."""
    open_model(folder)
    if device not in DEVICES:
        raise FsprecError(f"Unknown device {device!r}; choose auto, cpu or gpu.")
    if options.batch < 1 or options.steps < 0:
        raise FsprecError("The batch size must be at least 1 and the steps at least 0.")
    if options.images:
        images = Path(options.images).expanduser()
        if not images.is_dir():
            raise FsprecError(f"The image folder {images} does not exist.")
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in images.iterdir()):
            raise FsprecError(f"No PNG or JPG images in {images}.")


def child_env(device: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ``cpu`` hides every GPU; ``gpu`` insists on one."""
    env = dict(os.environ if base is None else base)
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env["FSPREC_REQUIRE_GPU"] = "1" if device == "gpu" else ""
    return env


def run_validation(folder: str | Path, options: Options, device: str = "auto",
                   on_progress: Progress = lambda s, d, t: None,
                   cancel: threading.Event | None = None,
                   env: dict[str, str] | None = None) -> dict[str, Any]:
    """Validate in a child process; returns the result document.

    Raises :class:`FsprecError` for bad input, :class:`ValidationCrashed` when the child dies,
    and :class:`Cancelled` (after ending the child) when ``cancel`` is set.
    """
    check_inputs(folder, options, device)
    cancel = cancel or threading.Event()
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command(folder, options), stdout=subprocess.PIPE,
                                   stderr=stderr, text=True, env=child_env(device, env))
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            result = _follow(process, lines, on_progress, cancel)
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


def _follow(process: subprocess.Popen, lines: queue.Queue, on_progress: Progress,
            cancel: threading.Event) -> dict[str, Any] | None:
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
        if event.get("event") == "progress":
            on_progress(event["stage"], event["done"], event["total"])
        elif event.get("event") == "result":
            return event["result"]
        elif event.get("event") == "error":
            if event.get("kind") == "input":
                raise FsprecError(event["message"])
            raise ValidationCrashed(f"Validation failed: {event['message']}")


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

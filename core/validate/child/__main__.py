"""The validation child process: ``python -m fsprec.core.validate.child --jsonl FOLDER ...``."""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from ...errors import FsprecError
from ..options import BACKEND_CHOICES, Options, resolve_backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsprec.core.validate.child")
    parser.add_argument("folder")
    parser.add_argument("--jsonl", action="store_true", required=True)
    parser.add_argument("--policy", default="mixed_float16")
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--images")
    parser.add_argument("--tolerance", type=float)
    parser.add_argument("--no-autopin", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--pin", action="append")
    args = parser.parse_args(argv)
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the protocol

    def send(event: dict) -> None:
        protocol.write(json.dumps(event) + "\n")
        protocol.flush()

    options = Options(args.policy, args.batch, args.steps, args.images, args.tolerance,
                      not args.no_autopin, not args.no_speed, args.pin)
    try:
        os.environ["KERAS_BACKEND"] = resolve_backend(args.backend)  # before Keras loads
        from importlib.util import find_spec
        if find_spec("keras") is None:
            raise FsprecError(f"Keras is not installed in {sys.executable}; install it with "
                              "`pip install keras`.")
        from . import measure
        from .engine import run

        if os.environ.get("FSPREC_REQUIRE_GPU") and measure.device_info()["kind"] != "gpu":
            raise FsprecError("No GPU is available to Keras on this machine; use --device "
                              "auto or cpu.")
        result = run(args.folder, options,
                     lambda s, d, t, eta: send({"event": "progress", "stage": s, "done": d,
                                                "total": t, "eta_s": eta}),
                     lambda stage, partial: send({"event": "stage", "stage": stage,
                                                  "result": partial.to_json()}))
        send({"event": "result", "result": result.to_json()})
        return 0
    except FsprecError as err:
        send({"event": "error", "kind": "input", "message": str(err)})
        return 2
    except Exception as err:  # reported to the parent, which shows it
        traceback.print_exc()
        send({"event": "error", "kind": "internal", "message": f"{type(err).__name__}: {err}"})
        return 3


if __name__ == "__main__":
    sys.exit(main())

"""The standalone app's entry point: the fsprec window, or ``-m fsprec.MODULE ARGS`` run as
Python would run it.

A frozen app's ``sys.executable`` is this launcher, so the validation runner's child command
(``sys.executable -m fsprec.core.validate.child ...``) comes here: it runs that module instead
of opening a second window. The bundle holds no Keras, so the child then reports which Python
package is missing. ``multiprocessing.freeze_support()`` comes first: on Windows and macOS
the HDF5 guard (``fsprec.core.h5guard``) spawns its child through this same executable.
"""
from __future__ import annotations

import multiprocessing
import runpy
import sys


def main() -> int:
    """Run the window, or the fsprec module named after ``-m``."""
    multiprocessing.freeze_support()  # a spawned child runs its task here and exits
    if len(sys.argv) > 2 and sys.argv[1] == "-m" and sys.argv[2].startswith("fsprec."):
        module = sys.argv[2]
        sys.argv = [module, *sys.argv[3:]]
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as done:
            return done.code if isinstance(done.code, int) else int(done.code is not None)
        return 0
    from fsprec.gui.app import main as gui_main

    return gui_main()


if __name__ == "__main__":
    sys.exit(main())

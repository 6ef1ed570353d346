"""Any failure as one sentence for the user, its library text kept apart as details.

The CLI prints :func:`sentence` (and :func:`details` with ``--verbose``); the GUI shows the
sentence in its dialog and the details behind "Show details". Nothing here ever prints a
config or a traceback on its own.
"""
from __future__ import annotations

import re
import traceback

from .errors import Cancelled, CheckFailed, FsprecError

MAX_SENTENCE = 300
_BLOB = re.compile(r"[{\[][^{}\[\]]{0,40}[{\[].*|[{\[][^}\]]{80,}.*")


def _one_line(text: str) -> str:
    """Whitespace folded, a config or other long ``{...}``/``[...]`` blob cut, length capped."""
    line = " ".join(str(text).split())
    line = _BLOB.sub(lambda m: "{…}" if m.group(0)[0] == "{" else "[…]", line)
    return line if len(line) <= MAX_SENTENCE else line[:MAX_SENTENCE - 1].rstrip() + "…"


def sentence(err: BaseException) -> str:
    """One line, in fsprec's words, that says what went wrong."""
    if isinstance(err, FsprecError):
        return _one_line(str(err))
    if isinstance(err, KeyboardInterrupt):
        return "Cancelled; nothing was changed."
    if isinstance(err, MemoryError):
        return "Not enough memory to finish; nothing was changed."
    if isinstance(err, RecursionError):
        return "The model's files are nested too deeply to be a Faceswap model."
    if isinstance(err, OSError):
        where = f" {err.filename}" if err.filename else ""
        return _one_line(f"Cannot access{where} ({err.strerror or type(err).__name__}).")
    return (f"Unexpected error ({type(err).__name__}); nothing was changed. Run with "
            "--verbose for details and please report it.")


def details(err: BaseException) -> str:
    """The library text and traceback behind a failure (for ``--verbose`` and the GUI's
    details); empty for a refusal of fsprec's own with nothing behind it."""
    if isinstance(err, FsprecError) and err.__cause__ is None:
        return ""
    return "".join(traceback.format_exception(err))


def exit_code(err: BaseException) -> int:
    """0 success, 1 a check found a problem, 2 anything refused or failed, 130 cancelled."""
    if isinstance(err, (Cancelled, KeyboardInterrupt)):
        return 130
    if isinstance(err, CheckFailed):
        return 1
    return 2

"""How a job ended, as a value the window can match on (never a bare message string).

Exactly one of :class:`Done`, :class:`Refused`, :class:`Failed` or :class:`Cancelled` ends a
job. A refusal is core saying no in one sentence (an :class:`~fsprec.core.errors.FsprecError`):
the user is shown that sentence. A failure is an exception core did not expect (a bug, an OS
error): the user is shown it with its traceback as details, and it is not printed anywhere.
"""
from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fsprec.core import errors
from fsprec.core.task import Task


@dataclass(frozen=True)
class Done:
    """The job returned ``value`` (even if a cancel came too late to stop it)."""

    value: Any


@dataclass(frozen=True)
class Refused:
    """Core refused: ``message`` is its one sentence; ``error`` the exception itself."""

    message: str
    error: errors.FsprecError | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Failed:
    """An unexpected exception: a sentence naming the job, and the traceback as details."""

    message: str
    details: str
    error: BaseException | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Cancelled:
    """The user cancelled and the job stopped; ``message`` is core's sentence."""

    message: str


Outcome = Done | Refused | Failed | Cancelled
JobFunction = Callable[[Task], Any]


def run_to_outcome(title: str, fn: JobFunction, task: Task) -> Outcome:
    """Run ``fn(task)`` and say how it ended; never raises for the job's own errors."""
    try:
        return Done(fn(task))
    except errors.Cancelled as err:
        return Cancelled(str(err))
    except errors.FsprecError as err:
        return Refused(str(err), err)
    except Exception as err:  # a bug or an OS error core did not expect: report, keep running
        return Failed(f"{title} failed unexpectedly: {err}", traceback.format_exc(), err)

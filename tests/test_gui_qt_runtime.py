"""The installed Qt binding itself: a long-running window emits signals by the thousand."""
from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    changed = Signal(int)


def test_signal_emit_keeps_reference_counts():
    # PySide6 6.12.0 returned a borrowed True from emit(): True's count fell by one per emit
    # and the process aborted ("bool_dealloc") after a few thousand signals.
    emitter = _Emitter()
    emitter.changed.connect(lambda value: None)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for value in range(500):
        emitter.changed.emit(value)
    assert (sys.getrefcount(True), sys.getrefcount(False)) == before

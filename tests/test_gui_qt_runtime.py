"""The installed Qt binding itself: a long-running window emits signals by the thousand."""
from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    changed = Signal(int)


def test_signal_emit_keeps_reference_counts():
    # PySide6 6.12.0 returned a borrowed True from emit(): True's count fell by one per emit
    # and the process aborted ("bool_dealloc") after a few thousand signals.
    # Other threads of the test process (pytest-xdist's, a helper's reaper) may take or drop a
    # reference to True or False meanwhile: a few, where the bug lost one per emit.
    emits = 500
    emitter = _Emitter()
    emitter.changed.connect(lambda value: None)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for value in range(emits):
        emitter.changed.emit(value)
    drift = [sys.getrefcount(value) - count for value, count in zip((True, False), before,
                                                                     strict=True)]
    assert all(abs(change) < emits // 10 for change in drift), drift

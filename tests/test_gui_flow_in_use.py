"""InUseFlow (gui/flows/in_use.py): a model Faceswap trains, or another fsprec writes, is shown
as such, and the actions that would rewrite it are disabled while Faceswap trains it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import needs_fixtures
from fsprec.core import lock
from fsprec.gui.flows.base import TRAINING_TIP
from gui_support import TIMEOUT_MS, wait_shown


@pytest.fixture
def fake_training(tmp_path):
    """Start a process whose command line is ``faceswap.py train -m FOLDER``."""
    script = tmp_path / "fs" / "faceswap.py"
    script.parent.mkdir()
    script.write_text("import time\ntime.sleep(120)\n")
    started: list[subprocess.Popen] = []

    def start(folder):
        started.append(subprocess.Popen([sys.executable, str(script), "train", "-m",
                                         str(folder)]))
        return started[-1]
    yield start
    for proc in started:
        proc.kill()
        proc.wait()


@needs_fixtures
def test_faceswap_training_disables_switch_restore_and_roll_back(window, qtbot, copy_fixture,
                                                                 fake_training):
    folder = copy_fixture("fs3/original-fp32-backup")
    training = fake_training(folder)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    panel = window.panel
    qtbot.waitUntil(lambda: not panel.switch_button.isEnabled(), timeout=TIMEOUT_MS)
    assert panel.switch_button.toolTip() == TRAINING_TIP
    assert panel.in_use.text() == "Faceswap is training this model" and panel.in_use.isVisible()
    assert not window.switching.action.isEnabled()
    assert not window.recovery.restore_action.isEnabled()
    assert window.recovery.restore_action.toolTip() == TRAINING_TIP
    view = window.health.view()
    assert not view.rollback.isEnabled() and view.rollback.toolTip() == TRAINING_TIP
    # Training stops: the next check gives the actions back.
    training.kill()
    training.wait()
    window.in_use.check()
    qtbot.waitUntil(panel.switch_button.isEnabled, timeout=TIMEOUT_MS)
    assert panel.in_use.isHidden() and window.recovery.restore_action.isEnabled()
    assert view.rollback.toolTip() != TRAINING_TIP


@needs_fixtures
def test_another_fsprec_writing_is_named_with_its_pid(window, qtbot, copy_fixture):
    import os

    folder = copy_fixture("fs3/original-fp32")
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    assert window.panel.in_use.isHidden()
    with lock.writing(folder):
        window.in_use.check()
        qtbot.waitUntil(lambda: window.panel.in_use.isVisible(), timeout=TIMEOUT_MS)
        assert window.panel.in_use.text() == (
            f"Another fsprec is changing this model (pid {os.getpid()})")
    window.in_use.check()
    qtbot.waitUntil(window.panel.in_use.isHidden, timeout=TIMEOUT_MS)

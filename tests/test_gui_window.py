"""The window shell, offscreen: start without Keras, drops, settings, closing, how job
outcomes reach the user, the command line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from conftest import needs_fixtures, snapshot
from fsprec.core import nanscan
from fsprec.core.errors import FsprecError
from fsprec.gui.dialogs import SettingsDialog, about_text
from gui_support import TIMEOUT_MS, accept_dialogs, hold_in, wait_shown


WINDOW_WITHOUT_KERAS = r"""
import json, sys
from pathlib import Path
from PySide6.QtCore import QSettings, QTimer
from fsprec.gui.app import create_app
from fsprec.gui.dialogs import about_text
from fsprec.gui.main_window import MainWindow
from fsprec.gui.prefs import AppSettings
app = create_app([])
settings = AppSettings(QSettings(sys.argv[1] + "/s.ini", QSettings.Format.IniFormat))
window = MainWindow(settings, Path(sys.argv[1]))
window.show()
built = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow", "torch", "jax"))
window.paramsShown.connect(app.quit)
QTimer.singleShot(20000, app.quit)
window.open_demo()
app.exec()
about = about_text(settings)
window.close()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow", "torch", "jax"))
print(json.dumps({"built": built, "after": heavy, "shown": window.folder is not None,
                  "about": about}))
"""


def test_window_and_demo_never_import_keras(tmp_path):
    result = subprocess.run([sys.executable, "-c", WINDOW_WITHOUT_KERAS, str(tmp_path)],
                            capture_output=True, text=True, timeout=120,
                            env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin",
                                 "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["built"] == [] and report["after"] == []
    assert report["shown"]
    assert "Keras" in report["about"] and "Qt" in report["about"]


@needs_fixtures
def test_dropping_a_folder_opens_it(window, qtbot, copy_fixture):
    folder = copy_fixture("fs3/lightweight-fp32")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    wait_shown(qtbot, window, lambda: window.dropEvent(event))
    assert window.folder.plugin == "lightweight"


def test_settings_dialog_saves_and_the_button_follows(window, qtbot, gui_settings):
    wait_shown(qtbot, window, window.open_demo)
    dialog = SettingsDialog(gui_settings, window)
    qtbot.addWidget(dialog)
    dialog.policy.setCurrentIndex(dialog.policy.findData("mixed_bfloat16"))
    assert dialog.size.currentText() == "Quick on CPU / full on GPU (recommended)"
    assert not dialog.batch.isEnabled()  # the preset decides
    dialog.size.setCurrentIndex(dialog.size.findData("custom"))
    dialog.batch.setValue(4)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.backend.setCurrentIndex(dialog.backend.findData("tensorflow"))
    dialog.accept()
    window.refresh()
    assert (gui_settings.mixed_policy, gui_settings.validation_batch, gui_settings.device,
            gui_settings.keras_backend) == ("mixed_bfloat16", 4, "cpu", "tensorflow")
    assert window.panel.switch_button.text() == "Switch to mixed precision (bfloat16)"
    assert "tensorflow" in about_text(gui_settings)
    assert gui_settings.validation_steps == 20 and gui_settings.validation_python == ""


def test_settings_default_to_the_preset_and_auto(gui_settings):
    assert (gui_settings.validation_batch, gui_settings.validation_steps,
            gui_settings.keras_backend, gui_settings.validation_python) == (None, None, "auto", "")
    dialog = SettingsDialog(gui_settings)
    dialog.size.setCurrentIndex(dialog.size.findData("custom"))
    dialog.steps.setValue(0)
    dialog.accept()
    assert (gui_settings.validation_batch, gui_settings.validation_steps) == (2, 0)
    dialog = SettingsDialog(gui_settings)
    assert dialog.size.currentData() == "custom" and dialog.steps.value() == 0
    dialog.size.setCurrentIndex(dialog.size.findData("preset"))
    dialog.accept()
    assert (gui_settings.validation_batch, gui_settings.validation_steps) == (None, None)


def test_settings_offer_faceswaps_python(gui_settings, tmp_path, monkeypatch):
    python = tmp_path / "home" / "miniconda3" / "envs" / "faceswap" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CONDA_EXE", raising=False)
    dialog = SettingsDialog(gui_settings)
    labels = [dialog.python.itemText(i) for i in range(dialog.python.count())]
    assert labels[0].startswith("This Python (")
    assert labels[1] == f"Faceswap's environment ({python})"
    dialog.python.setCurrentIndex(1)
    dialog.accept()
    assert gui_settings.validation_python == str(python)


def test_the_about_box_names_the_backends_and_the_last_validation(gui_settings):
    from fsprec.core.validate import installed_backends
    from validation_samples import sample_result

    runtime = sample_result().runtime
    text = about_text(gui_settings, runtime)
    assert f"Keras backends installed</td><td>&nbsp;{', '.join(installed_backends()) or 'none'}" \
        in text
    assert f"Python {runtime.python_version}" in text and runtime.keras_version in text
    assert f"{runtime.backend} backend" in text and runtime.where in text


@needs_fixtures
def test_closing_while_a_job_runs_cancels_it(window, qtbot, copy_fixture, monkeypatch,
                                             no_dangling_threads):
    folder = copy_fixture("fs3/original-fp32")
    accept_dialogs(monkeypatch)
    wait_shown(qtbot, window, lambda: window.open_path(folder))
    before = snapshot(folder)
    reached = hold_in("Writing model", monkeypatch)
    window.switching.switch()
    qtbot.waitUntil(reached.is_set, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(window.job_status.cancelled, timeout=TIMEOUT_MS) as stopped:
        window.close()
        assert window.runner.running() == []
        assert not any(thread.isRunning() for thread in no_dangling_threads)
    assert stopped.args == ["Switching precision"]  # it ended as cancelled, not as done
    assert snapshot(folder) == before


def test_a_refusal_is_one_sentence_in_a_dialog(window, qtbot, monkeypatch, message_boxes,
                                               capfd):
    wait_shown(qtbot, window, window.open_demo)

    def refuse(folder, task):
        raise FsprecError("original.keras is being written by Faceswap; try again later.")
    monkeypatch.setattr(nanscan, "scan_weights", refuse)
    capfd.readouterr()
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.recovery.nan_action.trigger()
    assert message_boxes == [("critical", "fsprec", "original.keras is being written by "
                                                    "Faceswap; try again later.")]
    assert "being written by Faceswap" in window.log_view.toPlainText()
    assert capfd.readouterr().err == ""
    assert window.recovery.nan_action.isEnabled()  # and the app goes on


def test_an_unexpected_error_shows_its_details_and_nothing_on_stderr(window, qtbot, monkeypatch,
                                                                      message_boxes, capfd):
    wait_shown(qtbot, window, window.open_demo)

    def crash(folder, task):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr(nanscan, "scan_weights", crash)
    capfd.readouterr()
    with qtbot.waitSignal(window.job_status.ended, timeout=TIMEOUT_MS):
        window.recovery.nan_action.trigger()
    assert message_boxes == [("exec", "Something went wrong",
                              "Scanning weights failed unexpectedly: division by zero")]
    assert "Traceback" in message_boxes.details[0]
    assert "ZeroDivisionError: division by zero" in message_boxes.details[0]
    assert "failed unexpectedly" in window.log_view.toPlainText()
    assert capfd.readouterr().err == ""
    assert window.recovery.nan_action.isEnabled()


def test_command_line_arguments():
    from fsprec.gui.app import parse_args

    assert parse_args(["--demo"]).demo and parse_args([]).folder is None
    assert parse_args(["/models/original"]).folder == Path("/models/original")


@needs_fixtures
def test_app_opens_the_folder_given_on_the_command_line(copy_fixture, tmp_path):
    folder = copy_fixture("fs3/lightweight-mixed")
    shot = tmp_path / "shot.png"
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "FSPREC_SCREENSHOT": str(shot)}
    result = subprocess.run([sys.executable, "-m", "fsprec.gui.app", str(folder)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert shot.is_file() and shot.stat().st_size > 10_000
    recent = (tmp_path / ".config" / "fsprec" / "fsprec.conf").read_text()
    assert str(folder) in recent

"""Dialogs: conversion and roll back confirmations, settings, About, and how a job ended
badly."""
from __future__ import annotations

import platform
import sys
from dataclasses import replace
from html import escape
from importlib import metadata
from pathlib import Path

import PySide6
from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLabel, QLineEdit, QMessageBox,
                               QPlainTextEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from fsprec.core import __version__
from fsprec.core.convert import Plan
from fsprec.core.layers import MIXED_POLICIES
from fsprec.core.nanscan import NanReport
from fsprec.core.rollback import RollbackPlan
from fsprec.core.validate import BACKEND_CHOICES, DEVICES, faceswap_pythons, installed_backends
from fsprec.core.validate.options import FULL, QUICK
from fsprec.core.validate.result import Runtime

from .outcomes import Failed
from .prefs import PRESET, AppSettings
from .theme import PRECISION_LABELS

DEVICE_LABELS = {"auto": "Automatic", "cpu": "CPU", "gpu": "GPU"}
PRESET_WORDS = (f"Quick on a CPU: batch {QUICK.batch}, no training check (float16 is emulated "
                f"there). Full on a GPU: batch {FULL.batch}, {FULL.steps} training steps.")


def confirm_buttons(dialog: QDialog, action: str) -> QDialogButtonBox:
    """``action`` (the default button, accepts) and Cancel, for a confirmation dialog."""
    buttons = QDialogButtonBox()
    buttons.addButton(action, QDialogButtonBox.ButtonRole.AcceptRole).setDefault(True)
    buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


class ConversionDialog(QDialog):
    """Shows what a switch will do (core's ``Plan.summary()``), always says what Faceswap will
    do at its next start (:attr:`Plan.next_start`), and asks to go ahead.

    When Faceswap was not found, its Locate… button lets the user choose the Faceswap folder:
    the dialog then ends with :attr:`LOCATED` and :attr:`located` set, for the caller to save
    and plan again.
    """

    LOCATED = 2

    def __init__(self, plan: Plan, notes: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plan = plan
        self.located: Path | None = None
        target = PRECISION_LABELS.get(plan.target, plan.target)
        self.setWindowTitle(f"Switch to {target}")
        layout = QVBoxLayout(self)
        heading = QLabel(f"<b>Switch {escape(plan.model.model_file.name)} to {target}?</b>")
        layout.addWidget(heading)
        said_below = plan.next_start.line if plan.next_start else None  # the Faceswap row
        self.summary = QLabel("\n\n".join([line for line in plan.summary()
                                            if line != said_below] + notes))
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setMinimumWidth(460)
        layout.addWidget(self.summary)
        if plan.changes:
            details = QPlainTextEdit("\n".join(f"{path}: {old} → {new}"
                                               for path, old, new in plan.changes))
            details.setReadOnly(True)
            details.setMaximumHeight(150)
            details.setAccessibleName("Layers that change")
            layout.addWidget(QLabel("Layers that change:"))
            layout.addWidget(details)
        layout.addWidget(QLabel("<b>Next time Faceswap trains it</b>"))
        self.faceswap = QLabel()
        self.faceswap.setWordWrap(True)
        self.faceswap.setAccessibleName("What Faceswap will do")
        self.update_ini = QCheckBox()
        self.locate = QPushButton("Locate…")
        self.locate.setToolTip("Choose the folder Faceswap is installed in (it holds "
                               "faceswap.py); fsprec remembers it and checks again.")
        self.locate.clicked.connect(self._locate)
        self._fill_faceswap(layout)
        layout.addWidget(confirm_buttons(self, "Switch"))

    def _fill_faceswap(self, layout: QVBoxLayout) -> None:
        """The Faceswap row: keep, switch back (with the train.ini box), or not found."""
        found = self.plan.next_start
        ini = self.plan.train_ini
        row = QHBoxLayout()
        row.addWidget(self.faceswap, 1)
        layout.addLayout(row)
        self.update_ini.hide()
        self.locate.hide()
        if found is None or found.verdict == "not_found":
            self.faceswap.setText("Faceswap not found — it may switch this model back at its "
                                  "next start.")
            self.faceswap.setToolTip(found.line if found else "")
            row.addWidget(self.locate)
            self.locate.show()
            return
        self.faceswap.setToolTip(found.line)
        if found.verdict == "keep":
            self.faceswap.setText("Faceswap will keep this.")
            return
        if ini is None or ini.mixed_precision is None:
            self.faceswap.setText(found.line)
            return
        self.faceswap.hide()
        self.update_ini.setText("Faceswap will switch it back — update train.ini (recommended)")
        self.update_ini.setToolTip(f"{found.line} Ticked, fsprec sets mixed_precision = "
                                   f"{self.plan.target in MIXED_POLICIES} in {ini.path} after "
                                   "a backup (train.ini.bk).")
        self.update_ini.setChecked(found.can_update)
        row.addWidget(self.update_ini, 1)
        self.update_ini.show()

    def faceswap_says(self) -> str:
        """The dialog's sentence on what Faceswap will do at its next start."""
        return self.update_ini.text() if self.update_ini.isVisibleTo(self) \
            else self.faceswap.text()

    def _locate(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Faceswap folder (it holds faceswap.py)")
        if folder:
            self.located = Path(folder)
            self.done(self.LOCATED)

    def accepted_plan(self) -> Plan:
        """The plan, with the train.ini choice applied (a new plan: plans are frozen)."""
        return replace(self.plan, update_train_ini=self.update_ini.isVisibleTo(self)
                       and self.update_ini.isChecked())


class RollbackDialog(QDialog):
    """Shows what a roll back will do (core's ``RollbackPlan.summary()``) and asks to go
    ahead, in the switch's style."""

    def __init__(self, plan: RollbackPlan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Roll back")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>Roll {escape(plan.model_dir.name)} back to "
                                f"{escape(plan.label)}?</b>"))
        summary = QLabel("\n\n".join(plan.summary()))
        summary.setWordWrap(True)
        summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        summary.setMinimumWidth(460)
        layout.addWidget(summary)
        layout.addWidget(confirm_buttons(self, "Roll back"))


class SettingsDialog(QDialog):
    """Edits :class:`AppSettings`; nothing is saved unless the user presses OK."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.faceswap = QLineEdit(settings.faceswap_folder)
        self.faceswap.setPlaceholderText("Not set: train.ini is not checked")
        self.faceswap.setToolTip("Faceswap's folder. Its config/train.ini decides the "
                                 "precision Faceswap trains in; fsprec checks it and can "
                                 "update it when you switch a model.")
        self.faceswap.editingFinished.connect(self._fill_pythons)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_faceswap)
        faceswap_row = QHBoxLayout()
        faceswap_row.addWidget(self.faceswap, 1)
        faceswap_row.addWidget(browse)
        self.policy = self._combo({p: PRECISION_LABELS[p] for p in MIXED_POLICIES},
                                  settings.mixed_policy)
        self.policy.setToolTip("The policy a float32 model switches to. Faceswap trains "
                               "in mixed float16.")
        custom = settings.validation_batch is not None or settings.validation_steps is not None
        self.size = self._combo({PRESET: "Quick on CPU / full on GPU (recommended)",
                                 "custom": "Custom batch and steps"},
                                "custom" if custom else PRESET)
        self.size.setToolTip(PRESET_WORDS)
        self.size.currentIndexChanged.connect(self._size_changed)
        quick = settings.validation_batch or QUICK.batch
        self.batch = self._spin(1, 512, quick)
        steps = settings.validation_steps
        self.steps = self._spin(0, 10_000, FULL.steps if steps is None else steps)
        self.steps.setToolTip("Training steps the validation runs in float32 and in mixed "
                              "precision to compare losses; 0 skips the training check.")
        preset_note = QLabel(PRESET_WORDS)
        preset_note.setWordWrap(True)
        preset_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.device = self._combo({d: DEVICE_LABELS[d] for d in DEVICES}, settings.device)
        installed = installed_backends()
        self.backend = self._combo({b: backend_label(b, installed) for b in BACKEND_CHOICES},
                                   settings.keras_backend)
        self.backend.setToolTip("Automatic picks torch, else TensorFlow, else JAX, whichever "
                                "the validation's Python has.")
        self.python = QComboBox()
        self.python.setToolTip("Validation runs in a separate Python process. Faceswap's own "
                               "environment already has Keras and a backend.")
        self._fill_pythons(settings.validation_python)
        choose_python = QPushButton("Choose…")
        choose_python.clicked.connect(self._choose_python)
        python_row = QHBoxLayout()
        python_row.addWidget(self.python, 1)
        python_row.addWidget(choose_python)
        form = QFormLayout()
        form.addRow("Faceswap folder:", faceswap_row)
        form.addRow("Mixed precision policy:", self.policy)
        form.addRow(QLabel("<b>Validation</b>"))
        form.addRow("Batch and steps:", self.size)
        form.addRow("", preset_note)
        form.addRow("Batch size:", self.batch)
        form.addRow("Steps:", self.steps)
        form.addRow("Device:", self.device)
        form.addRow("Keras backend:", self.backend)
        form.addRow("Python for validation:", python_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self._size_changed()

    @staticmethod
    def _combo(choices: dict[str, str], current: str) -> QComboBox:
        combo = QComboBox()
        for value, label in choices.items():
            combo.addItem(label, value)
        combo.setCurrentIndex(max(0, combo.findData(current)))
        return combo

    @staticmethod
    def _spin(low: int, high: int, value: int) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setValue(value)
        return spin

    def _size_changed(self) -> None:
        custom = self.size.currentData() == "custom"
        self.batch.setEnabled(custom)
        self.steps.setEnabled(custom)

    def _fill_pythons(self, current: str | None = None) -> None:
        """This Python, Faceswap's environments found, and the chosen path, if another."""
        current = self.python.currentData() if current is None else current
        self.python.clear()
        self.python.addItem(f"This Python ({sys.executable})", "")
        folder = self.faceswap.text().strip() or None
        for python in faceswap_pythons(folder):
            self.python.addItem(f"Faceswap's environment ({python})", str(python))
        if current and self.python.findData(current) < 0:
            self.python.addItem(current, current)
        self.python.setCurrentIndex(max(0, self.python.findData(current or "")))

    def _choose_python(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Python for validation",
                                              self.python.currentData() or "")
        if path:
            self._fill_pythons(path)

    def _browse_faceswap(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Faceswap folder", self.faceswap.text())
        if folder:
            self.faceswap.setText(folder)
            self._fill_pythons()

    def accept(self) -> None:
        """Save the values, then close."""
        custom = self.size.currentData() == "custom"
        self.settings.faceswap_folder = self.faceswap.text().strip()
        self.settings.mixed_policy = self.policy.currentData()
        self.settings.validation_batch = self.batch.value() if custom else None
        self.settings.validation_steps = self.steps.value() if custom else None
        self.settings.device = self.device.currentData()
        self.settings.keras_backend = self.backend.currentData()
        self.settings.validation_python = self.python.currentData()
        super().accept()


def backend_label(choice: str, installed: list[str]) -> str:
    """A backend choice as the settings list it, saying whether this Python has it."""
    if choice == "auto":
        found = ", ".join(installed) if installed else "none installed here"
        return f"Automatic ({found})"
    return choice if choice in installed else f"{choice} (not installed here)"


def package_version(name: str) -> str:
    """An installed distribution's version from its metadata (nothing is imported)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def about_text(settings: AppSettings, runtime: Runtime | None = None) -> str:
    """The About box: what fsprec is, the versions it runs with, the Keras backends installed
    here and where the last validation ran (``runtime``)."""
    backends = ", ".join(installed_backends()) or "none"
    rows = [("fsprec", __version__), ("Keras", package_version("keras")),
            ("Keras backends installed", backends),
            ("Validation backend", settings.keras_backend),
            ("Qt", qVersion()), ("PySide6", PySide6.__version__),
            ("Python", platform.python_version()), ("System", f"{platform.system()} "
                                                              f"{platform.machine()}")]
    if runtime is not None:
        rows.append(("Last validation", f"Python {runtime.python_version} "
                     f"({runtime.python}), {runtime.backend} backend, Keras "
                     f"{runtime.keras_version}, {runtime.where}"))
    table = "".join(f"<tr><td>{k}</td><td>&nbsp;{escape(v)}</td></tr>" for k, v in rows)
    return ("<h3>fsprec</h3><p>Inspect Faceswap models and switch them between float32 and "
            "mixed precision, losslessly.</p>"
            f"<table>{table}</table>")


def show_about(parent: QWidget, settings: AppSettings, runtime: Runtime | None = None) -> None:
    """Show the About box."""
    box = QMessageBox(parent)
    box.setWindowTitle("About fsprec")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_text(settings, runtime))
    box.setIconPixmap(parent.windowIcon().pixmap(64, 64))
    box.exec()


def show_nan_report(parent: QWidget, report: NanReport, listed: int = 20) -> str:
    """Tell the user what a NaN/Inf scan found; returns the one-line summary for the log."""
    if report.clean:
        message = (f"No NaN or Inf in {report.model_file.name}: "
                   f"{len(report.layers)} layers with weights checked.")
        QMessageBox.information(parent, "Weights are clean", message)
        return message
    bad = report.bad_layers
    lines = [f"{f.layer}: {f.nan:,} NaN, {f.inf:,} Inf of {f.size:,}" for f in bad[:listed]]
    if len(bad) > listed:
        lines.append(f"… and {len(bad) - listed} more layers.")
    message = f"{len(bad)} layer(s) of {report.model_file.name} hold NaN or Inf values."
    box = QMessageBox(QMessageBox.Icon.Warning, "NaN or Inf in the weights", message,
                      QMessageBox.StandardButton.Ok, parent)
    box.setInformativeText("Restore a backup or an earlier snapshot of this model before "
                           "training it further.")
    box.setDetailedText("\n".join(lines))
    box.exec()
    return message


def show_refusal(parent: QWidget, title: str, message: str) -> None:
    """Tell the user core's one sentence about why it refused."""
    QMessageBox.critical(parent, title, message)


def show_failure(parent: QWidget, failed: Failed) -> None:
    """Tell the user that a job broke unexpectedly, with the traceback as details."""
    box = QMessageBox(QMessageBox.Icon.Critical, "Something went wrong", failed.message,
                      QMessageBox.StandardButton.Ok, parent)
    box.setInformativeText("This is a bug in fsprec or a problem it did not expect; the "
                           "details help to report it.")
    box.setDetailedText(failed.details)
    box.exec()

"""The right-hand panel: facts about the open model and the selected layer."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from fsprec.core.layers import Layer
from fsprec.core.modelfile import ModelFolder

from .layer_model import dtype_label
from .theme import PRECISION_LABELS
from .widgets import ElidedLabel

FORMAT_LABELS = {"keras3": "Faceswap 3 (.keras)", "keras2": "Faceswap 2 (.h5)"}
SOURCE_LABELS = {"state": "the state file's mixed_precision_layers",
                 "config": "the layers mixed in this model",
                 "derived": "derived by fsprec (no stored list)"}


class _Form(QGroupBox):
    """A titled list of label/value rows whose values can be selected and copied."""

    def __init__(self, title: str, rows: list[str], paths: tuple[str, ...] = ()) -> None:
        super().__init__(title)
        form = QFormLayout(self)
        self.values: dict[str, QLabel] = {}
        for row in rows:
            value = ElidedLabel() if row in paths else QLabel()
            value.setWordWrap(row not in paths)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(f"{row}:", value)
            self.values[row] = value

    def fill(self, values: dict[str, str]) -> None:
        """Set every row (missing rows become empty); paths are elided in the middle."""
        for row, label in self.values.items():
            if isinstance(label, ElidedLabel):
                label.set_full_text(values.get(row, ""))
            else:
                label.setText(values.get(row, ""))


class DetailsPanel(QScrollArea):
    """Model facts (file, Keras version, state) above the selected layer's facts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_box = _Form("Model", ["Folder", "File", "Format", "Keras", "Precision",
                                         "Iterations", "Eligible from", "State", "Backups"],
                               paths=("Folder", "File"))
        self.layer_box = _Form("Selected layer", ["Path", "Class", "dtype policy", "Eligible",
                                                  "Params"], paths=("Path",))
        self.hint = QLabel("Select a layer to see its details.")
        self.hint.setWordWrap(True)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self.model_box)
        layout.addWidget(self.layer_box)
        layout.addWidget(self.hint)
        layout.addStretch(1)
        self.setWidget(body)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.show_model(None)
        self.show_layer(None, None)

    def show_model(self, folder: ModelFolder | None) -> None:
        """Describe the open model (or nothing)."""
        self.model_box.setVisible(folder is not None)
        if folder is None:
            return
        state = ("OK: " + folder.state_file.name if folder.state_file and not folder.state_problem
                 else folder.state_problem or "")
        self.model_box.fill({
            "Folder": str(folder.path),
            "File": folder.model_file.name,
            "Format": FORMAT_LABELS.get(folder.format, folder.format),
            "Keras": folder.keras_version or "unknown",
            "Precision": PRECISION_LABELS.get(folder.precision, folder.precision),
            "Iterations": f"{folder.iterations:,}",
            "Eligible from": SOURCE_LABELS.get(folder.eligible_source, folder.eligible_source),
            "State": state,
            "Backups": ", ".join(p.name for p in folder.backups) or "none",
        })

    def show_layer(self, layer: Layer | None, params: int | None) -> None:
        """Describe the selected layer; ``params`` is None until counted."""
        self.layer_box.setVisible(layer is not None)
        self.hint.setVisible(layer is None and not self.model_box.isHidden())
        if layer is None:
            return
        eligible = "" if layer.is_model else ("yes" if layer.eligible else "no")
        self.layer_box.fill({
            "Path": layer.path,
            "Class": layer.class_name,
            "dtype policy": dtype_label(layer),
            "Eligible": f"{eligible} — {layer.reason}" if eligible else layer.reason,
            "Params": "counting…" if params is None else f"{params:,}",
        })

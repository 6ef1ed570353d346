"""The app's persistent settings (QSettings), with types and defaults in one place."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from fsprec.core.validate.options import BACKEND_CHOICES, DEVICES

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")
MAX_RECENT = 8
PRESET = "preset"  # batch or steps: what the preset for the device says


class AppSettings:
    """Typed access to the values the app remembers between runs."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store or QSettings()

    def _str(self, key: str, default: str = "") -> str:
        value = self.store.value(key, default)
        return value if isinstance(value, str) else default

    def _int(self, key: str, default: int) -> int:
        try:
            return int(self.store.value(key, default))
        except (TypeError, ValueError):
            return default

    def _choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self._str(key, default)
        return value if value in choices else default

    # Model browser ---------------------------------------------------------------------------
    @property
    def models_root(self) -> str:
        """The folder whose model folders the browser lists ("" until chosen)."""
        return self._str("browser/root")

    @models_root.setter
    def models_root(self, value: str) -> None:
        self.store.setValue("browser/root", value)

    @property
    def recent_models(self) -> list[str]:
        """Recently opened model folders, newest first."""
        value = self.store.value("browser/recent", [])
        if isinstance(value, str):  # QSettings returns a one-element list as a string
            value = [value]
        return [str(v) for v in value or [] if v]

    def add_recent(self, folder: Path) -> None:
        """Put ``folder`` at the top of the recent models."""
        path = str(folder)
        recent = [path] + [p for p in self.recent_models if p != path]
        self.store.setValue("browser/recent", recent[:MAX_RECENT])

    def clear_recent(self) -> None:
        """Forget the recent models."""
        self.store.setValue("browser/recent", [])

    # Conversion ------------------------------------------------------------------------------
    @property
    def faceswap_folder(self) -> str:
        """Faceswap's install folder (for ``config/train.ini``); "" when not set."""
        return self._str("faceswap/folder")

    @faceswap_folder.setter
    def faceswap_folder(self, value: str) -> None:
        self.store.setValue("faceswap/folder", value)

    @property
    def mixed_policy(self) -> str:
        """The mixed policy a float32 model is switched to."""
        return self._choice("convert/mixed_policy", MIXED_POLICIES, "mixed_float16")

    @mixed_policy.setter
    def mixed_policy(self, value: str) -> None:
        self.store.setValue("convert/mixed_policy", value)

    # Validation ------------------------------------------------------------------------------
    def _preset_int(self, key: str) -> int | None:
        value = self.store.value(key, PRESET)
        try:
            return None if value in (PRESET, None, "") else int(value)
        except (TypeError, ValueError):
            return None

    def _set_preset_int(self, key: str, value: int | None) -> None:
        self.store.setValue(key, PRESET if value is None else int(value))

    @property
    def validation_batch(self) -> int | None:
        """Batch size of a validation pass; None: the preset's (quick on a CPU, full on a
        GPU)."""
        return self._preset_int("validation/batch")

    @validation_batch.setter
    def validation_batch(self, value: int | None) -> None:
        self._set_preset_int("validation/batch", value)

    @property
    def validation_steps(self) -> int | None:
        """Optimizer steps of the validation's training check (0: no training check); None:
        the preset's."""
        return self._preset_int("validation/steps")

    @validation_steps.setter
    def validation_steps(self, value: int | None) -> None:
        self._set_preset_int("validation/steps", value)

    @property
    def device(self) -> str:
        """``auto``, ``cpu`` or ``gpu``."""
        return self._choice("validation/device", DEVICES, "auto")

    @device.setter
    def device(self, value: str) -> None:
        self.store.setValue("validation/device", value)

    @property
    def keras_backend(self) -> str:
        """The Keras backend for validation: ``auto`` (torch, else TensorFlow, else JAX: what
        is installed in the validation's Python) or a backend's name."""
        return self._choice("validation/backend", BACKEND_CHOICES, "auto")

    @keras_backend.setter
    def keras_backend(self, value: str) -> None:
        self.store.setValue("validation/backend", value)

    @property
    def validation_python(self) -> str:
        """The Python that runs validation ("": this one, the app's own), e.g. the python of
        Faceswap's environment."""
        return self._str("validation/python")

    @validation_python.setter
    def validation_python(self, value: str) -> None:
        self.store.setValue("validation/python", value)

    # Window ----------------------------------------------------------------------------------
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        """Saved geometry and dock/toolbar state of the main window."""
        geometry = self.store.value("window/geometry")
        state = self.store.value("window/state")
        return (geometry if isinstance(geometry, QByteArray) else None,
                state if isinstance(state, QByteArray) else None)

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        """Remember the main window's geometry and dock/toolbar state."""
        self.store.setValue("window/geometry", geometry)
        self.store.setValue("window/state", state)

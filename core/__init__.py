"""fsprec core: read, inspect and losslessly switch the precision of Faceswap models.

No Qt here, and no Keras import unless a function needs it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import Cancelled, CheckFailed, FsprecError
from .modelfile import ModelFolder, open_model

__version__ = "0.1.0"
__all__ = ["Cancelled", "CheckFailed", "FsprecError", "ModelFolder", "load_keras_model",
           "open_model", "__version__"]


def load_keras_model(folder: str | Path, policy: str | None = None, safe_mode: bool = True,
                     allow_lambda: bool = False, faceswap_dir: str | Path | None = None
                     ) -> Any:
    """Load a Faceswap model folder into Keras (imports Keras on first call); a
    ``keras.Model``.

    See :func:`fsprec.core.keras.loading.load_keras_model`.
    """
    from .keras.loading import load_keras_model as load  # lazy: Keras loads only here

    return load(folder, policy, safe_mode, allow_lambda, faceswap_dir)

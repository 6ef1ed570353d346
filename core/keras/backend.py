"""Choose the Keras backend before Keras is first imported."""
from __future__ import annotations

import os

from ..validate.options import DEFAULT_BACKEND


def ensure_backend() -> str:
    """Default ``KERAS_BACKEND`` to TensorFlow unless the user chose one; return the choice.

    Keras reads the variable once, on its first import, so this only has an effect before
    then; afterwards the backend Keras already runs on is returned.
    """
    os.environ.setdefault("KERAS_BACKEND", DEFAULT_BACKEND)
    import keras  # lazy: the first import must follow the variable

    return keras.backend.backend()

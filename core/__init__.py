"""fsprec core: read, inspect and losslessly switch the precision of Faceswap models.

No Qt here, and no Keras import unless a function needs it.
"""
from .errors import Cancelled, CheckFailed, FsprecError
from .modelfile import ModelFolder, open_model

__version__ = "0.1.0"
__all__ = ["Cancelled", "CheckFailed", "FsprecError", "ModelFolder", "open_model", "__version__"]

"""The validation child: imports Keras; runs only in ``python -m fsprec.core.validate.child``.

Nothing on the parent side (CLI, GUI, :mod:`fsprec.core.validate`) imports this package; the
import contracts in ``pyproject.toml`` check it.
"""

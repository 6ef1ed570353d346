"""The Keras engine: the only part of fsprec.core that imports Keras.

Importing this package imports nothing heavy; its modules import Keras when they are used:
``backend`` (choose the backend first), ``loading`` (a model folder into Keras), ``upgrade``
(Keras 2 configs to Keras 3), ``settings`` (Faceswap's precision ``Settings``) and ``compat``
(Faceswap's custom layers, initializers and normalisations in ``keras.ops``).
"""

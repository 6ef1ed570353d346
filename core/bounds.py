"""Limits on what fsprec reads, checked before the bytes are read, so that no input can make
a command use unbounded memory or time. Real Faceswap models sit far inside every limit
(docs/formats.md, "Safety limits")."""
from __future__ import annotations

import json
from typing import Any

from .errors import FsprecError

MB = 1024 * 1024
MAX_CONFIG = 16 * MB          # config.json / an .h5's model_config (real ones: < 1 MB)
MAX_METADATA = 1 * MB         # metadata.json (real ones: < 1 KB)
MAX_STATE = 16 * MB           # <plugin>_state.json (real ones: a few KB)
MAX_ATTR = 16 * MB            # any other h5 attribute fsprec reads (layer_names, weight_names)
MAX_DEPTH = 64                # JSON nesting (real configs: about 12)
MAX_LAYERS = 20_000           # layers in a config, all levels (real models: < 1,000)
MAX_DATASETS = 100_000        # datasets in a weights file
MAX_RATIO = 100               # a zip member may not expand more than 100x ...
MAX_EXPANDED = 4 * 1024 * MB  # ... to over 4 GiB (Keras 3.15's rule); JSON members: the caps
MAX_WEIGHT_RATIO = 2000       # an h5 dataset's values per stored byte (gzip tops out at ~1032)
MAX_WEIGHT_SLACK = 256 * MB   # declared bytes allowed beyond that ratio
MAX_WEIGHTS = 64 * 1024 * MB  # all weights of a model together


def depth(value: Any) -> int:
    """Nesting depth of a JSON value (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((child, level + 1) for child in item)
    return deepest


def loads(data: bytes | str, what: str, limit: int) -> Any:
    """Parse JSON of at most ``limit`` bytes and ``MAX_DEPTH`` levels, or raise a sentence."""
    if len(data) > limit:
        raise FsprecError(f"{what} is too large ({len(data) / MB:.0f} MB; the limit is "
                          f"{limit // MB} MB).")
    try:
        value = json.loads(data)
    except RecursionError:
        raise FsprecError(f"{what} is nested too deeply to be a Keras or Faceswap "
                          "file.") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise FsprecError(f"{what} cannot be read (not valid JSON: {err}).") from err
    if depth(value) > MAX_DEPTH:
        raise FsprecError(f"{what} is nested too deeply to be a Keras or Faceswap file.")
    return value


def check_size(size: int, what: str, limit: int) -> None:
    """Raise a sentence when a declared ``size`` is over ``limit``."""
    if size > limit:
        raise FsprecError(f"{what} is too large ({size / MB:.0f} MB; the limit is "
                          f"{limit // MB} MB).")

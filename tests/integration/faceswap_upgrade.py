"""fsprec's Keras 2 upgrade against Faceswap 3's own (``plugins/train/model/_base/update.py``).

``python faceswap_upgrade.py REPORT.json MODEL.h5 ...`` in the Faceswap venv, in a Faceswap
tree, with ``fsprec`` importable. For each Faceswap 2 file: Faceswap's ``Legacy`` config
updates (without its archive-and-save step) and ``fsprec.core.keras.upgrade.upgrade_config``,
compared entry by entry; both configs are built with Keras and their layer classes and
output shapes compared.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.getcwd())

import keras

from fsprec.core.keras import compat
from fsprec.core.keras.upgrade import upgrade_config
from plugins.train.model._base.update import Legacy


def faceswap_upgrade(path: str) -> dict:
    """Faceswap's own config updates of a Keras 2 file (its __init__ would also save)."""
    legacy = Legacy.__new__(Legacy)
    legacy._old_model_file = path
    legacy._functional = set()
    config = legacy._get_model_config()
    legacy._update_layers([config])
    return config


def differences(ours, theirs, path: str = "") -> list[str]:
    """Where two JSON values differ; an InputLayer's dtype form is not compared (Faceswap
    writes a policy dict, fsprec the plain string Keras 3 saves; both build the same)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if ours.get("class_name") == theirs.get("class_name") == "InputLayer":
            ours, theirs = ({k: v for k, v in d.items() if k != "config"} |
                            {"config": {k: v for k, v in d["config"].items() if k != "dtype"}}
                            for d in (ours, theirs))
        found = [f"{path}/{k}" for k in set(ours) ^ set(theirs)]
        for key in set(ours) & set(theirs):
            found += differences(ours[key], theirs[key], f"{path}/{key}")
        return found
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [d for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
                for d in differences(a, b, f"{path}[{i}]")]
    return [] if ours == theirs else [path]


def built(config: dict) -> list[tuple[str, str]]:
    model = keras.Model.from_config(config["config"], custom_objects=compat.custom_objects())
    return [(type(layer).__name__, str(keras.tree.map_structure(lambda t: t.shape,
                                                                layer.output)))
            for layer in model.layers]


def main() -> None:
    rows = []
    for path in sys.argv[2:]:
        with __import__("h5py").File(path, "r") as h5:
            raw = json.loads(h5.attrs["model_config"])
        ours, theirs = upgrade_config(raw), faceswap_upgrade(path)
        rows.append({"model": path, "differences": differences(ours, theirs),
                     "same_build": built(ours) == built(theirs)})
    Path(sys.argv[1]).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()

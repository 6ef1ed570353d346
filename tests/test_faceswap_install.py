"""Finding Faceswap's install and saying what it will do with a converted model at its next
training start (its train.ini's ``mixed_precision``); updating that one line safely."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory import make_keras3
from fsprec.core import FsprecError, traincfg
from fsprec.core.cli import main

INI = ("[global]\n# Mixed precision: NVIDIA GPUs train faster in float16.\n"
       "mixed_precision = {}\n\nnan_protection = True\n\n[model.original]\nlowmem = False\n")


def faceswap_tree(folder: Path, mixed: bool | None = False) -> Path:
    """A Faceswap install: faceswap.py, config/ and (unless ``mixed`` is None) train.ini."""
    (folder / "config").mkdir(parents=True)
    (folder / "faceswap.py").write_text("# Faceswap\n")
    if mixed is not None:
        (folder / "config" / "train.ini").write_text(INI.format(mixed))
    return folder


@pytest.fixture
def no_install(monkeypatch, tmp_path):
    """No Faceswap in the environment, the home folder or the usual places."""
    monkeypatch.delenv(traincfg.FACESWAP_ENV, raising=False)
    monkeypatch.delenv("USERPROFILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_faceswap_is_found_above_or_beside_the_models_folder(tmp_path, no_install):
    models = tmp_path / "work" / "models" / "original"
    models.mkdir(parents=True)
    assert traincfg.find_faceswap(models) is None
    beside = faceswap_tree(tmp_path / "work" / "faceswap")
    assert traincfg.find_faceswap(models) == beside
    above = faceswap_tree(tmp_path / "fs_install")
    inside = above / "models" / "m"
    inside.mkdir(parents=True)
    assert traincfg.find_faceswap(inside) == above


def test_setting_then_environment_then_usual_places(tmp_path, monkeypatch, no_install):
    setting = faceswap_tree(tmp_path / "gui_setting")
    env = faceswap_tree(tmp_path / "from_env")
    home = faceswap_tree(tmp_path / "home" / "faceswap")
    model = tmp_path / "m"
    model.mkdir()
    assert traincfg.find_faceswap(model) == home  # ~/faceswap: the installers' default
    monkeypatch.setenv(traincfg.FACESWAP_ENV, str(env / "config" / "train.ini"))
    assert traincfg.find_faceswap(model) == env
    assert traincfg.find_faceswap(model, setting=setting) == setting


@pytest.mark.parametrize(("ini_mixed", "target_mixed", "verdict"), [
    (True, True, "keep"), (False, False, "keep"),
    (False, True, "switch_back"), (True, False, "switch_back")])
def test_next_start_says_keep_or_switch_back(tmp_path, no_install, ini_mixed, target_mixed,
                                             verdict):
    tree = faceswap_tree(tmp_path / "faceswap", ini_mixed)
    start = traincfg.next_start(target_mixed, tmp_path / "faceswap" / "models")
    assert start.verdict == verdict
    if verdict == "keep":
        assert start.line.startswith("Faceswap will keep this")
        assert not start.can_update
    else:
        assert start.line.startswith("Faceswap will switch the model back")
        assert "update train.ini (recommended)" in start.line
        assert start.train_ini == tree / "config" / "train.ini" and start.can_update


def test_next_start_without_faceswap_or_train_ini(tmp_path, no_install):
    start = traincfg.next_start(True, tmp_path)
    assert start.verdict == "not_found" and start.line.startswith("Faceswap not found")
    assert "--" not in start.line  # core's sentence is shown by the GUI too: no CLI flags
    faceswap_tree(tmp_path / "faceswap", mixed=None)  # never started: Faceswap's default, off
    start = traincfg.next_start(True, tmp_path)
    assert start.verdict == "switch_back" and not start.can_update
    assert traincfg.next_start(False, tmp_path).verdict == "keep"
    with pytest.raises(FsprecError, match="not a Faceswap folder"):
        traincfg.next_start(True, tmp_path, setting=tmp_path / "nothing_here")


def test_update_backs_up_and_changes_only_that_line(tmp_path):
    tree = faceswap_tree(tmp_path / "faceswap", False)
    ini = tree / "config" / "train.ini"
    before = ini.read_bytes()
    traincfg.write_mixed_precision(tree, True)
    assert (tree / "config" / "train.ini.bk").read_bytes() == before
    assert ini.read_text() == INI.format(True)


@pytest.mark.parametrize("where", ["none", "beside", "env"])
def test_convert_always_prints_what_faceswap_will_do(tmp_path, monkeypatch, capsys, no_install,
                                                     where):
    folder = make_keras3(tmp_path / "work" / "m")
    if where == "beside":
        faceswap_tree(tmp_path / "work" / "faceswap", False)
    if where == "env":
        monkeypatch.setenv(traincfg.FACESWAP_ENV, str(faceswap_tree(tmp_path / "fs", True)))
    assert main(["convert", str(folder), "--to", "mixed_float16", "--yes"]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = {"none": "Faceswap not found", "beside": "Faceswap will switch the model back",
                "env": "Faceswap will keep this"}[where]
    assert sum(line.startswith(expected) for line in out) == 1, out
    if where == "none":  # the command line says how to tell it where Faceswap is
        assert any("--faceswap" in line for line in out if line.startswith(expected)), out
    assert main(["convert", str(folder), "--to", "mixed_float16"]) == 0  # already: no change
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith(expected) for line in out) == 1, out
    assert main(["convert", str(folder), "--to", "float32", "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)["faceswap"]["verdict"]
    assert verdict == {"none": "not_found", "beside": "keep", "env": "switch_back"}[where]

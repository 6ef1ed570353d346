"""The wheel and the sdist: built with ``python -m build``, checked by twine, installed into a
fresh virtual environment (the core install: no Keras, no TensorFlow, no torch) where
``fsprec inspect`` and an offscreen ``fsprec-gui --demo`` work.

Nothing comes from the package index here: the build backend and the core dependencies come
from the wheelhouse that ``make wheelhouse`` (part of ``make test``) fills.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, needs_fixtures

WHEELHOUSE = REPO / ".whl"
DATA = ("fsprec.svg", "fsprec.png", "fsprec.ico", "fsprec.desktop")
BACKENDS = ("keras", "tensorflow", "torch", "jax")
pytestmark = pytest.mark.skipif(
    not (WHEELHOUSE / ".ready").is_file(),
    reason="no wheelhouse at .whl/ (`make wheelhouse` fills it; `make test` runs it)")


def offline_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment without the package index, the current venv or a Qt/fsprec setting."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("QT_", "XDG_", "FSPREC_", "PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(WHEELHOUSE),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    if home is not None:
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                   XDG_DATA_HOME=str(home / ".local" / "share"), QT_QPA_PLATFORM="offscreen")
    env.update(extra)
    return env


def run(argv: list, env: dict[str, str], timeout: int = 300,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> tuple[Path, Path]:
    """The wheel and the sdist, built as ``make dist`` builds them (sdist, then the wheel from
    the sdist), in an isolated build environment filled from the wheelhouse."""
    if importlib.util.find_spec("build") is None:
        pytest.skip("the `build` package is not installed (the `package` extra)")
    out = tmp_path_factory.mktemp("dist")
    result = run([sys.executable, "-m", "build", "--outdir", out, REPO], offline_env(),
                 timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheel, = out.glob("faceswap_precision-*.whl")
    sdist, = out.glob("faceswap_precision-*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def fresh(dists, tmp_path_factory) -> Path:
    """A new virtual environment with only the wheel and its core dependencies; its bin/."""
    root = tmp_path_factory.mktemp("fresh") / "venv"
    venv.create(root, with_pip=True)
    bin_dir = root / ("Scripts" if os.name == "nt" else "bin")
    result = run([bin_dir / "python", "-m", "pip", "install", "-q", dists[0]], offline_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return bin_dir


def test_twine_accepts_the_wheel_and_the_sdist(dists):
    if importlib.util.find_spec("twine") is None:
        pytest.skip("twine is not installed (the `package` extra)")
    result = run([sys.executable, "-m", "twine", "check", "--strict", *dists], offline_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_holds_every_module_and_the_icons_and_desktop_file(dists):
    names = set(zipfile.ZipFile(dists[0]).namelist())
    sources = [path for folder in ("core", "gui", "resources")
               for path in (REPO / folder).rglob("*.py") if "__pycache__" not in path.parts]
    missing = [str(path.relative_to(REPO)) for path in sources
               if "fsprec/" + path.relative_to(REPO).as_posix() not in names]
    assert not missing, f"left out of the wheel: {missing}"
    assert {f"fsprec/resources/{name}" for name in DATA} <= names


def test_the_sdist_builds_the_same_package(dists):
    with tarfile.open(dists[1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "LICENSE"} <= names
    assert {f"resources/{name}" for name in DATA} <= names


def test_the_core_install_requires_no_keras_backend(dists):
    with zipfile.ZipFile(dists[0]) as wheel:
        metadata_name, = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(metadata_name).decode("utf-8"))
    requires = metadata.get_all("Requires-Dist")
    core = [r for r in requires if "extra ==" not in r]
    assert core and not [r for r in core if re.match(r"(keras|tensorflow|torch|jax)\b", r)]
    assert {"numpy", "h5py", "pyside6-essentials", "pyqtgraph", "pillow"} <= {
        re.match(r"[A-Za-z0-9_.-]+", r).group().lower() for r in core}

    def extra(name: str) -> set[str]:
        return {re.match(r"[a-z]+", r).group() for r in requires
                if re.search(rf"extra == ['\"]{name}['\"]", r)}

    assert extra("tensorflow") == {"keras", "tensorflow"}
    assert extra("torch") == {"keras", "torch"}
    assert extra("jax") == {"keras", "jax"}


def test_the_fresh_install_has_no_keras_backend(fresh):
    probe = f"import importlib.util as u; print([m for m in {BACKENDS!r} if u.find_spec(m)])"
    result = run([fresh / "python", "-c", probe], offline_env())
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout


@needs_fixtures
def test_the_fresh_install_inspects_a_faceswap_model(fresh, tmp_path):
    result = run([fresh / "fsprec", "inspect", "--json", FIXTURES / "fs3" / "original-fp32"],
                 offline_env(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == "keras3" and report["precision"] == "float32"
    assert report["eligible"] and report["layers"]


def test_the_fresh_install_opens_the_demo_window(fresh, tmp_path):
    """Offscreen: the window shows the demo model, saves its picture and quits by itself."""
    home = tmp_path / "home"
    shot = tmp_path / "demo.png"
    result = run([fresh / "fsprec-gui", "--demo"], offline_env(home, FSPREC_SCREENSHOT=str(shot)),
                 timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (home / ".local" / "share" / "fsprec" / "fsprec" / "fsprec-demo" /
            "original.keras").is_file()
    from PIL import Image, ImageStat

    with Image.open(shot) as image:
        assert image.width > 400 and image.height > 300
        assert ImageStat.Stat(image.convert("L")).var[0] > 100, "the window looks blank"


def test_validate_without_a_backend_says_which_extra_to_install(fresh, tmp_path):
    home = tmp_path / "home"
    folder = tmp_path / "demo"
    made = run([fresh / "python", "-c",
                f"from fsprec.core.demo import write_demo; write_demo({str(folder)!r})"],
               offline_env(home))
    assert made.returncode == 0, made.stderr
    result = run([fresh / "fsprec", "validate", folder], offline_env(home), timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"faceswap-precision\[(tensorflow|torch|jax)\]", result.stderr), \
        result.stderr

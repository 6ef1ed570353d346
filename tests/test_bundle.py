"""The standalone app (``make bundle``, PyInstaller): built once, then started with no Python
environment under Xvfb on the demo model, screenshotted by itself and looked at.

The build takes about a minute and is skipped by make when nothing changed since the last one.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from fsprec.core.demo import write_demo
from fsprec.gui.desktop_entry import exec_arg
from test_gui_screenshot import XVFB, display  # noqa: F401 (the Xvfb fixture)

BUNDLE = REPO / "dist" / "fsprec"
LAUNCHER = BUNDLE / "fsprec-gui"
SHOTS = REPO / "artifacts" / "screenshots"
pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the bundle test is Linux's"),
    pytest.mark.skipif(importlib.util.find_spec("PyInstaller") is None,
                       reason="PyInstaller is not installed (the `package` extra)"),
    pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
    pytest.mark.skipif(Path(sys.prefix) != REPO / ".venv",
                       reason="`make bundle` builds with the repository's .venv; run the tests "
                              "with it (make test)"),
]


@pytest.fixture(scope="module")
def bundle() -> Path:
    """``make bundle`` (without reinstalling .venv even if pyproject.toml is newer)."""
    result = subprocess.run(["make", "-o", ".venv/.installed", "bundle"], cwd=REPO,
                            capture_output=True, text=True, timeout=1500, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert LAUNCHER.is_file() and os.access(LAUNCHER, os.X_OK)
    return BUNDLE


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's session with no Python set up: no PYTHON*, no venv, nothing of the test's."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local" / "share")}
    env.update(extra)
    return env


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def test_the_bundle_holds_no_keras_backend(bundle):
    found = sorted({path.name for path in (bundle / "_internal").iterdir()
                    if path.name.split(".")[0] in ("keras", "tensorflow", "torch", "jax")})
    assert not found, f"bundled: {found}"
    print(f"\nbundle size: {folder_size(bundle) / 2**20:.0f} MiB")


@pytest.mark.skipif(XVFB is None, reason="Xvfb is not installed (`make system-deps`)")
def test_the_bundled_app_shows_the_demo_model_on_a_real_display(bundle, display,  # noqa: F811
                                                                  tmp_path):
    from PIL import Image, ImageStat

    home = tmp_path / "home"
    shot = tmp_path / "fsprec-bundle.png"
    env = bare_env(home, DISPLAY=display, QT_QPA_PLATFORM="xcb", FSPREC_SCREENSHOT=str(shot))
    result = subprocess.run([LAUNCHER, "--demo"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (home / ".local" / "share" / "fsprec" / "fsprec" / "fsprec-demo" /
            "original.keras").is_file()
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SHOTS / shot.name)
    with Image.open(shot) as image:
        assert image.width > 400 and image.height > 300
        grey = image.convert("L")
        assert ImageStat.Stat(grey).var[0] > 100, "the screenshot looks blank"
        assert len(image.convert("RGB").getcolors(1 << 24)) > 50, "the screenshot looks blank"


def test_the_bundle_runs_fsprec_modules_for_the_validation_child(bundle, tmp_path):
    """The runner starts ``sys.executable -m fsprec...``: in the bundle that is the launcher,
    which runs the module (here the CLI) instead of opening a second window."""
    folder = write_demo(tmp_path / "demo")
    result = subprocess.run([LAUNCHER, "-m", "fsprec.core.cli", "inspect", "--json", folder],
                            env=bare_env(tmp_path), capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["precision"] == "float32"
    child = subprocess.run([LAUNCHER, "-m", "fsprec.core.validate.child", "--jsonl", folder],
                           env=bare_env(tmp_path), capture_output=True, text=True, timeout=120,
                           check=False)
    events = [json.loads(line) for line in child.stdout.splitlines()]
    assert events and events[-1]["event"] == "error", child.stdout + child.stderr
    assert "keras" in events[-1]["message"].lower()


@pytest.mark.skipif(importlib.util.find_spec("keras") is None,
                    reason="Keras is not installed (the `tensorflow` extra)")
def test_a_python_with_keras_validates_from_the_bundles_fsprec_source(bundle, tmp_path):
    """What the app needs of Faceswap's Python (or one with a backend installed): run the
    validation child from the fsprec source the bundle carries."""
    source = bundle / "_internal" / "fsprec-python"
    env = {**os.environ, "PYTHONPATH": str(source), "CUDA_VISIBLE_DEVICES": "",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    probe = "import fsprec.core; print(fsprec.core.__file__)"
    where = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert Path(where.stdout.strip()).is_relative_to(source), where.stdout + where.stderr
    folder = write_demo(tmp_path / "demo")
    child = subprocess.run([sys.executable, "-m", "fsprec.core.validate.child", "--jsonl", folder,
                            "--batch", "1", "--steps", "0", "--no-speed", "--no-autopin"],
                           env=env, capture_output=True, text=True, timeout=300, check=False)
    result = json.loads(child.stdout.splitlines()[-1])
    assert result["event"] == "result", child.stdout[-2000:] + child.stderr[-2000:]
    assert result["result"]["verdict"]["status"] == "safe"


def test_the_bundles_menu_entry_starts_the_bundle(bundle, tmp_path):
    result = subprocess.run([LAUNCHER, "--install-desktop-entry"], env=bare_env(tmp_path),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    share = tmp_path / ".local" / "share"
    entry = (share / "applications" / "fsprec.desktop").read_text("utf-8").splitlines()
    assert f"Exec={exec_arg(str(LAUNCHER))} %F" in entry  # the path, quoted if need be
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / "fsprec.svg").is_file()

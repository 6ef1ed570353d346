"""One real window: ``fsprec-gui --demo`` under Xvfb, screenshotted by the app itself."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, HAVE_FIXTURES, REPO, copy_tree

XVFB = shutil.which("Xvfb")
SHOTS = REPO / "artifacts" / "screenshots"
pytestmark = pytest.mark.skipif(
    XVFB is None, reason="Xvfb is not installed (`make system-deps` installs it with apt)")


@pytest.fixture
def display():
    """A private X display (Xvfb picks a free number and reports it)."""
    read, write = os.pipe()
    server = subprocess.Popen([XVFB, "-displayfd", str(write), "-screen", "0", "1440x900x24",
                               "-nolisten", "tcp"], pass_fds=(write,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.skip("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def gui_command() -> list[str]:
    script = Path(sys.executable).with_name("fsprec-gui")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fsprec.gui.app"]


def distinct_colours(path: Path) -> int:
    from PySide6.QtGui import QImage

    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not an image"
    step = 4
    return len({image.pixel(x, y) for x in range(0, image.width(), step)
                for y in range(0, image.height(), step)})


def test_demo_window_on_a_real_display(display, tmp_path, qapp):
    home = tmp_path / "home"
    config = home / ".config" / "fsprec"
    config.mkdir(parents=True)
    if HAVE_FIXTURES:  # let the model browser list a few real models beside the demo
        models = tmp_path / "models"
        for name in ("fs3/original-fp32-backup", "fs3/original-mixed", "fs3/phaze_a-fp32",
                     "fs2/lightweight-fp32"):
            copy_tree(FIXTURES / name, models / name.split("/")[1])
        (config / "fsprec.conf").write_text(f"[browser]\nroot={models}\n")
    shot = tmp_path / "fsprec-demo.png"
    env = {key: value for key, value in os.environ.items() if not key.startswith("QT_")}
    env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", HOME=str(home),
               XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), FSPREC_SCREENSHOT=str(shot))
    result = subprocess.run([*gui_command(), "--demo"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert shot.is_file(), result.stdout + result.stderr
    SHOTS.mkdir(parents=True, exist_ok=True)
    kept = SHOTS / shot.name
    shutil.copyfile(shot, kept)
    print(f"\nscreenshot of the real window: {kept}")
    assert (home / ".local" / "share" / "fsprec" / "fsprec" / "fsprec-demo" /
            "original.keras").is_file()
    assert distinct_colours(shot) > 50, "the screenshot looks blank"

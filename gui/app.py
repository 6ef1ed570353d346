"""``fsprec-gui``: start the desktop app.

``fsprec-gui [--demo] [MODEL_FOLDER ...]`` (the first folder is opened; a desktop entry passes
every folder dropped on it). ``--install-desktop-entry`` / ``--remove-desktop-entry`` add or
remove the menu entry (``desktop_entry``) and exit without a window. The window appears
before anything heavy is imported (Keras is never imported by the window itself). With
``FSPREC_SCREENSHOT=path.png`` set, the app saves a screenshot of its window once the model is
shown, then quits (used by the real-window tests and for the README picture).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from fsprec.core import __version__

from .main_window import MainWindow
from .theme import app_icon

APP_NAME = "fsprec"
SCREENSHOT_ENV = "FSPREC_SCREENSHOT"
SCREENSHOT_DELAY_MS = 700


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line: ``--demo``, model folders and the menu-entry flags."""
    parser = argparse.ArgumentParser(
        prog="fsprec-gui", description="Inspect Faceswap models and switch their precision.")
    parser.add_argument("folder", nargs="?", type=Path, help="a Faceswap model folder to open")
    parser.add_argument("dropped", nargs="*", type=Path, help=argparse.SUPPRESS)  # more folders
    parser.add_argument("--demo", action="store_true",
                        help="open the demo model (written on first use)")
    entry = parser.add_mutually_exclusive_group()
    entry.add_argument("--install-desktop-entry", action="store_true",
                       help="add fsprec to this user's applications menu (Linux) or Start menu "
                            "(Windows), then exit")
    entry.add_argument("--remove-desktop-entry", action="store_true",
                       help="remove that menu entry, then exit")
    parser.add_argument("--version", action="version", version=f"fsprec {__version__}")
    return parser.parse_args(argv)


def create_app(argv: Sequence[str]) -> QApplication:
    """The QApplication with the names QSettings and QStandardPaths use."""
    app = QApplication.instance() or QApplication(list(argv))
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_NAME)
    app.setWindowIcon(app_icon())
    return app  # type: ignore[return-value]


def save_screenshot(window: MainWindow, path: Path) -> bool:
    """Grab the window as the screen shows it (the whole screen cropped to the window)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    shot = screen.grabWindow(0)
    frame = window.frameGeometry().translated(-screen.geometry().topLeft())
    if not shot.isNull():
        shot = shot.copy(frame)
    if shot.isNull():
        shot = window.grab()
    path.parent.mkdir(parents=True, exist_ok=True)
    return shot.save(str(path))


def _screenshot_when_shown(window: MainWindow, path: Path) -> None:
    """Take the screenshot once the model and its parameter counts are on screen, then quit."""
    def shoot() -> None:
        ok = save_screenshot(window, path)
        print(f"screenshot {'saved to' if ok else 'FAILED:'} {path}", flush=True)
        window.close()
        QApplication.exit(0 if ok else 1)

    window.paramsShown.connect(lambda: QTimer.singleShot(SCREENSHOT_DELAY_MS, shoot))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns its exit code."""
    argv = list(sys.argv if argv is None else argv)
    args = parse_args(argv[1:])
    if args.install_desktop_entry or args.remove_desktop_entry:
        from .desktop_entry import run_flag

        return run_flag(removing=args.remove_desktop_entry)
    app = create_app(argv)
    window = MainWindow()
    screenshot = os.environ.get(SCREENSHOT_ENV)
    if screenshot:
        _screenshot_when_shown(window, Path(screenshot))
    window.show()
    if args.folder is not None:
        window.open_path(args.folder)
    elif args.demo:
        window.open_demo()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())

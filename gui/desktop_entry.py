"""A menu entry for fsprec: a ``.desktop`` file and icon on Linux, a Start-menu shortcut on
Windows. Nothing to do on macOS, where the app bundle is the entry.

The entry starts the fsprec that installed it (the bundled executable, or the ``fsprec-gui``
script of this Python environment), so it works without fsprec on ``PATH``. On Linux it opens
the folders dropped on it (``%F``) and offers itself under "Open with" for folders
(``MimeType=inode/directory``) without becoming the default for them.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from fsprec.core.atomic import write_atomic

APP_ID = "fsprec"
GUI_MODULE = "fsprec.gui.app"
# Characters that oblige a quoted argument in an Exec key (Desktop Entry Specification).
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
# The PowerShell that writes a Start-menu shortcut; its values come in environment variables,
# so no path needs quoting for PowerShell.
_SHORTCUT_PS = ("$s = (New-Object -ComObject WScript.Shell).CreateShortcut($env:FSPREC_LNK); "
                "$s.TargetPath = $env:FSPREC_TARGET; $s.Arguments = $env:FSPREC_ARGS; "
                "$s.IconLocation = $env:FSPREC_ICON; $s.Description = 'fsprec'; $s.Save()")

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class Outcome:
    """What an install or removal did: a sentence for the user and the files it touched."""

    message: str
    paths: tuple[Path, ...] = ()


def launcher(executable: str = sys.executable, frozen: bool | None = None) -> list[str]:
    """The command that starts this fsprec's window: the bundle's executable, else the
    ``fsprec-gui`` script pip installed for this Python (beside it, or in its scripts folder
    or the user's), else this Python with ``-m fsprec.gui.app``."""
    if getattr(sys, "frozen", False) if frozen is None else frozen:
        return [executable]
    folders = [Path(executable).parent, Path(sysconfig.get_path("scripts")),
               Path(sysconfig.get_path("scripts", f"{os.name}_user"))]
    for folder in folders:
        for name in ("fsprec-gui", "fsprec-gui.exe"):
            if (folder / name).is_file():
                return [str(folder / name)]
    return [executable, "-m", GUI_MODULE]


def exec_arg(arg: str) -> str:
    """One argument of an Exec key, quoted and escaped as the specification asks."""
    arg = arg.replace("%", "%%")
    if any(char in _RESERVED for char in arg):
        arg = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
    return arg.replace("\\", "\\\\")  # the string-value escape of the .desktop format


def data_home(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when it is unset or not absolute."""
    value = env.get("XDG_DATA_HOME", "")
    if value and Path(value).is_absolute():
        return Path(value)
    return Path(env.get("HOME") or Path.home()) / ".local" / "share"


def desktop_file(command: Sequence[str]) -> str:
    """The shipped ``fsprec.desktop`` with Exec (and TryExec) set to ``command``."""
    template = files("fsprec.resources").joinpath(f"{APP_ID}.desktop").read_text("utf-8")
    exec_line = " ".join(exec_arg(arg) for arg in command) + " %F"
    lines = [line for line in template.splitlines() if not line.startswith("TryExec=")]
    lines = [f"Exec={exec_line}" if line.startswith("Exec=") else line for line in lines]
    try_exec = command[0].replace("\\", "\\\\")  # a plain string value, not an Exec argument
    lines.insert(lines.index(f"Exec={exec_line}"), f"TryExec={try_exec}")
    return "\n".join(lines) + "\n"


def _xdg_paths(env: Mapping[str, str]) -> tuple[Path, Path]:
    share = data_home(env)
    return (share / "applications" / f"{APP_ID}.desktop",
            share / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg")


def _start_menu_shortcut(env: Mapping[str, str]) -> Path:
    appdata = env.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
    return (Path(appdata) / "Microsoft" / "Windows" / "Start Menu" / "Programs"
            / f"{APP_ID}.lnk")


def _refresh_menu(applications: Path, run: Runner) -> None:
    """Tell the desktop about the new entry when the tool for it is there (best effort)."""
    tool = shutil.which("update-desktop-database")
    if tool:
        run([tool, "-q", str(applications)], check=False, capture_output=True)


def install(platform: str = sys.platform, env: Mapping[str, str] = os.environ,
            command: Sequence[str] | None = None, run: Runner = subprocess.run) -> Outcome:
    """Install the menu entry for this user; raises ``OSError`` when a file cannot be written."""
    command = list(command or launcher())
    if platform.startswith("win"):
        shortcut = _start_menu_shortcut(env)
        shortcut.parent.mkdir(parents=True, exist_ok=True)
        icon = files("fsprec.resources").joinpath(f"{APP_ID}.ico")
        values = {"FSPREC_LNK": str(shortcut), "FSPREC_TARGET": command[0],
                  "FSPREC_ARGS": subprocess.list2cmdline(command[1:]), "FSPREC_ICON": str(icon)}
        result = run(["powershell", "-NoProfile", "-NonInteractive", "-Command", _SHORTCUT_PS],
                     env={**env, **values}, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise OSError(f"Could not write the Start-menu shortcut {shortcut}: "
                          f"{(result.stderr or '').strip() or 'PowerShell failed'}")
        return Outcome(f"Added fsprec to the Start menu ({shortcut}).", (shortcut,))
    if platform == "darwin":
        return Outcome("Nothing to install on macOS: drag fsprec.app into Applications to have "
                       "it in Launchpad and the Dock.")
    entry, icon = _xdg_paths(env)
    icon.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(icon, files("fsprec.resources").joinpath(f"{APP_ID}.svg").read_bytes())
    entry.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(entry, desktop_file(command).encode("utf-8"))
    _refresh_menu(entry.parent, run)
    return Outcome(f"Added fsprec to the applications menu ({entry}); it also opens a folder "
                   "dropped on it.", (entry, icon))


def remove(platform: str = sys.platform, env: Mapping[str, str] = os.environ) -> Outcome:
    """Remove the menu entry this user installed (nothing else)."""
    if platform.startswith("win"):
        paths: tuple[Path, ...] = (_start_menu_shortcut(env),)
    elif platform == "darwin":
        return Outcome("Nothing to remove on macOS: move fsprec.app to the Bin to uninstall it.")
    else:
        paths = _xdg_paths(env)
    removed = tuple(path for path in paths if path.is_file())
    for path in removed:
        path.unlink()
    if not removed:
        return Outcome("There was no fsprec menu entry to remove.")
    return Outcome("Removed " + ", ".join(str(path) for path in removed) + ".", removed)


def run_flag(removing: bool = False) -> int:
    """``fsprec-gui --install-desktop-entry`` (or ``--remove-desktop-entry`` when
    ``removing``): one sentence on stdout and exit 0, or on stderr and exit 2."""
    try:
        outcome = remove() if removing else install()
    except OSError as err:
        print(f"fsprec-gui: {err}", file=sys.stderr)
        return 2
    print(outcome.message)
    return 0

"""``fsprec-gui --install-desktop-entry``: the menu entry in a temporary XDG home, the folder
dropped on it, its removal, and the Windows and macOS branches as far as Linux can test them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from fsprec.core.demo import write_demo
from fsprec.gui import desktop_entry
from fsprec.gui.desktop_entry import exec_arg, install, remove

GUI = [sys.executable, "-m", "fsprec.gui.app"]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A user with nothing installed: HOME and the XDG folders inside ``home``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("QT_", "XDG_", "FSPREC_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), QT_QPA_PLATFORM="offscreen")
    env.update(extra)
    return env


def run_gui(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*GUI, *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def entry_values(path: Path) -> dict[str, str]:
    lines = path.read_text("utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if "=" in line)


def exec_words(value: str) -> list[str]:
    """Split an Exec value as the Desktop Entry Specification says: undo the string-value
    escape, then split into words; inside double quotes a backslash before one of the four
    characters double quote, backquote, dollar and backslash stands for that character."""
    value = value.replace("\\\\", "\\")
    words, word, quoted, i = [], "", False, 0
    while i < len(value):
        char = value[i]
        if quoted and char == "\\" and value[i + 1:i + 2] in ('"', "`", "$", "\\"):
            word, i = word + value[i + 1], i + 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            words.append(word)
            word = ""
        else:
            word += char
        i += 1
    assert not quoted, value
    return [w for w in [*words, word] if w]


def exec_command(exec_value: str, folders: list[Path]) -> list[str]:
    """What a desktop runs for an Exec value when ``folders`` are dropped on the entry."""
    words = exec_words(exec_value)
    assert words.count("%F") == 1, exec_value
    at = words.index("%F")
    plain = [w.replace("%%", "%") for w in words]
    return plain[:at] + [str(f) for f in folders] + plain[at + 1:]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_install_writes_the_entry_and_icon_into_xdg_data_home(home):
    result = run_gui(["--install-desktop-entry"], clean_env(home))
    assert result.returncode == 0, result.stderr
    share = home / ".local" / "share"
    entry = share / "applications" / "fsprec.desktop"
    icon = share / "icons" / "hicolor" / "scalable" / "apps" / "fsprec.svg"
    assert str(entry) in result.stdout
    assert icon.read_bytes() == files("fsprec.resources").joinpath("fsprec.svg").read_bytes()
    values = entry_values(entry)
    assert values["Icon"] == "fsprec" and values["Type"] == "Application"
    assert values["MimeType"] == "inode/directory;"
    assert values["Exec"].endswith(" %F")
    assert not (home / ".config" / "fsprec").exists(), "installing opened the app"


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-validate is not installed (desktop-file-utils)")
def test_installed_entry_passes_desktop_file_validate(home):
    assert run_gui(["--install-desktop-entry"], clean_env(home)).returncode == 0
    entry = home / ".local" / "share" / "applications" / "fsprec.desktop"
    check = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_the_entry_opens_a_folder_dropped_on_it(home, tmp_path):
    """The installed Exec line, run as a desktop runs it, opens the dropped model folder."""
    assert run_gui(["--install-desktop-entry"], clean_env(home)).returncode == 0
    entry = home / ".local" / "share" / "applications" / "fsprec.desktop"
    folder = write_demo(tmp_path / "my models" / "original 100% A")
    shot = tmp_path / "shot.png"
    command = exec_command(entry_values(entry)["Exec"], [folder])
    result = subprocess.run(command, env=clean_env(home, FSPREC_SCREENSHOT=str(shot)),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert shot.is_file(), "the window never showed a model"
    recent = (home / ".config" / "fsprec" / "fsprec.conf").read_text("utf-8")
    assert "original 100% A" in recent, "the dropped folder is not the one that was opened"


def test_exec_arguments_survive_spaces_quotes_and_percent_signs():
    command = ['/opt/my apps/fs"prec 100%/fsprec-gui', "--flag=$HOME", r"C:\fsprec"]
    value = " ".join(exec_arg(arg) for arg in command) + " %F"
    assert exec_command(value, [Path("/m/one"), Path("/m/two")]) == [*command, "/m/one",
                                                                     "/m/two"]


def test_remove_takes_away_what_install_wrote_and_says_so_when_nothing_is_there(home):
    env = clean_env(home)
    assert run_gui(["--install-desktop-entry"], env).returncode == 0
    removed = run_gui(["--remove-desktop-entry"], env)
    assert removed.returncode == 0 and "Removed" in removed.stdout
    share = home / ".local" / "share"
    assert not (share / "applications" / "fsprec.desktop").exists()
    assert not (share / "icons" / "hicolor" / "scalable" / "apps" / "fsprec.svg").exists()
    again = run_gui(["--remove-desktop-entry"], env)
    assert again.returncode == 0 and "no fsprec menu entry" in again.stdout


def test_an_unwritable_data_home_is_one_sentence_and_exit_2(home):
    blocker = home / "not-a-folder"
    blocker.write_text("")
    result = run_gui(["--install-desktop-entry"], clean_env(home, XDG_DATA_HOME=str(blocker)))
    assert result.returncode == 2
    assert result.stderr.startswith("fsprec-gui: ") and "Traceback" not in result.stderr


def test_the_entry_starts_this_environments_fsprec_gui():
    script = Path(sys.executable).with_name("fsprec-gui")
    expected = [str(script)] if script.is_file() else [sys.executable, "-m", "fsprec.gui.app"]
    assert desktop_entry.launcher() == expected
    assert desktop_entry.launcher("/opt/fsprec/fsprec-gui", frozen=True) == [
        "/opt/fsprec/fsprec-gui"]


def test_windows_gets_a_start_menu_shortcut_made_by_powershell(tmp_path):
    calls = []

    def powershell(argv, **kwargs):
        calls.append((argv, kwargs["env"]))
        return subprocess.CompletedProcess(argv, 0, "", "")

    target = r"C:\Program Files\fsprec\fsprec-gui.exe"
    outcome = install("win32", {"APPDATA": str(tmp_path)}, [target, "--demo"], run=powershell)
    programs = tmp_path / "Microsoft" / "Windows" / "Start Menu" / "Programs"
    assert programs.is_dir() and outcome.paths == (programs / "fsprec.lnk",)
    assert "Start menu" in outcome.message
    (argv, env), = calls
    assert argv[0] == "powershell" and "CreateShortcut" in argv[-1]
    assert env["FSPREC_LNK"] == str(programs / "fsprec.lnk")
    assert env["FSPREC_TARGET"] == target and env["FSPREC_ARGS"] == "--demo"
    assert env["FSPREC_ICON"].endswith("fsprec.ico") and Path(env["FSPREC_ICON"]).is_file()


def test_a_failed_shortcut_is_an_error_with_powershells_reason(tmp_path):
    def failing(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 1, "", "Access is denied.")

    with pytest.raises(OSError, match="Access is denied"):
        install("win32", {"APPDATA": str(tmp_path)}, ["fsprec-gui.exe"], run=failing)


def test_windows_removal_deletes_the_shortcut(tmp_path):
    shortcut = tmp_path / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "fsprec.lnk"
    shortcut.parent.mkdir(parents=True)
    shortcut.write_bytes(b"lnk")
    assert remove("win32", {"APPDATA": str(tmp_path)}).paths == (shortcut,)
    assert not shortcut.exists()


def test_macos_is_a_no_op_that_says_so(tmp_path):
    outcome = install("darwin", {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)},
                      ["/Applications/fsprec.app/Contents/MacOS/fsprec-gui"])
    assert outcome.paths == () and "Nothing to install on macOS" in outcome.message
    assert not any(tmp_path.iterdir())

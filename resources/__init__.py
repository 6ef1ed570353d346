"""Icons, the .desktop file and other data shipped with fsprec."""

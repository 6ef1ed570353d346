"""fsprec desktop app (PySide6 only; every file operation goes through fsprec.core)."""

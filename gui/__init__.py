"""The PySide6 menu-bar app: a thin skin over `vaultserver` (its runtime and services), never the reverse."""

"""The PySide6 menu-bar app: a thin skin over `vaultserver` (runtime and services). Never the other way round."""

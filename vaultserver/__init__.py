"""Vault's server core: storage, crypto, ingest pipeline and HTTP API. Never imports Qt."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vault-media")
except PackageNotFoundError:  # running from a frozen build or a bare checkout
    __version__ = "0.1.0"

APP_NAME = "Vault"

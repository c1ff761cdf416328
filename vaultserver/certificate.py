"""The HTTPS certificate as the front ends present it: a plain value read from the files Vault serves.

The GUI's Network tab and `cert show` both show this; the runtime hands it out (and re-exports it), so the
front ends never read certificate files themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vaultserver.crypto.tls import TlsFiles, describe


@dataclass(frozen=True)
class CertificateDetails:
    """The HTTPS certificate as the Network tab and `cert show` present it."""

    subject: str
    issuer: str
    not_after: datetime
    names: tuple[str, ...]
    sha256: str
    cert_file: Path
    ca_file: Path  # what a device installs to trust Vault
    ca_notice: str | None = None  # the CA was replaced lately: devices must trust the new one

    @classmethod
    def of(cls, files: TlsFiles) -> CertificateDetails:
        info = describe(files.cert)
        return cls(info.subject, info.issuer, info.not_after, tuple(info.names), info.sha256, files.cert,
                   files.ca, info.ca_notice)

"""The join string: everything a worker machine needs to reach one Vault, in one line to copy.

`vault-worker:` followed by base64url (no padding) of compact JSON `{"v": 1, "url", "pin", "token"}`. The
pin is the SHA-256 of Vault's CA certificate (DER), not of the server certificate: the server certificate is
re-issued when the Mac's LAN address changes, the CA is not, so a worker keeps working across that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from vaultserver.errors import ValidationError

PREFIX = "vault-worker:"
VERSION = 1
_PIN = re.compile(r"[0-9a-f]{64}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,200}")
MALFORMED = ("This is not a whole join string. Copy the last line `vaultserver worker-token create` printed "
             "(it starts with vault-worker:) again, in one piece")


def ca_pin(ca_pem: bytes) -> str:
    """The pin of a CA certificate: SHA-256 (lower-case hex) of its DER form."""
    try:
        der = x509.load_pem_x509_certificate(ca_pem).public_bytes(Encoding.DER)
    except ValueError:
        raise ValidationError("That is not a PEM certificate") from None
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class JoinString:
    url: str  # https://host:port/ of the Vault, ending in a slash
    ca_pin: str  # ca_pin() of Vault's CA certificate
    token: str  # the worker's secret

    def encode(self) -> str:
        body = json.dumps({"v": VERSION, "url": self.url, "pin": self.ca_pin, "token": self.token},
                          separators=(",", ":")).encode()
        return PREFIX + base64.urlsafe_b64encode(body).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> JoinString:
        """Read a join string as pasted (surrounding blanks allowed); anything else: ValidationError."""
        text = text.strip()
        if not text.startswith(PREFIX):
            raise ValidationError(MALFORMED)
        payload = text[len(PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            fields = json.loads(raw)
        except (binascii.Error, ValueError):
            raise ValidationError(MALFORMED) from None
        if not isinstance(fields, dict):
            raise ValidationError(MALFORMED)
        if fields.get("v") != VERSION:
            raise ValidationError("This join string was made by another version of Vault: make a new one on "
                                  "the server with `vaultserver worker-token create NAME`")
        url, pin, token = fields.get("url"), fields.get("pin"), fields.get("token")
        if not (isinstance(url, str) and _is_https_base(url)):
            raise ValidationError(MALFORMED, details={"field": "url"})
        if not (isinstance(pin, str) and _PIN.fullmatch(pin)):
            raise ValidationError(MALFORMED, details={"field": "pin"})
        if not (isinstance(token, str) and _TOKEN.fullmatch(token)):
            raise ValidationError(MALFORMED, details={"field": "token"})
        return cls(url, pin, token)


def _is_https_base(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and url.endswith("/")

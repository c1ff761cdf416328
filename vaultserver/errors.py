"""The one exception family. Services raise it; the API and CLI render it, the GUI shows its message."""

from __future__ import annotations

from typing import Any


class VaultError(Exception):
    """An error a user can act on, with a stable code from the documented list."""

    code = "SYSTEM_001"
    status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code
        if status:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationError(VaultError):
    code = "VALIDATION_001"
    status = 400


class NotFoundError(VaultError):
    code = "MEDIA_001"
    status = 404


class MediaError(VaultError):
    """Input that can never become a library item (corrupt, truncated, not media)."""

    code = "MEDIA_002"
    status = 422


class IntegrityError(VaultError):
    """Encrypted data failed authentication: tampered, truncated or the wrong key."""

    code = "SYSTEM_002"
    status = 500


class ConfigurationError(VaultError):
    code = "SYSTEM_001"
    status = 500

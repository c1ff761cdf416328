"""Who a request comes from and what a sign-in hands out: the values the session checks produce.

Kept apart from `sessions.py` (which makes and checks them) because every front end passes them around.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vaultserver.errors import VaultError


class AuthError(VaultError):
    status = 401


def auth_error(code: str, message: str) -> AuthError:
    return AuthError(message, code=code)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    token_type: str = "Bearer"


@dataclass(frozen=True)
class Principal:
    """Who is making this request: the checked result of a valid token and a live session."""

    user_id: str
    username: str
    role: str
    session_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class SessionView:
    id: str
    user_id: str
    username: str
    device_name: str
    device_type: str
    ip_address: str
    user_agent: str
    created_at: datetime
    last_activity_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None

    def to_dict(self, current_session: str | None = None) -> dict[str, Any]:
        data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}
        data["current"] = self.id == current_session
        return data

"""The one HTTPS client for talking to a Vault: the self-check, the benchmark, the tests and the app use it.

Vault's certificate is signed by Vault's own CA, so the client trusts that CA file instead of the system's.
It speaks JSON, sends the access token as `Authorization: Bearer`, and hands back a `Reply` whatever the
status (an error answer is data to look at, not an exception). Only the standard library is used, so the
frozen app and the benchmark need nothing more.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import ssl
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Reply:
    """One answer: status, headers (`get`, `get_all`, `[name]`), the raw body, and its JSON if it is JSON."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        """The parsed body when the server said it is JSON, else None."""
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return None
        return jsonlib.loads(self.body)

    @property
    def code(self) -> str | None:
        """The error code of an error answer (`AUTH_001`, `SEC_001`, …), None otherwise."""
        parsed = self.json()
        error = parsed.get("error") if isinstance(parsed, dict) else None
        return error.get("code") if isinstance(error, dict) else None


def client_context(ca: Path | str | None, check_hostname: bool = True) -> ssl.SSLContext:
    """A TLS context trusting Vault's CA file (None: the system's trust store)."""
    context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    context.check_hostname = check_hostname
    return context


class HttpsClient:
    """Requests to one Vault at `host:port`; a fresh connection each time, so it is safe to share.

    `login` keeps the access token it gets and later requests send it; `token=` overrides it for one
    request (an empty string sends none). `source` binds the local address (to appear as another peer).
    `context`: a TLS context made elsewhere (a remote worker's, trusting only the pinned CA) instead of one
    trusting `ca`.
    """

    def __init__(self, port: int, ca: Path | str | None, host: str = "127.0.0.1", *,
                 source: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 check_hostname: bool = True, context: ssl.SSLContext | None = None) -> None:
        self.port, self.host, self.ca = port, host, ca
        self.source, self.timeout, self.check_hostname = source, timeout, check_hostname
        self.token: str | None = None
        self._given_context = context

    @cached_property
    def context(self) -> ssl.SSLContext:
        return self._given_context or client_context(self.ca, self.check_hostname)

    def request(self, method: str, path: str, json: Any = None, *, headers: dict[str, str] | None = None,
                token: str | None = None) -> Reply:
        """Send `json` (if not None) as the body and the bearer token (if any); return the answer."""
        all_headers = dict(headers or {})
        bearer = self.token if token is None else token
        if bearer:
            all_headers["Authorization"] = f"Bearer {bearer}"
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers["Content-Type"] = "application/json"
        return self.send(method, path, body, all_headers)

    def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        """One exchange on its own connection, exactly as given."""
        connection = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=self.timeout,
            source_address=(self.source, 0) if self.source else None)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def login(self, username: str, password: str, device: str | None = None) -> Reply:
        """Sign in; on success later requests carry the new access token."""
        body = {"username": username, "password": password}
        if device is not None:
            body["device_name"] = device
        reply = self.request("POST", "/api/auth/login", body, token="")
        if reply.status == 200:
            self.token = reply.json()["access_token"]
        return reply

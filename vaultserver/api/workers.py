"""Remote workers over HTTP: the CA certificate they pin, who a worker is, and the owner's worker tokens.

`GET /api/workers/ca.pem` needs no sign-in (a worker fetches it before it trusts anything; the network gate
still applies), and hands out only the public CA certificate. Routes that serve workers (leasing a job,
fetching its source, uploads, the commit) authenticate with `current_worker()` or `@require_worker`: the
worker's token as `Authorization: Bearer`, never a cookie, never a user's access token. The admin routes
(`/api/admin/workers`) create, list and revoke the tokens, as `vaultserver worker-token` does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from quart import Blueprint, Response, g, jsonify, request

from vaultserver.api.context import client_ip, json_body, require_auth, run, services, text_field
from vaultserver.services import Services
from vaultserver.services.audit import AuditEvent
from vaultserver.services.principal import AuthError
from vaultserver.services.workers import WorkerView, served_ca_pem

bp = Blueprint("workers", __name__)


@bp.get("/api/workers/ca.pem")
async def ca_certificate() -> Response:
    pem = await run(served_ca_pem, services().paths)
    return Response(pem, content_type="application/x-pem-file")


# --- who the worker is ----------------------------------------------------------------------------------


def worker_token() -> str:
    """The bearer token of this request (workers never use cookies); AuthError AUTH_002 without one."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else ""
    if not token:
        raise AuthError("Send the worker's token as Authorization: Bearer", code="AUTH_002")
    return token


def _checked_worker(s: Services, token: str, address: str, path: str) -> WorkerView:
    try:
        worker = s.workers.authenticate(token)
    except AuthError as exc:
        s.audit.record_refusal(AuditEvent("worker_refused", "denied", ip_address=address, resource=path,
                                          details={"reason": exc.message}))
        raise
    s.workers.seen(worker.name, address=address)
    return worker


async def current_worker() -> WorkerView:
    """The worker making this request, checked once per request (then kept in `g.worker`).

    Unknown or revoked token: AuthError 401 AUTH_001 (no token: AUTH_002), and the refusal is audited
    (folded per address and minute). A good one records that the worker was seen, from which address
    (`WorkerService.seen`); routes that learn more (its encoders, its job and progress) call `seen` and
    `working` themselves.
    """
    known: WorkerView | None = g.get("worker")
    if known is not None:
        return known
    worker = await run(_checked_worker, services(), worker_token(), client_ip(), request.path[:256])
    g.worker = worker
    return worker


def require_worker(view: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A route only workers may call; the view reads who with `await current_worker()` (no second check)."""
    @wraps(view)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        await current_worker()
        return await view(*args, **kwargs)

    return guarded


# --- the owner's worker tokens ----------------------------------------------------------------------------


@bp.get("/api/admin/workers")
@require_auth(admin=True)
async def list_workers() -> Response:
    return jsonify({"workers": [w.to_dict() for w in await run(services().workers.list)]})


@bp.post("/api/admin/workers")
@require_auth(admin=True)
async def create_worker() -> tuple[Response, int]:
    """201 `{"name", "join_string"}`: the only time the token is shown."""
    name = text_field(await json_body(), "name", limit=64)
    created = await run(services().add_worker, name, actor=g.principal.username)
    return jsonify(created.to_dict()), 201


@bp.delete("/api/admin/workers/<name>")
@require_auth(admin=True)
async def revoke_worker(name: str) -> tuple[str, int]:
    await run(services().revoke_worker, name, actor=g.principal.username)
    return "", 204

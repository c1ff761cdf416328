"""Administration over HTTP (admins only): users, everyone's sessions, the audit log, the queue, settings.

Settings changed over the network go through `SettingsService.update_from_network`, which holds the checks
only a remote change meets (local-only settings, a listen address this machine has).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from quart import Blueprint, Response, g, jsonify, request

from vaultserver.api.context import json_body, require_auth, run, services, text_field
from vaultserver.config import Settings
from vaultserver.errors import ValidationError
from vaultserver.services.account_expiry import expiry_date

bp = Blueprint("admin", __name__, url_prefix="/api/admin")
_SWITCHES = ("is_active", "can_upload", "can_download")  # an account's yes/no fields an admin may set


@bp.get("/users")
@require_auth(admin=True)
async def users() -> Response:
    return jsonify({"users": [u.to_dict() for u in await run(services().users.list)]})


@bp.post("/users")
@require_auth(admin=True)
async def create_user() -> tuple[Response, int]:
    body = await json_body()
    role = body.get("role", "member")
    user = await run(
        services().users.create,
        text_field(body, "username", limit=64),
        text_field(body, "password", limit=1024),
        role if isinstance(role, str) else "",
        g.principal.username,
        _expiry(body.get("expires_at")),
    )
    return jsonify({"user": user.to_dict()}), 201


@bp.patch("/users/<user_id>")
@require_auth(admin=True)
async def update_user(user_id: str) -> Response:
    body = await json_body()
    changes: dict[str, Any] = {k: body[k] for k in ("password", "role", *_SWITCHES) if k in body}
    for switch in _SWITCHES:
        if switch in changes and not isinstance(changes[switch], bool):
            raise ValidationError(f"'{switch}' must be true or false", details={"field": switch})
    if "expires_at" in body:
        changes["expires_at"] = _expiry(body["expires_at"])
    user = await run(services().change_user, user_id, actor=g.principal, **changes)
    return jsonify({"user": user.to_dict()})


def _expiry(value: Any) -> date | None:
    """`expires_at` as sent: "YYYY-MM-DD" (the account stops as that day begins, this machine's time) or
    null (never)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("'expires_at' must be a date as YYYY-MM-DD, or null for never",
                              details={"field": "expires_at"})
    return expiry_date(value)


@bp.delete("/users/<user_id>")
@require_auth(admin=True)
async def delete_user(user_id: str) -> Response:
    if user_id == g.principal.user_id:
        raise ValidationError("You cannot delete your own account while signed in with it")
    await run(services().users.delete, user_id, g.principal.username)
    return jsonify({"ok": True})


@bp.get("/sessions")
@require_auth(admin=True)
async def all_sessions() -> Response:
    sessions = await run(services().sessions.list, request.args.get("user_id"))
    return jsonify({"sessions": [s.to_dict(g.principal.session_id) for s in sessions]})


@bp.delete("/sessions/<session_id>")
@require_auth(admin=True)
async def end_session(session_id: str) -> Response:
    await run(services().sessions.revoke, session_id, "signed_out_by_admin", g.principal)
    return jsonify({"ok": True})


@bp.get("/audit")
@require_auth(admin=True)
async def audit() -> Response:
    try:
        before = int(request.args["cursor"]) if "cursor" in request.args else None
        limit = min(max(int(request.args.get("limit", 100)), 1), 500)
    except ValueError:
        raise ValidationError("'cursor' and 'limit' must be whole numbers") from None
    entries = await run(
        services().audit.page,
        limit=limit,
        before_id=before,
        event=request.args.get("event") or None,
        username=request.args.get("username") or None,
    )
    return jsonify(
        {
            "entries": [e.to_dict() for e in entries],
            "next_cursor": entries[-1].id if len(entries) == limit else None,
        }
    )


@bp.get("/queue")
@require_auth(admin=True)
async def queue() -> Response:
    s = services()
    jobs, counts = await run(s.queue.snapshot), await run(s.queue.counts)
    return jsonify({"counts": counts.__dict__, "jobs": [j.to_dict() for j in jobs]})


@bp.get("/settings")
@require_auth(admin=True)
async def get_settings() -> Response:
    return jsonify({"settings": services().settings.current.model_dump(), "schema": _schema()})


@bp.patch("/settings")
@require_auth(admin=True)
async def change_settings() -> Response:
    body = await json_body()
    updated = await run(services().settings.update_from_network, **body)
    return jsonify({"settings": updated.model_dump()})


def _schema() -> dict[str, Any]:
    properties: dict[str, Any] = Settings.model_json_schema()["properties"]
    return properties

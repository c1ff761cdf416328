"""A user's own signed-in devices: list them, sign one out, or sign out everywhere else."""

from __future__ import annotations

from quart import Blueprint, Response, g, jsonify

from vaultserver.api.context import require_auth, run, services

bp = Blueprint("sessions", __name__, url_prefix="/api/sessions")


@bp.get("")
@require_auth()
async def list_own() -> Response:
    who = g.principal
    sessions = await run(services().sessions.list, who.user_id)
    return jsonify({"sessions": [s.to_dict(who.session_id) for s in sessions]})


@bp.delete("/<session_id>")
@require_auth()
async def end_one(session_id: str) -> Response:
    who = g.principal
    await run(services().sessions.revoke, session_id, "signed_out_by_user", who, who.user_id)
    return jsonify({"ok": True})


@bp.delete("")
@require_auth()
async def end_others() -> Response:
    who = g.principal
    count = await run(
        services().sessions.revoke_all_for_user, who.user_id, "signed_out_everywhere", who.session_id, who
    )
    return jsonify({"ok": True, "ended": count})

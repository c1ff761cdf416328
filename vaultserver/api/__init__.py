"""The Quart app: the network gate first, then the blueprints, security headers on every response."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from quart import Quart, Response, g, jsonify, request

from vaultserver import __version__
from vaultserver.api import (
    admin,
    albums,
    auth,
    errors,
    events,
    media,
    sessions,
    uploads,
    web,
    worker_jobs,
    workers,
)
from vaultserver.api.context import run
from vaultserver.api.errors import error_response
from vaultserver.api.gate import NetworkGate
from vaultserver.services import Services

if TYPE_CHECKING:
    from vaultserver.pipeline.remote_jobs import RemoteJobs
from vaultserver.services.audit import AuditEvent

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_app(services: Services, remote_jobs: RemoteJobs | None = None) -> Quart:
    """`remote_jobs`: the conversion's side for worker machines (None: their job routes answer 503)."""
    app = Quart(__name__, static_folder=None)
    app.request_class = uploads.TusRequest  # worker and tus uploads may exceed MAX_CONTENT_LENGTH
    app.config.update(VAULT_SERVICES=services, VAULT_REMOTE_JOBS=remote_jobs, MAX_CONTENT_LENGTH=64 * 1024,
                      JSON_SORT_KEYS=False)
    gate = {"current": NetworkGate(services.settings.current)}
    services.settings.subscribe(lambda _old, new: gate.update(current=NetworkGate(new)))  # applies live

    @app.before_request
    async def network_gate() -> Response | None:
        address, allowed = gate["current"].check(request.remote_addr, request.headers.get("X-Forwarded-For"))
        g.client_ip = address
        if allowed:
            return None
        await run(
            services.audit.record_refusal,  # folded per address and minute: a flood cannot fill the log
            AuditEvent(
                "network_denied",
                "denied",
                ip_address=str(address or request.remote_addr),
                resource=request.path[:256],
            ),
        )
        return error_response("SEC_001", "Access is limited to the home network and VPN", 403)

    @app.after_request
    async def security_headers(response: Response) -> Response:
        # One pass over the response's headers, then one append: this runs for every segment and picture.
        present = {name.lower() for name in response.headers.keys()}
        response.headers.extend([(name, value) for name, value in SECURITY_HEADERS.items()
                                 if name.lower() not in present])
        return response

    @app.get("/api/health")
    async def health() -> Response:
        counts = await run(services.queue.counts)
        return jsonify({"status": "ok", "version": __version__, "queue": {"active": counts.active}})

    for blueprint in (auth.bp, media.bp, albums.bp, sessions.bp, admin.bp, workers.bp, worker_jobs.bp,
                      uploads.bp, web.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(events.bp)
    errors.install(app)
    return app

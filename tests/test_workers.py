"""Worker tokens: the service (names, revoking, who a token is), the join string, HTTPS pinned to Vault's CA
against real TLS servers, the worker check the job routes use, and the admin routes.

Real SQLite on a temp dir; the pin check talks to a real Vault on an ephemeral port, and to a stranger (a
TLS server with another CA's certificate that hands out the real Vault's CA file).
"""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from quart import jsonify

from tests.conftest import make_paths
from vaultserver.api.workers import current_worker, require_worker
from vaultserver.config import AppPaths
from vaultserver.crypto.tls import ensure_certificate
from vaultserver.errors import NotFoundError, ValidationError
from vaultserver.join_string import PREFIX, JoinString, ca_pin
from vaultserver.remote.pinned import PinMismatch, pinned_client, pinned_context
from vaultserver.services import Services, open_services
from vaultserver.services.principal import AuthError
from vaultserver.services.workers import served_ca_pem, server_url

URL, PIN = "https://192.168.1.10:1027/", "ab" * 32


def create(services: Services, name: str) -> str:
    """A new worker's token."""
    return services.workers.create(name, actor="owner", server_url=URL, ca_pin=PIN).token


def audit_events(services: Services) -> list[str]:
    return [entry.event for entry in services.audit.page(limit=50)]


# --- the service ------------------------------------------------------------------------------------------


def test_a_new_workers_token_authenticates_as_that_worker_and_its_join_string_carries_it(services):
    created = services.workers.create("studio-mac", actor="owner", server_url=URL, ca_pin=PIN)
    assert services.workers.authenticate(created.token).name == "studio-mac"
    assert JoinString.decode(created.join_string) == JoinString(URL, PIN, created.token)
    assert len(created.token) >= 40
    assert "worker_token_created" in audit_events(services)


def test_only_the_tokens_hash_is_stored(services):
    token = create(services, "studio-mac")
    with services.db.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT * FROM worker").all()
    assert token not in repr(stored)


@pytest.mark.parametrize("name", ["", "has space", "x" * 41, "slash/name", "ünïcode", "semi;colon"])
def test_a_worker_name_must_be_short_plain_letters_digits_and_dots(services, name):
    with pytest.raises(ValidationError, match="1 to 40 letters"):
        create(services, name)


def test_names_are_unique_among_live_workers_whatever_their_case(services):
    create(services, "Studio-Mac")
    with pytest.raises(ValidationError, match="already a worker named Studio-Mac"):
        create(services, "studio-mac")


def test_re_creating_a_revoked_name_replaces_it_and_only_the_new_token_works(services):
    old = create(services, "studio-mac")
    services.workers.revoke("STUDIO-MAC", actor="owner")
    new = create(services, "studio-mac")
    assert [w.name for w in services.workers.list()] == ["studio-mac"]
    assert not services.workers.list()[0].revoked
    assert services.workers.authenticate(new).name == "studio-mac"
    with pytest.raises(AuthError) as refused:
        services.workers.authenticate(old)
    assert refused.value.code == "AUTH_001" and refused.value.status == 401


def test_a_revoked_worker_is_refused_and_listed_as_revoked(services):
    token = create(services, "studio-mac")
    services.workers.working("studio-mac", "j" * 32, "transcode", 0.5)
    services.workers.revoke("studio-mac", actor="owner")
    with pytest.raises(AuthError, match="revoked") as refused:
        services.workers.authenticate(token)
    assert refused.value.code == "AUTH_001"
    (listed,) = services.workers.list()
    assert listed.revoked and listed.job_id is None
    assert "worker_token_revoked" in audit_events(services)


def test_revoking_a_worker_nobody_has_is_not_found(services):
    with pytest.raises(NotFoundError, match="No worker named ghost"):
        services.workers.revoke("ghost", actor="owner")
    create(services, "studio-mac")
    services.workers.revoke("studio-mac", actor="owner")
    with pytest.raises(NotFoundError):
        services.workers.revoke("studio-mac", actor="owner")


@pytest.mark.parametrize("token", ["", "x" * 500, "not-a-token-of-this-vault-at-all"])
def test_an_unknown_token_is_wrong_credentials(services, token):
    create(services, "studio-mac")
    with pytest.raises(AuthError) as refused:
        services.workers.authenticate(token)
    assert refused.value.code == "AUTH_001"


def test_the_list_is_newest_first_and_shows_what_each_worker_reported(services):
    create(services, "old-mac")
    create(services, "gpu-box")
    services.workers.seen("gpu-box", address="192.168.1.40", encoders=["libx264", "h264_nvenc"])
    services.workers.working("gpu-box", "a" * 32, "transcode", 0.25)
    newest, oldest = services.workers.list()
    assert (newest.name, oldest.name) == ("gpu-box", "old-mac")
    assert newest.address == "192.168.1.40" and newest.encoders == ["libx264", "h264_nvenc"]
    assert (newest.job_id, newest.stage, newest.progress) == ("a" * 32, "transcode", 0.25)
    assert newest.last_seen_at is not None and oldest.last_seen_at is None
    assert json.loads(json.dumps(newest.to_dict()))["encoders"] == ["libx264", "h264_nvenc"]
    services.workers.working("gpu-box", None, "transcode", 1.0)
    assert services.workers.list()[0].to_dict()["job_id"] is None
    assert services.workers.list()[0].progress is None


def test_seen_keeps_the_encoders_it_was_told_and_writes_a_new_address_at_once(services):
    create(services, "gpu-box")
    services.workers.seen("gpu-box", address="192.168.1.40", encoders=["libx264"])
    services.workers.seen("gpu-box", address="192.168.1.41")
    (worker,) = services.workers.list()
    assert worker.address == "192.168.1.41" and worker.encoders == ["libx264"]


def test_the_join_url_is_a_lan_address_else_the_local_name():
    assert server_url(1027, ["127.0.0.1", "::1", "10.8.0.1", "172.17.0.1", "192.168.1.20"]) == \
        "https://192.168.1.20:1027/"
    assert server_url(1027, ["127.0.0.1", "10.8.0.1", "10.0.0.7"]) == "https://10.0.0.7:1027/"
    only_local = server_url(1027, ["127.0.0.1", "::1", "10.8.0.1"])
    assert only_local.startswith("https://") and only_local.endswith(".local:1027/")


def test_adding_a_worker_pins_the_ca_the_server_presents(services):
    created = services.add_worker("studio-mac", actor="owner")
    join = JoinString.decode(created.join_string)
    assert join.ca_pin == ca_pin(services.paths.private.joinpath("tls", "ca.pem").read_bytes())
    assert join.url.endswith(f":{services.settings.current.port}/")


# --- the join string --------------------------------------------------------------------------------------


def test_a_join_string_survives_the_round_trip_and_surrounding_blanks():
    join = JoinString(URL, PIN, "t" * 43)
    text = join.encode()
    assert text.startswith(PREFIX) and "=" not in text and "\n" not in text
    assert JoinString.decode(f"  {text}\n") == join


def _encoded(fields: object) -> str:
    return PREFIX + base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


@pytest.mark.parametrize("text", [
    "", "https://192.168.1.10:1027/", PREFIX, PREFIX + "!!!not base64!!!", PREFIX + "bm90IGpzb24",
    _encoded(["a list"]),
    _encoded({"v": 1, "url": "http://192.168.1.10:1027/", "pin": PIN, "token": "t" * 43}),
    _encoded({"v": 1, "url": "https://192.168.1.10:1027", "pin": PIN, "token": "t" * 43}),
    _encoded({"v": 1, "url": URL, "pin": "abc", "token": "t" * 43}),
    _encoded({"v": 1, "url": URL, "pin": PIN, "token": "short"}),
    _encoded({"v": 1, "url": URL, "pin": PIN}),
])
def test_a_malformed_join_string_is_refused_with_a_clear_message(text):
    with pytest.raises(ValidationError, match="not a whole join string"):
        JoinString.decode(text)


def test_a_join_string_of_another_version_says_to_make_a_new_one():
    with pytest.raises(ValidationError, match="another version"):
        JoinString.decode(_encoded({"v": 2, "url": URL, "pin": PIN, "token": "t" * 43}))


# --- the pin, against real TLS servers --------------------------------------------------------------------


def test_the_right_pin_gives_a_context_that_reaches_vault(server, paths, services):
    pin = ca_pin(served_ca_pem(paths))
    url = f"https://127.0.0.1:{server.endpoint.port}/"
    token = services.add_worker("studio-mac", actor="owner").token
    client = pinned_client(JoinString(url, pin, token))
    assert client.request("GET", "/api/health").status == 200
    assert isinstance(pinned_context(url, pin), ssl.SSLContext)


def test_a_wrong_pin_is_refused_before_anything_is_sent(server):
    url = f"https://127.0.0.1:{server.endpoint.port}/"
    with pytest.raises(PinMismatch, match="The server's certificate is not the one this join string names"):
        pinned_context(url, "0" * 64)


class _Stranger(http.server.BaseHTTPRequestHandler):
    ca_pem = b""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.ca_pem)))
        self.end_headers()
        self.wfile.write(self.ca_pem)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def stranger(paths: AppPaths, tmp_path: Path) -> Iterator[str]:
    """A TLS server with another Vault's certificate, handing out the real Vault's (public) CA file."""
    ensure_certificate(paths)
    other = open_services(make_paths(tmp_path / "other"))
    files = ensure_certificate(other.paths)
    other.close()
    handler = type("Handler", (_Stranger,), {"ca_pem": served_ca_pem(paths)})
    httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_a_server_showing_the_real_ca_file_with_another_certificate_is_refused(stranger, paths):
    with pytest.raises(PinMismatch, match="not signed by the pinned certificate authority"):
        pinned_context(stranger, ca_pin(served_ca_pem(paths)))


# --- over HTTP ----------------------------------------------------------------------------------------------


@pytest.fixture
def worker_app(app):
    """The app with one route only workers may call, as the job routes will be."""
    @app.get("/api/test/whoami")
    @require_worker
    async def whoami():
        return jsonify({"name": (await current_worker()).name})
    return app


def test_a_worker_route_knows_the_worker_and_records_where_it_called_from(worker_app, make_app_client,
                                                                         services):
    token = create(services, "gpu-box")
    client = make_app_client("192.168.1.40")
    reply = client.request("GET", "/api/test/whoami", token=token)
    assert reply.status == 200 and reply.json() == {"name": "gpu-box"}
    assert services.workers.list()[0].address == "192.168.1.40"


def test_a_worker_route_refuses_revoked_missing_and_user_tokens(worker_app, make_app_client, services, owner):
    token = create(services, "gpu-box")
    services.workers.revoke("gpu-box", actor="owner")
    client = make_app_client("192.168.1.40")
    revoked = client.request("GET", "/api/test/whoami", token=token)
    assert (revoked.status, revoked.code) == (401, "AUTH_001")
    missing = client.request("GET", "/api/test/whoami", token="")
    assert (missing.status, missing.code) == (401, "AUTH_002")
    as_user = client.request("GET", "/api/test/whoami", token=owner.token)
    assert (as_user.status, as_user.code) == (401, "AUTH_001")
    assert "worker_refused" in audit_events(services)


def test_a_worker_token_is_not_a_sign_in(make_app_client, services):
    token = create(services, "gpu-box")
    reply = make_app_client().request("GET", "/api/auth/me", token=token)
    assert reply.status == 401


def test_the_ca_certificate_is_public_at_home_and_closed_to_the_world(make_app_client, paths):
    ensure_certificate(paths)
    home = make_app_client("192.168.1.40").request("GET", "/api/workers/ca.pem", token="")
    assert home.status == 200 and home.body == served_ca_pem(paths)
    assert home.body.startswith(b"-----BEGIN CERTIFICATE-----")
    away = make_app_client("203.0.113.9").request("GET", "/api/workers/ca.pem", token="")
    assert (away.status, away.code) == (403, "SEC_001")


def test_admins_add_list_and_revoke_workers(owner, services):
    created = owner.request("POST", "/api/admin/workers", {"name": "studio-mac"})
    assert created.status == 201
    join = JoinString.decode(created.json()["join_string"])
    assert services.workers.authenticate(join.token).name == "studio-mac"
    listed = owner.request("GET", "/api/admin/workers").json()["workers"]
    assert [w["name"] for w in listed] == ["studio-mac"] and listed[0]["revoked"] is False
    again = owner.request("POST", "/api/admin/workers", {"name": "STUDIO-mac"})
    assert (again.status, again.code) == (400, "VALIDATION_001")
    assert owner.request("DELETE", "/api/admin/workers/studio-mac").status == 204
    assert owner.request("GET", "/api/admin/workers").json()["workers"][0]["revoked"] is True
    gone = owner.request("DELETE", "/api/admin/workers/studio-mac")
    assert (gone.status, gone.code) == (404, "MEDIA_001")


def test_only_admins_manage_workers(viewer):
    assert viewer.request("GET", "/api/admin/workers").status == 403
    assert viewer.request("POST", "/api/admin/workers", {"name": "sneaky"}).status == 403

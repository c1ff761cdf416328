"""The HTTPS API on a real server: sign-in and sessions, the network gate, and authorised streaming.

Each security rule is shown to hold AND to be able to fail: wrong passwords, lockout, expired and tampered
tokens, refresh-token reuse, a session revoked mid-stream, idle timeout, the device limit, a source outside
the allowed networks, cross-site requests and path traversal on every id parameter.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import timedelta

import pytest

from tests.conftest import OWNER, OWNER_PASSWORD, VIEWER, VIEWER_PASSWORD, wait_for
from tests.support import ApiClient
from vaultserver.db.models import utcnow


@pytest.fixture
def viewer(make_client):
    client = make_client()
    assert client.login(VIEWER, VIEWER_PASSWORD).status == 200
    return client


# --- sign-in ---------------------------------------------------------------------------------------------

def test_login_returns_tokens_user_and_strict_cookies(make_client):
    client = make_client()
    reply = client.login(OWNER, OWNER_PASSWORD, device="Owner's iPhone")
    assert reply.status == 200
    body = reply.json
    assert {"access_token", "refresh_token", "expires_in", "token_type", "user", "session_id"} <= set(body)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["user"]["username"] == OWNER and body["user"]["role"] == "admin"
    cookies = reply.headers.get_all("Set-Cookie")
    access = next(c for c in cookies if c.startswith("vault_access="))
    refresh = next(c for c in cookies if c.startswith("vault_refresh="))
    for cookie in (access, refresh):
        assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    assert "Path=/api/auth" in refresh
    me = client.request("GET", "/api/auth/me")
    assert me.status == 200 and me.json["user"]["username"] == OWNER


def test_wrong_password_and_unknown_user_look_the_same(make_client):
    client = make_client()
    timings = {}
    for name, password in ((VIEWER, "Wrong!pass1"), ("nobody", "Wrong!pass1")):
        start = time.perf_counter()
        reply = client.login(name, password)
        timings[name] = time.perf_counter() - start
        assert reply.status == 401 and reply.code == "AUTH_001"
        assert reply.json["error"]["message"] == "Wrong username or password"
    assert 0.33 < timings[VIEWER] / timings["nobody"] < 3  # both pay for a bcrypt check


def test_five_failures_lock_the_account_with_retry_after(make_client, services):
    client = make_client()
    for _ in range(5):
        assert client.login(VIEWER, "Wrong!pass1").status == 401
    locked = client.login(VIEWER, VIEWER_PASSWORD)
    assert locked.status == 429 and locked.json["error"]["details"]["retry_after"] > 800
    assert int(locked.headers["Retry-After"]) > 800
    assert "locked" in {e.outcome for e in services.audit.recent(event="login")}


def test_many_failures_from_one_address_are_rate_limited(make_client, services):
    client = make_client()
    services.users.throttle.limit = 3
    for name in ("a1", "a2", "a3"):
        client.login(name, "Wrong!pass1")
    reply = client.login(OWNER, OWNER_PASSWORD)
    assert reply.status == 429 and reply.headers["Retry-After"]


def test_password_policy_lists_the_unmet_rules(make_client):
    owner = make_client()
    owner.login(OWNER, OWNER_PASSWORD)
    reply = owner.request("POST", "/api/admin/users", {"username": "kid", "password": "short"})
    assert reply.status == 400 and reply.code == "VALIDATION_001"
    assert set(reply.json["error"]["details"]["unmet"]) == {
        "at least 8 characters", "an uppercase letter", "a digit", "a special character"}
    ok = owner.request("POST", "/api/admin/users", {"username": "kid", "password": "Kid!pass99"})
    assert ok.status == 201


# --- tokens and sessions ---------------------------------------------------------------------------------

def test_missing_tampered_and_expired_tokens_are_refused(viewer, services):
    assert viewer.request("GET", "/api/auth/me", token="").status == 200  # the good token still works
    anonymous = viewer.request("GET", "/api/media/library", headers={}, token="x.y.z")
    assert anonymous.status == 401 and anonymous.code == "AUTH_002"
    header, payload, signature = viewer.token.split(".")
    forged = viewer.request("GET", "/api/auth/me", token=f"{header}.{payload}.{signature[::-1]}")
    assert forged.status == 401 and forged.code == "AUTH_002"
    real_clock = services.sessions.clock
    services.sessions.clock = lambda: real_clock() - timedelta(minutes=20)  # token issued 20 min ago
    try:
        old = viewer.login(VIEWER, VIEWER_PASSWORD).json["access_token"]
    finally:
        services.sessions.clock = real_clock
    expired = viewer.request("GET", "/api/auth/me", token=old)
    assert expired.status == 401 and expired.code == "AUTH_003"


def test_refresh_rotates_and_reuse_of_an_old_token_revokes_the_session(make_client):
    client = make_client()
    first = client.login(VIEWER, VIEWER_PASSWORD).json
    second = client.request("POST", "/api/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert second.status == 200 and second.json["refresh_token"] != first["refresh_token"]
    assert second.json["session_id"] == first["session_id"]
    reuse = client.request("POST", "/api/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert reuse.status == 401
    after = client.request("GET", "/api/auth/me", token=second.json["access_token"])
    assert after.status == 401 and after.code == "AUTH_004"
    again = client.request("POST", "/api/auth/refresh", {"refresh_token": second.json["refresh_token"]})
    assert again.status == 401


def test_idle_for_more_than_30_minutes_signs_out(viewer, services):
    real_clock = services.sessions.clock
    services.sessions.clock = lambda: real_clock() + timedelta(minutes=31)
    try:
        reply = viewer.request("GET", "/api/auth/me")
    finally:
        services.sessions.clock = real_clock
    assert reply.status == 401 and reply.code == "AUTH_004"
    assert viewer.request("GET", "/api/auth/me").status == 401  # and it stays signed out


def test_a_sixth_device_signs_out_the_least_recently_active(make_client, services):
    clients = []
    for n in range(6):
        client = make_client()
        assert client.login(VIEWER, VIEWER_PASSWORD, device=f"device {n}").status == 200
        clients.append(client)
    assert clients[0].request("GET", "/api/auth/me").code == "AUTH_004"
    assert all(c.request("GET", "/api/auth/me").status == 200 for c in clients[1:])
    listed = clients[5].request("GET", "/api/sessions").json["sessions"]
    assert len(listed) == 5 and sum(s["current"] for s in listed) == 1


def test_users_end_their_own_sessions_and_sign_out_everywhere(make_client):
    phone, laptop, tablet = make_client(), make_client(), make_client()
    for c, name in ((phone, "phone"), (laptop, "laptop"), (tablet, "tablet")):
        c.login(VIEWER, VIEWER_PASSWORD, device=name)
    laptop_id = next(s["id"] for s in phone.request("GET", "/api/sessions").json["sessions"]
                     if s["device_name"] == "laptop")
    assert phone.request("DELETE", f"/api/sessions/{laptop_id}").status == 200
    assert laptop.request("GET", "/api/auth/me").code == "AUTH_004"
    assert phone.request("DELETE", "/api/sessions").json["ended"] == 1
    assert tablet.request("GET", "/api/auth/me").code == "AUTH_004"
    assert phone.request("GET", "/api/auth/me").status == 200
    assert phone.request("POST", "/api/auth/logout").status == 200
    assert phone.request("GET", "/api/auth/me").code == "AUTH_004"


def test_signing_out_clears_the_cookies_and_the_browsers_cached_pictures(make_client):
    client = make_client()
    client.login(VIEWER, VIEWER_PASSWORD)
    reply = client.request("POST", "/api/auth/logout")
    assert reply.status == 200 and reply.headers["Clear-Site-Data"] == '"cache"'
    cleared = {c.split("=")[0]: c for c in reply.headers.get_all("Set-Cookie")}
    assert set(cleared) == {"vault_access", "vault_refresh"}
    assert all("Max-Age=0" in c or "Expires=Thu, 01 Jan 1970" in c for c in cleared.values())


def test_cookie_authenticated_changes_must_be_same_origin(make_client, server):
    client = make_client()
    client.login(VIEWER, VIEWER_PASSWORD)
    assert client.request("GET", "/api/auth/me", use_cookies=True).status == 200
    cross = client.request("DELETE", "/api/sessions", use_cookies=True,
                           headers={"Origin": "https://evil.example"})
    assert cross.status == 403 and cross.code == "SEC_002"
    bare = client.request("POST", "/api/auth/logout", use_cookies=True)
    assert bare.status == 403
    same = client.request("POST", "/api/auth/logout", use_cookies=True,
                          headers={"Origin": f"https://localhost:{server.endpoint.port}"})
    assert same.status == 200


def test_viewers_cannot_use_admin_routes(viewer):
    for path in ("/api/admin/users", "/api/admin/sessions", "/api/admin/audit", "/api/admin/queue",
                 "/api/admin/settings"):
        assert viewer.request("GET", path).status == 403, path


def test_admins_manage_accounts_and_changes_sign_the_user_out(make_client, services):
    owner, kid = make_client(), make_client()
    owner.login(OWNER, OWNER_PASSWORD)
    created = owner.request("POST", "/api/admin/users", {"username": "kid", "password": "Kid!pass99"}).json
    kid_id = created["user"]["id"]
    assert kid.login("kid", "Kid!pass99").status == 200
    reset = owner.request("PATCH", f"/api/admin/users/{kid_id}", {"password": "New!pass99"})
    assert reset.status == 200 and kid.request("GET", "/api/auth/me").code == "AUTH_004"
    assert kid.login("kid", "New!pass99").status == 200
    assert owner.request("PATCH", f"/api/admin/users/{kid_id}", {"is_active": False}).status == 200
    assert kid.request("GET", "/api/auth/me").code == "AUTH_004"
    assert kid.login("kid", "New!pass99").code == "AUTH_001"
    assert owner.request("DELETE", f"/api/admin/users/{kid_id}").status == 200
    names = [u["username"] for u in owner.request("GET", "/api/admin/users").json["users"]]
    assert "kid" not in names
    me = owner.request("GET", "/api/auth/me").json["user"]["id"]
    assert owner.request("DELETE", f"/api/admin/users/{me}").status == 400


def test_admin_audit_is_cursor_paginated_and_filterable(make_client):
    owner = make_client()
    owner.login(OWNER, OWNER_PASSWORD)
    for _ in range(3):
        owner.login(VIEWER, "Wrong!pass1")
    page = owner.request("GET", "/api/admin/audit?limit=2&event=login").json
    assert len(page["entries"]) == 2 and page["next_cursor"]
    rest = owner.request("GET", f"/api/admin/audit?limit=2&event=login&cursor={page['next_cursor']}").json
    ids = [e["id"] for e in page["entries"] + rest["entries"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids) == 4


# --- network gate ----------------------------------------------------------------------------------------

def test_a_source_outside_the_allowed_networks_is_refused_and_audited(make_client, services):
    outsider = make_client(source="127.0.0.2")
    reply = outsider.request("GET", "/api/health")
    assert reply.status == 403 and reply.code == "SEC_001"
    assert outsider.login(OWNER, OWNER_PASSWORD).status == 403
    denied = services.audit.recent(event="network_denied")
    assert denied and denied[0].ip_address == "127.0.0.2"
    services.settings.update(allowed_networks=["127.0.0.0/8"])  # applies live
    assert outsider.request("GET", "/api/health").status == 200


def test_forwarded_for_is_ignored_unless_from_a_trusted_proxy(make_client, services):
    client = make_client()
    spoofed = client.request("GET", "/api/health", headers={"X-Forwarded-For": "8.8.8.8"})
    assert spoofed.status == 200  # the header is ignored: the real peer is allowed
    services.settings.update(trusted_proxies=["127.0.0.1/32"])
    assert client.request("GET", "/api/health", headers={"X-Forwarded-For": "8.8.8.8"}).status == 403
    assert client.request("GET", "/api/health", headers={"X-Forwarded-For": "10.8.0.7"}).status == 200


def test_ipv4_mapped_addresses_are_matched_as_ipv4():
    from vaultserver.api.gate import NetworkGate, parse_ip
    from vaultserver.config import Settings

    gate = NetworkGate(Settings())
    assert str(parse_ip("::ffff:192.168.1.20")) == "192.168.1.20"
    assert gate.allows(parse_ip("::ffff:192.168.1.20")) and gate.allows(parse_ip("10.8.0.42"))
    assert not gate.allows(parse_ip("::ffff:192.168.2.20")) and not gate.allows(parse_ip("10.8.1.1"))
    assert not gate.allows(parse_ip("not an address")) and gate.allows(parse_ip("::1"))


def test_only_tls_1_2_or_newer_is_spoken(server, paths):
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(paths.private / "tls" / "ca.pem"))
    with socket.create_connection(("127.0.0.1", server.endpoint.port)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.selected_alpn_protocol() in (None, "http/1.1")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    with pytest.warns(DeprecationWarning):  # Python itself discourages TLS 1.1 now
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with socket.create_connection(("127.0.0.1", server.endpoint.port)) as raw:
            old.wrap_socket(raw, server_hostname="localhost")


def test_plain_http_on_the_port_gets_nothing_useful(server):
    import socket
    with socket.create_connection(("127.0.0.1", server.endpoint.port), timeout=5) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            data = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            data = b""
    assert b'"status"' not in data and b"200 OK" not in data


# --- media -----------------------------------------------------------------------------------------------

def test_library_lists_with_pagination_and_filters(viewer, stocked):
    page = viewer.request("GET", "/api/media/library?limit=1").json
    assert page["pagination"] == {"page": 1, "limit": 1, "total": 2, "pages": 2}
    videos = viewer.request("GET", "/api/media/library?type=video").json["items"]
    assert [v["original_name"] for v in videos] == ["clip.mp4"]
    found = viewer.request("GET", "/api/media/library?q=API").json["items"]
    assert [f["original_name"] for f in found] == ["api.jpg"]
    bad = viewer.request("GET", "/api/media/library?limit=abc")
    assert bad.status == 400 and bad.code == "VALIDATION_001"


def test_playback_position_is_saved_per_user_and_item(viewer, make_client, stocked):
    video, photo = stocked["video"], stocked["image"]
    assert viewer.request("GET", f"/api/media/{video.id}").json["position"] == 0
    assert viewer.request("PUT", f"/api/media/{video.id}/position", {"position": 1.5}).json["position"] == 1.5
    assert viewer.request("PUT", f"/api/media/{video.id}/position", {"position": 99}).json["position"] == 3.0
    assert viewer.request("GET", f"/api/media/{video.id}").json["position"] == 3.0
    owner = make_client()
    owner.login(OWNER, OWNER_PASSWORD)
    assert owner.request("GET", f"/api/media/{video.id}").json["position"] == 0  # per user
    assert viewer.request("PUT", f"/api/media/{video.id}/position", {"position": "x"}).status == 400
    assert viewer.request("PUT", f"/api/media/{photo.id}/position", {"position": 1}).status == 400


def test_pictures_stream_decrypted_with_range_and_etag(viewer, stocked, services):
    photo = stocked["image"]
    whole = viewer.request("GET", f"/api/media/stream/{photo.id}")
    assert whole.status == 200 and whole.headers["Content-Type"] == "image/webp"
    assert whole.body[:4] == b"RIFF" and whole.body[8:12] == b"WEBP"
    assert whole.headers["Cache-Control"].startswith("private")
    part = viewer.request("GET", f"/api/media/stream/{photo.id}", headers={"Range": "bytes=10-99"})
    assert part.status == 206 and part.body == whole.body[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(whole.body)}"
    tail = viewer.request("GET", f"/api/media/stream/{photo.id}", headers={"Range": "bytes=-16"})
    assert tail.body == whole.body[-16:]
    beyond = viewer.request("GET", f"/api/media/stream/{photo.id}", headers={"Range": "bytes=999999-"})
    assert beyond.status == 416
    cached = viewer.request("GET", f"/api/media/stream/{photo.id}",
                            headers={"If-None-Match": whole.headers["ETag"]})
    assert cached.status == 304
    for kind in ("thumbnail", "preview", "poster"):
        for item in stocked.values():
            reply = viewer.request("GET", f"/api/media/{kind}/{item.id}")
            assert reply.status == 200 and reply.body[8:12] == b"WEBP", (kind, item.type)


@pytest.mark.slow
def test_a_real_hls_client_plays_the_whole_video_through_the_server(viewer, stocked, server, paths,
                                                                    ffmpeg_bin):
    video = stocked["video"]
    env = {"SSL_CERT_FILE": str(paths.private / "tls" / "ca.pem"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [ffmpeg_bin, "-hide_banner", "-nostdin", "-headers", f"Authorization: Bearer {viewer.token}\r\n",
         "-i", f"https://localhost:{server.endpoint.port}/api/media/stream/{video.id}", "-map", "0:v:0",
         "-map", "0:a:0", "-f", "null", "-"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-1500:]
    assert int(re.findall(r"frame=\s*(\d+)", result.stderr)[-1]) == 75  # 3 s at 25 fps
    fetched = [e for e in server.services.audit.recent(event="key_fetch") if e.resource]
    assert fetched and fetched[0].username == VIEWER


def test_playlists_are_relative_and_keys_are_never_cached(viewer, stocked, services):
    video = stocked["video"]
    master = viewer.request("GET", f"/api/media/stream/{video.id}").body.decode()
    variant_uri = next(line for line in master.splitlines() if line and not line.startswith("#"))
    assert variant_uri == f"../hls/{video.id}/360p/index.m3u8"
    variant = viewer.request("GET", f"/api/media/hls/{video.id}/360p/index.m3u8").body.decode()
    assert "https://" not in master + variant and "localhost" not in master + variant
    key_uri = re.search(r'URI="([^"]+)"', variant)[1]
    assert key_uri.startswith("../../../keys/")
    key = viewer.request("GET", f"/api/media/keys/{key_uri.rsplit('/', 1)[1]}")
    assert key.status == 200 and len(key.body) == 16 and key.headers["Cache-Control"] == "no-store"
    segment = viewer.request("GET", f"/api/media/hls/{video.id}/360p/seg_00000.ts")
    assert segment.status == 200 and segment.headers["Content-Type"] == "video/mp2t"
    file_key = services.keys.key_row(video.id, "file").id
    assert viewer.request("GET", f"/api/media/keys/{file_key}").status == 404  # never served


def test_a_session_revoked_mid_stream_cannot_fetch_keys_or_segments(make_client, viewer, stocked):
    video = stocked["video"]
    variant = viewer.request("GET", f"/api/media/hls/{video.id}/360p/index.m3u8").body.decode()
    key_id = re.search(r'URI="\.\./\.\./\.\./keys/([0-9a-f]+)"', variant)[1]
    assert viewer.request("GET", f"/api/media/keys/{key_id}").status == 200
    owner = make_client()
    owner.login(OWNER, OWNER_PASSWORD)
    session_id = viewer.request("GET", "/api/auth/me").json["session_id"]
    assert owner.request("DELETE", f"/api/admin/sessions/{session_id}").status == 200
    for path in (f"/api/media/keys/{key_id}", f"/api/media/hls/{video.id}/360p/seg_00000.ts"):
        reply = viewer.request("GET", path)
        assert reply.status == 401 and reply.code == "AUTH_004", path


ATTACKS = ["../../etc/passwd", "..%2F..%2Fvault.db", "%2e%2e", "0" * 500, "ABCDEF0123456789ABCDEF0123456789",
           "aa/../../x", "%00", "..\\..\\vault.db"]


def test_path_traversal_on_every_id_parameter_is_a_plain_404(viewer, stocked):
    video = stocked["video"].id
    for attack in ATTACKS:
        paths = [f"/api/media/{attack}", f"/api/media/thumbnail/{attack}", f"/api/media/preview/{attack}",
                 f"/api/media/poster/{attack}", f"/api/media/stream/{attack}", f"/api/media/keys/{attack}",
                 f"/api/media/hls/{attack}/360p/index.m3u8", f"/api/media/hls/{video}/{attack}/index.m3u8",
                 f"/api/media/hls/{video}/360p/{attack}", f"/api/sessions/{attack}"]
        for path in paths:
            reply = viewer.request("DELETE" if path.startswith("/api/sessions") else "GET", path)
            assert reply.status in (400, 404), (path, reply.status)
            assert reply.json and reply.json["error"]["code"] in ("MEDIA_001", "VALIDATION_001"), path
            assert b"root:" not in reply.body and b"SQLite" not in reply.body


def test_errors_have_the_documented_shape_and_every_response_security_headers(viewer):
    reply = viewer.request("GET", "/api/media/0123456789abcdef0123456789abcdef")
    assert reply.status == 404
    error = reply.json["error"]
    assert set(error) == {"code", "message", "details", "timestamp"} and error["code"] == "MEDIA_001"
    for header in ("Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options",
                   "Referrer-Policy"):
        assert reply.headers[header], header
    assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
    unknown = viewer.request("GET", "/api/nothing-here")
    assert unknown.status == 404 and unknown.json["error"]["code"]


def test_serve_stops_within_5_seconds_with_a_client_connected(paths, tmp_path):
    import signal
    import socket
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "vaultserver.cli", "--data-dir", str(paths.root), "serve",
                             "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    port = int(re.search(r"localhost:(\d+)", line)[1])
    idle = socket.create_connection(("127.0.0.1", port))  # holds a connection open, sends nothing
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=10) == 0
    finally:
        idle.close()
        proc.kill()
    assert time.monotonic() - start < 5
    assert utcnow()  # the data dir is released for the next start
    assert not (paths.root / ".vault.pid").exists()


def test_a_new_port_set_over_the_api_moves_the_server_there(make_client, server, paths):
    """The request that changes the port is answered first; the restart happens beside it, never inside it."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    owner = make_client()
    owner.login(OWNER, OWNER_PASSWORD)
    changed = owner.request("PATCH", "/api/admin/settings", {"port": free, "host": "127.0.0.1"})
    assert changed.status == 200 and changed.json["settings"]["port"] == free
    wait_for(lambda: server.endpoint and server.endpoint.port == free and server.server.alive, timeout=30)
    moved = ApiClient(free, paths.private / "tls" / "ca.pem")
    assert moved.request("GET", "/api/health").status == 200


def test_gallery_files_are_revalidated_cheaply_and_nothing_outside_them_is_served(make_client):
    client = make_client()
    first = client.request("GET", "/assets/js/app.js")
    assert first.status == 200 and first.headers["Content-Type"].startswith("text/javascript")
    etag = first.headers["ETag"]
    assert etag and first.headers["Cache-Control"] == "no-cache"
    again = client.request("GET", "/assets/js/app.js", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    changed = client.request("GET", "/assets/js/app.js", headers={"If-None-Match": '"stale"'})
    assert changed.status == 200 and changed.body == first.body
    for attack in ("/assets/../../vaultserver/config.py", "/assets/%2e%2e/%2e%2e/pyproject.toml"):
        assert client.request("GET", attack).status == 404, attack

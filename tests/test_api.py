"""The HTTPS API on a real server, where TLS, streaming and players matter.

TLS versions and plain HTTP on the port, the gate seeing the real peer address, pictures streamed with ranges,
a real HLS client playing through the server, keys never cached and cut off mid-stream, the server stopping
and moving. Most tests share one server over the library converted once per run; the rules themselves
(sign-in, sessions, the gate, bad ids) are tested in process in test_api_auth, test_api_gate, test_api_media.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import OWNER, OWNER_PASSWORD, wait_for
from tests.support import ApiClient
from vaultserver.db.models import utcnow


@pytest.fixture(scope="module")
def shared_server(library) -> Iterator:
    """A real Vault (HTTPS server + pipeline) over the shared library; tests must not change its settings."""
    from vaultserver.runtime import VaultRuntime

    runtime = VaultRuntime(library.paths, library.services)
    runtime.start(serve=True, host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


@pytest.fixture
def connect(shared_server, library):
    def connect(source: str | None = None) -> ApiClient:
        return ApiClient(shared_server.endpoint.port, library.paths.private / "tls" / "ca.pem", source)
    return connect


@pytest.fixture
def sign_in(connect, library):
    """A client signed in to the shared server as a new account of `role`."""
    def sign_in(role: str = "member") -> ApiClient:
        account = library.make_user(role)
        client = connect()
        assert client.login(account.username, account.password).status == 200
        return client
    return sign_in


# --- the wire --------------------------------------------------------------------------------------------

def test_only_tls_1_2_or_newer_is_spoken(shared_server, library):
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(library.paths.private / "tls" / "ca.pem"))
    with socket.create_connection(("127.0.0.1", shared_server.endpoint.port)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.selected_alpn_protocol() in (None, "http/1.1")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    with pytest.warns(DeprecationWarning):  # Python itself discourages TLS 1.1 now
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with socket.create_connection(("127.0.0.1", shared_server.endpoint.port)) as raw:
            old.wrap_socket(raw, server_hostname="localhost")


def test_plain_http_on_the_port_gets_nothing_useful(shared_server):
    import socket
    with socket.create_connection(("127.0.0.1", shared_server.endpoint.port), timeout=5) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            data = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            data = b""
    assert b'"status"' not in data and b"200 OK" not in data


def test_the_gate_sees_the_real_peer_address_of_a_connection(connect, library):
    assert connect().request("GET", "/api/health").status == 200
    outsider = connect(source="127.0.0.2")  # loopback, but not this machine's allowed 127.0.0.1
    reply = outsider.request("GET", "/api/health")
    assert reply.status == 403 and reply.code == "SEC_001"
    account = library.make_user()
    assert outsider.login(account.username, account.password).status == 403
    denied = library.services.audit.recent(event="network_denied")
    assert denied and denied[0].ip_address == "127.0.0.2"


# --- media -----------------------------------------------------------------------------------------------

def test_pictures_stream_decrypted_with_range_and_etag(sign_in, library):
    viewer, photo = sign_in(), library.items["image"]
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
        for item in library.items.values():
            reply = viewer.request("GET", f"/api/media/{kind}/{item.id}")
            assert reply.status == 200 and reply.body[8:12] == b"WEBP", (kind, item.type)


@pytest.mark.slow
def test_a_real_hls_client_plays_the_whole_video_through_the_server(sign_in, shared_server, library,
                                                                    ffmpeg_bin):
    viewer, video = sign_in(), library.items["video"]
    env = {"SSL_CERT_FILE": str(library.paths.private / "tls" / "ca.pem"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [ffmpeg_bin, "-hide_banner", "-nostdin", "-headers", f"Authorization: Bearer {viewer.token}\r\n",
         "-i", f"https://localhost:{shared_server.endpoint.port}/api/media/stream/{video.id}",
         "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-1500:]
    assert int(re.findall(r"frame=\s*(\d+)", result.stderr)[-1]) == 75  # 3 s at 25 fps
    fetched = [e for e in library.services.audit.recent(event="key_fetch") if e.resource]
    me = viewer.request("GET", "/api/auth/me").json()["user"]["username"]
    assert fetched and fetched[0].username == me


def test_playlists_are_relative_and_keys_are_never_cached(sign_in, library):
    viewer, video = sign_in(), library.items["video"]
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
    file_key = library.services.keys.key_row(video.id, "file").id
    assert viewer.request("GET", f"/api/media/keys/{file_key}").status == 404  # never served


def test_a_session_revoked_mid_stream_cannot_fetch_keys_or_segments(sign_in, library):
    viewer, owner, video = sign_in(), sign_in("admin"), library.items["video"]
    variant = viewer.request("GET", f"/api/media/hls/{video.id}/360p/index.m3u8").body.decode()
    key_id = re.search(r'URI="\.\./\.\./\.\./keys/([0-9a-f]+)"', variant)[1]
    assert viewer.request("GET", f"/api/media/keys/{key_id}").status == 200
    session_id = viewer.request("GET", "/api/auth/me").json()["session_id"]
    assert owner.request("DELETE", f"/api/admin/sessions/{session_id}").status == 200
    for path in (f"/api/media/keys/{key_id}", f"/api/media/hls/{video.id}/360p/seg_00000.ts"):
        reply = viewer.request("GET", path)
        assert reply.status == 401 and reply.code == "AUTH_004", path


# --- the server process ----------------------------------------------------------------------------------

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
    assert changed.status == 200 and changed.json()["settings"]["port"] == free
    wait_for(lambda: server.endpoint and server.endpoint.port == free and server.server.alive, timeout=30)
    moved = ApiClient(free, paths.private / "tls" / "ca.pem")
    assert moved.request("GET", "/api/health").status == 200

"""The media door: one service call per media route, one trip off the event loop per request.

A real library (a photo and a video ingested by the real pipeline, once for this module), the real Quart
app driven by its test client, and MediaService called directly: bad, unknown and traversal ids all
give the same 404 as before; key fetches are audited by the service; bodies, ETags and ranges are right
whether a file is read whole or streamed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import jwt
import pytest

from tests.conftest import MediaFactory, make_paths
from vaultserver.api import create_app
from vaultserver.api.gate import NetworkGate
from vaultserver.config import Settings
from vaultserver.errors import NotFoundError
from vaultserver.pipeline import Pipeline
from vaultserver.services import Services, open_services
from vaultserver.services import media as media_module
from vaultserver.services.items import IMAGE_FILE, THUMB_FILE, MediaItem
from vaultserver.services.principal import AuthError, Principal
from vaultserver.services.sessions import load_signing_secret

LOOPBACK = {"client": ("127.0.0.1", 50000)}
BAD_IDS = ["../../etc/passwd", "..", "0" * 500, "ABCDEF0123456789ABCDEF0123456789", "aa/../../x", "\x00",
           "..\\..\\vault.db", "0123456789abcdef0123456789abcdef"]  # the last is well formed but unknown


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, media: MediaFactory
            ) -> Iterator[tuple[Services, dict[str, MediaItem], Principal, str]]:
    """Services over a library holding one photo and one video, and a signed-in viewer's token."""
    services = open_services(make_paths(tmp_path_factory.mktemp("door")))
    imports = services.settings.current.import_path(services.paths)
    media.copy_into(media.image("door.jpg", size=(800, 600)), imports)
    media.copy_into(media.video(seconds=3, size="640x360"), imports, "door.mp4")
    assert Pipeline(services).process_once(timeout=300)
    items = {item.type: item for item in services.library.all_items()}
    user = services.users.create("watcher", "Watch3r!pass", "member")
    tokens = services.sessions.create(user, device_name="test")
    who = services.sessions.authenticate(tokens.access_token)
    yield services, items, who, tokens.access_token
    services.close()


def _get(services: Services, path: str, token: str, method: str = "GET", headers: dict | None = None):
    async def call():
        client = create_app(services).test_client()
        return await client.open(path, method=method, scope_base=LOOPBACK,
                                 headers={"Authorization": f"Bearer {token}", **(headers or {})})
    return asyncio.run(call())


def _body(services: Services, path: str, token: str, **kwargs):
    async def call():
        client = create_app(services).test_client()
        reply = await client.open(path, scope_base=LOOPBACK,
                                  headers={"Authorization": f"Bearer {token}", **kwargs})
        return reply.status_code, reply.headers, await reply.get_data()
    return asyncio.run(call())


def _read_body(reply) -> bytes:
    return asyncio.run(reply.get_data())


def _key_id(services: Services, video: MediaItem) -> str:
    return services.keys.key_row(video.id, "hls").id


def test_each_media_route_checks_the_session_and_reads_in_one_trip_off_the_loop(library, monkeypatch):
    services, items, _who, token = library
    video, photo = items["video"], items["image"]
    trips: list[str] = []
    real = asyncio.to_thread

    async def counted(fn, *args, **kwargs):
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    for path in (f"/api/media/{photo.id}", f"/api/media/thumbnail/{photo.id}",
                 f"/api/media/preview/{video.id}", f"/api/media/poster/{video.id}",
                 f"/api/media/stream/{photo.id}", f"/api/media/stream/{video.id}",
                 f"/api/media/hls/{video.id}/360p/index.m3u8", f"/api/media/hls/{video.id}/360p/seg_00000.ts",
                 f"/api/media/keys/{_key_id(services, video)}", "/api/media/library?limit=5"):
        trips.clear()
        reply = _get(services, path, token)
        assert reply.status_code == 200, path
        assert trips == ["_checked_call"], (path, trips)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_unknown_and_traversal_ids_are_the_same_404_from_every_service_call(library, bad):
    services, items, who, _token = library
    door = services.media
    video = items["video"].id
    calls = [lambda: door.details(who, bad), lambda: door.picture(who, bad, "thumbnail"),
             lambda: door.stream(who, bad), lambda: door.variant(who, bad, "360p"),
             lambda: door.segment(who, bad, "360p", "seg_00000.ts"), lambda: door.hls_key(who, bad, "::1"),
             lambda: door.save_position(who, bad, 1.0), lambda: door.variant(who, video, bad),
             lambda: door.segment(who, video, bad, "seg_00000.ts"),
             lambda: door.segment(who, video, "360p", bad)]
    for call in calls:
        with pytest.raises(NotFoundError) as caught:
            call()
        assert caught.value.code == "MEDIA_001" and caught.value.status == 404


def test_traversal_through_the_routes_is_still_a_plain_404(library):
    services, items, _who, token = library
    video = items["video"].id
    for path in (f"/api/media/thumbnail/{'0' * 500}", "/api/media/stream/..%2F..%2Fvault.db",
                 f"/api/media/hls/{video}/..%2F..%2F/index.m3u8", f"/api/media/hls/{video}/360p/..%2Fx.ts",
                 "/api/media/keys/ABCDEF0123456789ABCDEF0123456789"):
        status, _headers, body = _body(services, path, token)
        assert status == 404 and b'"MEDIA_001"' in body and b"root:" not in body, path


def test_a_key_fetch_is_audited_by_the_service_and_a_file_key_is_never_handed_out(library):
    services, items, who, _token = library
    video = items["video"]
    before = len(services.audit.recent(event="key_fetch"))
    key = services.media.hls_key(who, _key_id(services, video), "10.8.0.7")
    assert len(key) == 16
    entry = services.audit.recent(event="key_fetch")[0]
    assert (entry.username, entry.ip_address, entry.resource) == ("watcher", "10.8.0.7",
                                                                   _key_id(services, video))
    with pytest.raises(NotFoundError):
        services.media.hls_key(who, services.keys.key_row(video.id, "file").id, "10.8.0.7")
    assert len(services.audit.recent(event="key_fetch")) == before + 1  # the refusal fetched nothing


def test_pictures_read_whole_or_streamed_are_the_same_bytes_with_the_same_etag(library, monkeypatch):
    services, items, who, _token = library
    photo = items["image"]
    whole = services.media.picture(who, photo.id, "thumbnail")
    assert whole.data == services.library.read(photo.id, THUMB_FILE) and whole.content_type == "image/webp"
    monkeypatch.setattr(media_module, "WHOLE_PICTURE", 0)  # every file streams in pieces now
    streamed = services.media.stream(who, photo.id)
    expected = services.library.read(photo.id, IMAGE_FILE)
    assert streamed.data is None and b"".join(streamed.pieces(0, streamed.size)) == expected
    assert b"".join(streamed.pieces(10, 100)) == expected[10:100]
    assert services.media.picture(who, photo.id, "thumbnail").etag == whole.etag


def test_segments_answer_ranges_head_and_revalidation_as_before(library, monkeypatch):
    services, items, _who, token = library
    path = f"/api/media/hls/{items['video'].id}/360p/seg_00000.ts"
    status, headers, body = _body(services, path, token)
    assert status == 200 and headers["Content-Type"] == "video/mp2t"
    assert len(body) == int(headers["Content-Length"]) and headers["Cache-Control"].startswith("private")
    status, part_headers, part = _body(services, path, token, Range="bytes=100-199")
    assert status == 206 and part == body[100:200]
    assert part_headers["Content-Range"] == f"bytes 100-199/{len(body)}"
    assert _body(services, path, token, Range=f"bytes={len(body)}-")[0] == 416
    assert _body(services, path, token, **{"If-None-Match": headers["ETag"]})[0] == 304
    head = _get(services, path, token, method="HEAD")
    assert head.status_code == 200 and head.headers["ETag"] == headers["ETag"]
    assert _read_body(head) == b""
    monkeypatch.setattr(media_module, "WHOLE_SEGMENT", 0)  # the largest segments stream in pieces
    assert _body(services, path, token)[2] == body
    assert _body(services, path, token, Range="bytes=-50")[2] == body[-50:]


def test_a_verified_token_is_still_refused_once_it_expires(library):
    services, _items, who, token = library
    sessions = services.sessions
    claims = sessions.decode(token)
    soon = {**claims, "exp": int(time.time()) + 1}
    secret = load_signing_secret(services.paths.private / "jwt.secret")
    short = jwt.encode(soon, secret, algorithm="HS256")
    assert sessions.authenticate(short) == who  # checked, and now remembered
    time.sleep(max(0.0, soon["exp"] - time.time()) + 0.05)
    with pytest.raises(AuthError) as caught:
        sessions.authenticate(short)
    assert caught.value.code == "AUTH_003"
    with pytest.raises(AuthError):
        sessions.authenticate(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))  # tampered


def test_the_gate_remembers_its_answer_per_peer_and_forwarded_header():
    gate = NetworkGate(Settings(trusted_proxies=["127.0.0.1/32"]))
    assert gate.check("127.0.0.1", None) == (gate.client_ip("127.0.0.1", None), True)
    assert gate.check("127.0.0.1", "203.0.113.9")[1] is False  # forwarded by the proxy, from outside
    assert gate.check("203.0.113.9", None)[1] is False
    assert gate.check("127.0.0.1", None)[1] is True  # the same answer the second time

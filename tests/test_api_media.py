"""The media routes' rules through the real app in process, over the library converted once per run: listing
and its filters, playback positions per user, and ids that try to leave the library (a plain 404, always).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support import AppClient, InProcessApp


@pytest.fixture(scope="module")
def signed_in(library) -> Iterator[Callable[..., AppClient]]:
    """Signs a new account of `role` in to the app over the shared library and returns its client."""
    from vaultserver.api import create_app

    running = InProcessApp(create_app(library.services))

    def sign_in(role: str = "member") -> AppClient:
        account = library.make_user(role)
        client = AppClient(running)
        assert client.login(account.username, account.password).status == 200
        return client
    yield sign_in
    running.close()


def test_library_lists_with_pagination_and_filters(signed_in):
    viewer = signed_in()
    page = viewer.request("GET", "/api/media/library?limit=1").json()
    assert page["pagination"] == {"page": 1, "limit": 1, "total": 2, "pages": 2}
    videos = viewer.request("GET", "/api/media/library?type=video").json()["items"]
    assert [v["original_name"] for v in videos] == ["clip.mp4"]
    found = viewer.request("GET", "/api/media/library?q=API").json()["items"]
    assert [f["original_name"] for f in found] == ["api.jpg"]
    bad = viewer.request("GET", "/api/media/library?limit=abc")
    assert bad.status == 400 and bad.code == "VALIDATION_001"


def test_playback_position_is_saved_per_user_and_item(signed_in, library):
    viewer, owner = signed_in(), signed_in("admin")
    video, photo = library.items["video"], library.items["image"]
    assert viewer.request("GET", f"/api/media/{video.id}").json()["position"] == 0
    position = f"/api/media/{video.id}/position"
    assert viewer.request("PUT", position, {"position": 1.5}).json()["position"] == 1.5
    assert viewer.request("PUT", position, {"position": 99}).json()["position"] == 3.0
    assert viewer.request("GET", f"/api/media/{video.id}").json()["position"] == 3.0
    assert owner.request("GET", f"/api/media/{video.id}").json()["position"] == 0  # per user
    assert viewer.request("PUT", f"/api/media/{video.id}/position", {"position": "x"}).status == 400
    assert viewer.request("PUT", f"/api/media/{photo.id}/position", {"position": 1}).status == 400


ATTACKS = ["../../etc/passwd", "..%2F..%2Fvault.db", "%2e%2e", "0" * 500, "ABCDEF0123456789ABCDEF0123456789",
           "aa/../../x", "%00", "..\\..\\vault.db"]


def test_path_traversal_on_every_id_parameter_is_a_plain_404(signed_in, library):
    viewer = signed_in()
    video = library.items["video"].id
    for attack in ATTACKS:
        paths = [f"/api/media/{attack}", f"/api/media/thumbnail/{attack}", f"/api/media/preview/{attack}",
                 f"/api/media/poster/{attack}", f"/api/media/stream/{attack}", f"/api/media/keys/{attack}",
                 f"/api/media/hls/{attack}/360p/index.m3u8", f"/api/media/hls/{video}/{attack}/index.m3u8",
                 f"/api/media/hls/{video}/360p/{attack}", f"/api/sessions/{attack}"]
        for path in paths:
            reply = viewer.request("DELETE" if path.startswith("/api/sessions") else "GET", path)
            assert reply.status in (400, 404), (path, reply.status)
            assert reply.json() and reply.json()["error"]["code"] in ("MEDIA_001", "VALIDATION_001"), path
            assert b"root:" not in reply.body and b"SQLite" not in reply.body

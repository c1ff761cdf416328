"""The one access rule, walked over every media route through the real app: a guest asking for an item no
album shares with them gets exactly the answer a nonexistent id gets (404 MEDIA_001, same message, same
details but for the id), and the same routes answer once an album holding the item is shared with them.
"""

from __future__ import annotations

from tests.support import AppClient
from tests.test_albums import sign_in  # noqa: F401  (the fixture: a signed-in account of a role)
from vaultserver import hls
from vaultserver.db.models import new_id
from vaultserver.services.items import MASTER_PLAYLIST

PLACEHOLDER = "<id>"


def routes(library, photo: str, video: str, key: str) -> list[tuple[str, str, dict | None]]:
    """Every media route that names one item, as (method, path, body), for this photo, video and HLS key."""
    rung = hls.variants(library.services.library.read(library.items["video"].id, MASTER_PLAYLIST).decode()
                        )[0].uri.split("/")[0]
    return [("GET", f"/api/media/{photo}", None), ("GET", f"/api/media/{video}", None),
            ("GET", f"/api/media/thumbnail/{photo}", None), ("GET", f"/api/media/thumbnail/{video}", None),
            ("GET", f"/api/media/preview/{video}", None), ("GET", f"/api/media/poster/{video}", None),
            ("GET", f"/api/media/poster/{photo}", None), ("GET", f"/api/media/stream/{photo}", None),
            ("GET", f"/api/media/stream/{video}", None),
            ("GET", f"/api/media/hls/{video}/{rung}/index.m3u8", None),
            ("GET", f"/api/media/hls/{video}/{rung}/seg_00000.ts", None),
            ("GET", f"/api/media/keys/{key}", None),
            ("PUT", f"/api/media/{video}/position", {"position": 1.0}),
            ("PUT", f"/api/media/{photo}/favorite", None), ("DELETE", f"/api/media/{photo}/favorite", None),
            ("GET", f"/api/media/{photo}/download", None), ("GET", f"/api/media/{video}/download", None)]


def _answer(client: AppClient, method: str, path: str, body: dict | None, ids: list[str]) -> tuple[int, str]:
    """Status and error body, with the ids asked for made one placeholder and the time stamp left out."""
    reply = client.request(method, path, body)
    error = dict((reply.json() or {}).get("error") or {})
    error.pop("timestamp", None)
    text = repr(error)
    for media_id in ids:
        text = text.replace(media_id, PLACEHOLDER)
    return reply.status, text


def test_every_media_route_answers_a_guest_for_an_unshared_item_as_for_no_item_at_all(sign_in, library):  # noqa: F811
    guest, _ = sign_in("guest")
    photo, video = library.items["image"].id, library.items["video"].id
    key = library.services.keys.key_id(video, "hls")
    missing_photo, missing_video, missing_key = new_id(), new_id(), new_id()
    hidden = routes(library, photo, video, key)
    absent = routes(library, missing_photo, missing_video, missing_key)
    everything = [photo, video, key, missing_photo, missing_video, missing_key]
    for (method, path, body), (_, path_absent, _) in zip(hidden, absent, strict=True):
        seen = _answer(guest, method, path, body, everything)
        expected = _answer(guest, method, path_absent, body, everything)
        assert seen == expected, path
        assert seen[0] == 404 and "MEDIA_001" in seen[1], path
    listed = guest.request("GET", "/api/media/library").json()
    assert listed["items"] == [] and listed["pagination"]["total"] == 0
    assert guest.request("GET", "/api/media/library?q=clip").json()["items"] == []
    assert guest.request("GET", "/api/media/library?favorite=true").json()["items"] == []


def test_the_same_routes_answer_a_guest_once_an_album_holding_the_items_is_shared(sign_in, library):  # noqa: F811
    member, _ = sign_in("member")
    guest, guest_name = sign_in("guest")
    photo, video = library.items["image"].id, library.items["video"].id
    album = member.request("POST", "/api/albums", {"name": "Holidays"}).json()
    try:
        assert member.request("POST", f"/api/albums/{album['id']}/items",
                              {"media_ids": [photo, video]}).status == 200
        unshared = guest.request("GET", f"/api/media/library?album={album['id']}")
        assert unshared.status == 404 and unshared.code == "MEDIA_001"
        assert member.request("POST", f"/api/albums/{album['id']}/shares",
                              {"username": guest_name}).status == 200
        for method, path, body in routes(library, photo, video, library.services.keys.key_id(video, "hls")):
            assert guest.request(method, path, body).status == 200, path
        listed = guest.request("GET", "/api/media/library").json()
        assert {item["id"] for item in listed["items"]} == {photo, video}
        assert [i["id"] for i in guest.request("GET", "/api/media/library?q=clip").json()["items"]] == [video]
        in_album = guest.request("GET", f"/api/media/library?album={album['id']}&type=image").json()
        assert [item["id"] for item in in_album["items"]] == [photo]
        assert member.request("DELETE", f"/api/albums/{album['id']}/shares/{guest_name}").status == 200
        again = guest.request("GET", f"/api/media/{photo}")
        assert again.status == 404 and again.code == "MEDIA_001"
    finally:
        member.request("DELETE", f"/api/albums/{album['id']}")


def test_members_and_admins_see_the_whole_library_without_any_album(sign_in, library):  # noqa: F811
    for role in ("member", "admin"):
        client, _ = sign_in(role)
        assert client.request("GET", "/api/media/library").json()["pagination"]["total"] == 2
        assert client.request("GET", f"/api/media/{library.items['video'].id}").status == 200

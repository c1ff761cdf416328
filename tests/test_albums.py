"""Albums, shares and favorites through the real app in process: who may make and change an album, names
matched whatever their case, audited sharing, the library filtered by album and by favorites, what deleting
an album or an item does, and the album events told to the accounts concerned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from tests.support import AppClient, InProcessApp
from vaultserver.db.models import AlbumItem, Favorite, new_id
from vaultserver.services.events import ALBUM_CHANGED
from vaultserver.services.principal import Principal

ALBUM_FIELDS = {"id", "name", "owner", "is_owner", "item_count", "cover_id", "shared_with", "created_at",
                "updated_at"}


@pytest.fixture(scope="module")
def sign_in(library) -> Iterator[Callable[..., tuple[AppClient, str]]]:
    """Signs a new account of `role` in to the app over the shared library: (client, username)."""
    from vaultserver.api import create_app

    running = InProcessApp(create_app(library.services))

    def signed_in(role: str = "member") -> tuple[AppClient, str]:
        account = library.make_user(role)
        client = AppClient(running)
        assert client.login(account.username, account.password).status == 200
        return client, account.username
    yield signed_in
    running.close()


@pytest.fixture
def album(sign_in) -> Iterator[tuple[AppClient, str, dict]]:
    """A new member's new album on the shared library: (owner's client, owner's name, album); gone after."""
    owner, name = sign_in()
    made = owner.request("POST", "/api/albums", {"name": "Summer 2026"})
    assert made.status == 201
    yield owner, name, made.json()
    owner.request("DELETE", f"/api/albums/{made.json()['id']}")


def test_a_member_makes_an_album_that_only_they_see_until_they_share_it(sign_in, album):
    owner, owner_name, made = album
    assert set(made) == ALBUM_FIELDS
    assert made["name"] == "Summer 2026" and made["owner"] == owner_name and made["is_owner"] is True
    assert made["item_count"] == 0 and made["cover_id"] is None and made["shared_with"] == []
    assert [a["id"] for a in owner.request("GET", "/api/albums").json()["albums"]] == [made["id"]]
    other, _ = sign_in()
    assert other.request("GET", "/api/albums").json()["albums"] == []
    for method, path, body in [("GET", f"/api/media/library?album={made['id']}", None),
                               ("PATCH", f"/api/albums/{made['id']}", {"name": "Mine now"}),
                               ("DELETE", f"/api/albums/{made['id']}", None),
                               ("POST", f"/api/albums/{made['id']}/shares", {"username": "x"})]:
        reply = other.request(method, path, body)
        nothing = other.request(method, path.replace(made["id"], new_id()), body)
        assert (reply.status, reply.code) == (nothing.status, nothing.code) == (404, "MEDIA_001"), path
    assert owner.request("POST", "/api/albums", {"name": "  "}).status == 400


def test_guests_cannot_make_albums_or_list_accounts(sign_in):
    guest, _ = sign_in("guest")
    refused = guest.request("POST", "/api/albums", {"name": "Mine"})
    assert refused.status == 403 and refused.code == "AUTH_004"
    assert guest.request("GET", "/api/accounts").status == 403
    assert guest.request("GET", "/api/albums").json() == {"albums": []}


def test_only_the_owner_or_an_admin_changes_an_album(sign_in, album, library):
    owner, _, made = album
    member, member_name = sign_in()
    assert owner.request("POST", f"/api/albums/{made['id']}/shares", {"username": member_name}).status == 200
    seen = member.request("GET", "/api/albums").json()["albums"]
    assert [(a["id"], a["is_owner"], a["shared_with"]) for a in seen] == [(made["id"], False, [])]
    photo = library.items["image"].id
    for method, path, body in [("PATCH", f"/api/albums/{made['id']}", {"name": "Mine now"}),
                               ("DELETE", f"/api/albums/{made['id']}", None),
                               ("POST", f"/api/albums/{made['id']}/items", {"media_ids": [photo]}),
                               ("DELETE", f"/api/albums/{made['id']}/shares/{member_name}", None)]:
        refused = member.request(method, path, body)
        assert refused.status == 403 and refused.code == "AUTH_004", path
        assert "owner or an administrator" in refused.json()["error"]["message"]
    admin, _ = sign_in("admin")
    renamed = admin.request("PATCH", f"/api/albums/{made['id']}", {"name": "Renamed by admin"})
    assert renamed.status == 200 and renamed.json()["name"] == "Renamed by admin"
    assert owner.request("GET", "/api/albums").json()["albums"][0]["name"] == "Renamed by admin"


def test_sharing_finds_accounts_whatever_the_case_of_their_name_and_is_audited(sign_in, album, library):
    owner, _, made = album
    _, guest_name = sign_in("guest")
    shares = f"/api/albums/{made['id']}/shares"
    shared = owner.request("POST", shares, {"username": guest_name.upper()})
    assert shared.status == 200 and shared.json()["shared_with"] == [guest_name]
    assert owner.request("POST", shares, {"username": guest_name}).json()["shared_with"] == [guest_name]
    unknown = owner.request("POST", shares, {"username": "nobody-here"})
    assert (unknown.status, unknown.code) == (404, "VALIDATION_001")
    assert "nobody-here" in unknown.json()["error"]["message"]
    assert owner.request("DELETE", f"{shares}/{guest_name.title()}").json()["shared_with"] == []
    audit = library.services.audit
    for event in ("album_shared", "album_unshared"):
        entry = audit.latest(event, lambda e: e.resource == made["id"])
        assert entry is not None and entry.outcome == "ok", event


def test_items_unknown_or_hidden_to_the_asker_refuse_the_whole_addition_naming_them(album, library):
    owner, _, made = album
    photo, missing = library.items["image"].id, new_id()
    items = f"/api/albums/{made['id']}/items"
    refused = owner.request("POST", items, {"media_ids": [photo, missing]})
    assert refused.status == 404 and refused.code == "MEDIA_001"
    assert refused.json()["error"]["details"]["ids"] == [missing]
    assert owner.request("GET", f"/api/albums/{made['id']}").json()["item_count"] == 0
    assert owner.request("POST", items, {"media_ids": "nope"}).status == 400
    added = owner.request("POST", items, {"media_ids": [photo, photo]}).json()
    assert (added["added"], added["item_count"], added["cover_id"]) == (1, 1, photo)
    assert owner.request("POST", items, {"media_ids": [photo]}).json()["added"] == 0
    removed = owner.request("DELETE", f"{items}/{photo}").json()
    assert removed["item_count"] == 0 and removed["cover_id"] is None
    assert owner.request("DELETE", f"{items}/{photo}").status == 404


def test_the_library_filters_by_album_with_the_usual_paging_and_sort(album, library):
    owner, _, made = album
    photo, video = library.items["image"].id, library.items["video"].id
    owner.request("POST", f"/api/albums/{made['id']}/items", {"media_ids": [photo, video]})
    page = owner.request("GET", f"/api/media/library?album={made['id']}&limit=1&sort=original_name&order=asc")
    assert [i["id"] for i in page.json()["items"]] == [photo]
    assert page.json()["pagination"] == {"page": 1, "limit": 1, "total": 2, "pages": 2}
    second = owner.request("GET", f"/api/media/library?album={made['id']}&limit=1&page=2&sort=original_name")
    assert [i["id"] for i in second.json()["items"]] == [photo]  # descending by default: the photo is last
    assert owner.request("GET", "/api/media/library?album=" + "../x").status == 404


def test_favorites_are_per_person_in_item_and_library_json(sign_in, library):
    alice, _ = sign_in()
    bob, _ = sign_in()
    photo, video = library.items["image"].id, library.items["video"].id
    assert alice.request("GET", f"/api/media/{photo}").json()["favorite"] is False
    assert alice.request("PUT", f"/api/media/{photo}/favorite").json() == {"favorite": True}
    assert alice.request("PUT", f"/api/media/{photo}/favorite").json() == {"favorite": True}
    assert alice.request("GET", f"/api/media/{photo}").json()["favorite"] is True
    hearts = {i["id"]: i["favorite"] for i in alice.request("GET", "/api/media/library").json()["items"]}
    assert hearts == {photo: True, video: False}
    favorites = alice.request("GET", "/api/media/library?favorite=true").json()
    assert [i["id"] for i in favorites["items"]] == [photo] and favorites["items"][0]["favorite"] is True
    assert bob.request("GET", f"/api/media/{photo}").json()["favorite"] is False
    assert bob.request("GET", "/api/media/library?favorite=true").json()["items"] == []
    assert alice.request("GET", "/api/media/library?favorite=maybe").status == 400
    assert alice.request("DELETE", f"/api/media/{photo}/favorite").json() == {"favorite": False}
    assert alice.request("GET", "/api/media/library?favorite=true").json()["items"] == []
    assert alice.request("PUT", f"/api/media/{new_id()}/favorite").code == "MEDIA_001"


def test_the_share_dialog_lists_the_other_active_accounts(sign_in, library):
    member, member_name = sign_in()
    _, other_name = sign_in("guest")
    accounts = member.request("GET", "/api/accounts").json()["accounts"]
    names = [a["username"] for a in accounts]
    assert member_name not in names and {"username": other_name, "role": "guest"} in accounts
    assert all(set(a) == {"username", "role"} for a in accounts)


def test_deleting_an_album_deletes_no_media(album, library):
    owner, _, made = album
    photo, video = library.items["image"].id, library.items["video"].id
    owner.request("POST", f"/api/albums/{made['id']}/items", {"media_ids": [photo, video]})
    assert owner.request("DELETE", f"/api/albums/{made['id']}").json() == {"ok": True}
    assert owner.request("GET", "/api/albums").json()["albums"] == []
    assert {item.id for item in library.services.library.all_items()} == {photo, video}
    assert owner.request("GET", f"/api/media/stream/{photo}").status == 200
    entry = library.services.audit.latest("album_deleted", lambda e: e.resource == made["id"])
    assert entry is not None


def test_deleting_an_item_takes_it_out_of_every_album_and_every_favorite(services, make_user, imports, media,
                                                                        run_pipeline):
    media.copy_into(media.image("gone.jpg", size=(320, 240)), imports)
    run_pipeline()
    (item,) = services.library.all_items()
    owner = make_user()
    who = Principal(owner.id, owner.username, owner.role, "s1")
    first = services.albums.create(who, "First")
    second = services.albums.create(who, "Second")
    for album in (first, second):
        services.albums.add_items(who, album.id, [item.id])
    services.media.mark_favorite(who, item.id, True)
    services.library.delete(item.id, actor=owner.username)
    assert [a.item_count for a in services.albums.list(who)] == [0, 0]
    with services.db.session() as session:
        assert session.get(AlbumItem, (first.id, item.id)) is None
        assert session.get(Favorite, (owner.id, item.id)) is None


def test_album_changes_are_told_to_the_owner_and_to_everyone_it_is_or_was_shared_with(services, make_user):
    owner, guest, stranger = make_user(), make_user("guest"), make_user()
    who = Principal(owner.id, owner.username, owner.role, "s1")

    async def watch() -> list[tuple[str, dict, frozenset[str] | None]]:
        subscription = services.events.subscribe()
        album = await asyncio.to_thread(services.albums.create, who, "Garden")
        await asyncio.to_thread(services.albums.share, who, album.id, guest.username)
        await asyncio.to_thread(services.albums.rename, who, album.id, "Garden 2026")
        await asyncio.to_thread(services.albums.unshare, who, album.id, guest.username)
        await asyncio.to_thread(services.albums.delete, who, album.id)
        told = []
        while (event := await subscription.next(0.5)) is not None:
            told.append((event.kind, event.data, event.users))
        services.events.unsubscribe(subscription)
        return told

    told = asyncio.run(watch())
    assert {kind for kind, _, _ in told} == {ALBUM_CHANGED} and len(told) == 5
    assert len({data["id"] for _, data, _ in told}) == 1
    assert [users for _, _, users in told] == [
        {owner.id}, {owner.id, guest.id}, {owner.id, guest.id}, {owner.id, guest.id}, {owner.id}]
    assert all(stranger.id not in (users or ()) for _, _, users in told)

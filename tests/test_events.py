"""The live gallery: `GET /api/events` on a real HTTPS server, read as a browser's EventSource reads it.

Each open stream is read on its own thread into a queue of (kind, data) pairs; comments (the keep-alive)
are counted. Most tests publish on the server's own event hub (the server runs in this process), so they
take a fraction of a second; one drops real files into the import folder and hears the pipeline.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlmodel import select

from tests.conftest import OWNER, OWNER_PASSWORD, PASSWORD, VIEWER, VIEWER_PASSWORD, wait_for
from vaultserver.api import events as event_stream
from vaultserver.db.models import Album, AlbumItem, AlbumShare, DeviceSession, utcnow
from vaultserver.services.events import ALBUM_CHANGED, ITEM_ADDED, SESSION_ENDED, Event, EventHub
from vaultserver.services.item_events import ItemEvents

QUIET = 0.5  # how long a stream must stay silent for "nothing arrived" (every test ends with a positive)


class EventStream:
    """One open `GET /api/events`, read on a thread like an EventSource."""

    def __init__(self, port: int, context, headers: dict[str, str]) -> None:
        self.events: queue.Queue[tuple[str, dict] | None] = queue.Queue()  # None: the stream ended
        self.comments = 0
        self.connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=30)
        self.connection.request("GET", "/api/events", headers={"Accept": "text/event-stream", **headers})
        self.response = self.connection.getresponse()
        self.ended = threading.Event()
        if self.response.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        kind, data = "message", ""
        try:
            while line := self.response.readline():
                text = line.decode().rstrip("\r\n")
                if text.startswith(":"):
                    self.comments += 1
                elif text.startswith("event:"):
                    kind = text[6:].strip()
                elif text.startswith("data:"):
                    data += text[5:].strip()
                elif not text and data:
                    self.events.put((kind, json.loads(data)))
                    kind, data = "message", ""
        except (OSError, ValueError, AttributeError):  # closed under the reader by the test
            pass
        finally:
            self.ended.set()
            self.events.put(None)

    def next(self, timeout: float = 20.0) -> tuple[str, dict] | None:
        """The next event (None once the stream has ended)."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no event arrived in time") from None

    def until(self, kind: str, timeout: float = 20.0, **match) -> tuple[list[tuple[str, dict]], dict]:
        """Read up to the first `kind` event whose data has `match`; returns what came before and its data."""
        before: list[tuple[str, dict]] = []
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.01, deadline - time.monotonic()))
            assert event is not None, f"the stream ended before {kind}; it had sent {before}"
            if event[0] == kind and all(event[1].get(k) == v for k, v in match.items()):
                return before, event[1]
            before.append(event)

    def silent_for(self, seconds: float) -> bool:
        try:
            event = self.events.get(timeout=seconds)
        except queue.Empty:
            return True
        self.events.put(event)
        return False

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def open_stream(server, make_client) -> Iterator[Callable[..., EventStream]]:
    streams: list[EventStream] = []
    context = make_client().context

    def open_(token: str | None = None, cookies: dict[str, str] | None = None) -> EventStream:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        stream = EventStream(server.endpoint.port, context, headers)
        streams.append(stream)
        return stream
    yield open_
    for stream in streams:
        stream.close()


@pytest.fixture
def signed_in(make_client):
    def sign_in(username: str, password: str):
        client = make_client()
        reply = client.login(username, password)
        assert reply.status == 200, reply.body
        client.session_id = reply.json()["session_id"]
        return client
    return sign_in


@pytest.fixture
def guest(services, signed_in):
    user = services.users.create("grandma", PASSWORD, "guest")
    client = signed_in("grandma", PASSWORD)
    client.user_id = user.id
    return client


def share_with(services, user_id: str, media_id: str) -> None:
    """An album holding `media_id`, shared with `user_id` (rows written as the album service would)."""
    owner = services.users.by_name(OWNER)
    with services.db.session() as session:
        album = Album(name="Holiday", owner_id=owner.id)
        session.add(album)
        session.flush()
        session.add(AlbumItem(album_id=album.id, media_id=media_id))
        session.add(AlbumShare(album_id=album.id, user_id=user_id))


def test_the_stream_refuses_anyone_not_signed_in(open_stream):
    stream = open_stream()
    assert stream.response.status == 401
    assert json.loads(stream.response.read())["error"]["code"] == "AUTH_002"


def test_a_members_page_hears_a_photo_arrive_and_go(services, open_stream, signed_in, media):
    viewer = signed_in(VIEWER, VIEWER_PASSWORD)
    stream = open_stream(viewer.token)
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    assert stream.response.getheader("Cache-Control") == "no-store"
    assert stream.response.getheader("X-Accel-Buffering") == "no"
    imports = services.settings.current.import_path(services.paths)
    started = time.monotonic()
    media.copy_into(media.image("live.jpg", size=(320, 240)), imports)

    _, added = stream.until(ITEM_ADDED)
    item = added["item"]
    assert (item["id"], item["original_name"], item["type"]) == (added["id"], "live.jpg", "image")
    assert time.monotonic() - started < 30
    assert viewer.request("GET", f"/api/media/{added['id']}").status == 200

    services.library.delete(added["id"], actor="test")
    _, deleted = stream.until("item_deleted")
    assert deleted == {"id": added["id"]}


def test_a_converting_video_is_told_with_its_progress_then_as_added(services, open_stream, signed_in, media):
    viewer = signed_in(VIEWER, VIEWER_PASSWORD)
    stream = open_stream(viewer.token)
    imports = services.settings.current.import_path(services.paths)
    media.copy_into(media.video(seconds=4, size="320x240", audio=False), imports, "growing.mp4")

    _, listed = stream.until("item_converting")
    media_id = listed["id"]
    assert listed["item"]["status"] == "converting" and listed["progress"] == 0.0
    progress, added = stream.until(ITEM_ADDED, timeout=120, id=media_id)
    assert added["item"]["status"] == "ready"
    told = [data["progress"] for kind, data in progress if kind == "item_converting"]
    assert told == sorted(told) and all(0.0 <= p <= 1.0 for p in told)


def test_a_guest_hears_only_of_items_shared_with_them(services, open_stream, signed_in, guest):
    member = open_stream(signed_in(VIEWER, VIEWER_PASSWORD).token)
    guests_page = open_stream(guest.token)
    hub = services.events
    shared = "b" * 32

    hub.publish(Event(ITEM_ADDED, {"id": "a" * 32}, media_id="a" * 32))
    hub.publish(Event(ITEM_ADDED, {"id": shared}, media_id=shared, guests=frozenset({guest.user_id})))
    hub.publish(Event(ALBUM_CHANGED, {"id": "c" * 32}, users=frozenset({guest.user_id})))
    before, _ = member.until(ITEM_ADDED, id=shared)
    assert before == [(ITEM_ADDED, {"id": "a" * 32})]
    before, _ = guests_page.until(ALBUM_CHANGED)
    assert before == [(ITEM_ADDED, {"id": shared})]
    assert member.silent_for(QUIET)  # the album is not the member's


def test_a_deleted_item_is_told_to_the_guests_it_was_shared_with(services, open_stream, signed_in, guest,
                                                                  media):
    imports = services.settings.current.import_path(services.paths)
    media.copy_into(media.image("shared.jpg", size=(300, 200)), imports)
    item = wait_for(lambda: next((i for i in services.library.all_items()
                                  if i.original_name == "shared.jpg"), None))
    share_with(services, guest.user_id, item.id)
    guests_page = open_stream(guest.token)
    assert guest.request("GET", f"/api/media/{item.id}").status == 200

    services.library.delete(item.id, actor="test")
    _, deleted = guests_page.until("item_deleted")
    assert deleted == {"id": item.id}


def test_signing_out_ends_that_devices_page_and_no_other(open_stream, signed_in):
    phone, laptop = signed_in(VIEWER, VIEWER_PASSWORD), signed_in(VIEWER, VIEWER_PASSWORD)
    phone_page, laptop_page = open_stream(phone.token), open_stream(laptop.token)

    assert phone.request("POST", "/api/auth/logout").status == 200
    _, ended = phone_page.until(SESSION_ENDED)
    assert ended["reason"] == "logout"
    assert phone_page.next() is None  # and the stream closes
    assert laptop_page.silent_for(QUIET) and not laptop_page.ended.is_set()


def test_signing_out_everywhere_else_ends_the_other_pages(open_stream, signed_in):
    phone, laptop = signed_in(VIEWER, VIEWER_PASSWORD), signed_in(VIEWER, VIEWER_PASSWORD)
    phone_page, laptop_page = open_stream(phone.token), open_stream(laptop.token)

    assert laptop.request("DELETE", "/api/sessions").status == 200
    _, ended = phone_page.until(SESSION_ENDED)
    assert ended["reason"] == "signed_out_everywhere"
    assert phone_page.next() is None
    assert laptop_page.silent_for(QUIET) and not laptop_page.ended.is_set()


def test_an_admin_disabling_the_account_ends_its_pages(services, open_stream, signed_in):
    viewer = signed_in(VIEWER, VIEWER_PASSWORD)
    page = open_stream(viewer.token)
    admin = signed_in(OWNER, OWNER_PASSWORD)
    user_id = services.users.by_name(VIEWER).id
    assert admin.request("PATCH", f"/api/admin/users/{user_id}", {"is_active": False}).status == 200
    page.until(SESSION_ENDED)
    assert page.next() is None


def test_a_refreshed_token_keeps_the_page_open(services, make_client, open_stream):
    browser = make_client()
    assert browser.request("POST", "/api/auth/login", {"username": VIEWER, "password": VIEWER_PASSWORD},
                           use_cookies=True).status == 200
    first_cookie = browser.cookies["vault_access"]
    page = open_stream(cookies={"vault_access": first_cookie})
    assert page.response.status == 200

    origin = {"Origin": f"https://localhost:{browser.port}"}
    assert browser.request("POST", "/api/auth/refresh", headers=origin, use_cookies=True).status == 200
    assert browser.cookies["vault_access"] != first_cookie
    services.events.publish(Event(ITEM_ADDED, {"id": "d" * 32}, media_id="d" * 32))
    assert page.until(ITEM_ADDED)[1] == {"id": "d" * 32}
    assert not page.ended.is_set()


def test_an_idle_session_ends_its_open_page(services, open_stream, signed_in, monkeypatch):
    monkeypatch.setattr(event_stream, "CHECK_SECONDS", 0.2)
    viewer = signed_in(VIEWER, VIEWER_PASSWORD)
    page = open_stream(viewer.token)
    wait_for(lambda: page.comments >= 3, timeout=10)  # checked while quiet, and still open
    assert not page.ended.is_set()

    idle = timedelta(minutes=services.settings.current.idle_timeout_minutes, seconds=1)
    monkeypatch.setattr(services.sessions, "clock", lambda: utcnow() + idle)
    _, ended = page.until(SESSION_ENDED)
    assert "inactivity" in ended["message"]
    assert page.next() is None
    with services.db.session() as session:
        row = session.exec(select(DeviceSession).where(DeviceSession.id == viewer.session_id)).one()
    assert row.revoked_reason == "idle_timeout"


def test_an_open_page_does_not_count_as_activity(services, open_stream, signed_in, monkeypatch):
    monkeypatch.setattr(event_stream, "CHECK_SECONDS", 0.1)
    viewer = signed_in(VIEWER, VIEWER_PASSWORD)
    page = open_stream(viewer.token)

    def last_activity():
        with services.db.session() as session:
            return session.get(DeviceSession, viewer.session_id).last_activity_at
    opened = last_activity()
    services.sessions._activity_written.clear()  # a request now would write its activity at once
    wait_for(lambda: page.comments >= 4, timeout=10)
    assert last_activity() == opened


def test_stopping_the_server_with_a_page_open_is_prompt(server, open_stream, signed_in):
    page = open_stream(signed_in(VIEWER, VIEWER_PASSWORD).token)
    assert page.response.status == 200
    started = time.monotonic()
    server.stop_server()
    assert time.monotonic() - started < event_stream_grace()
    assert page.next(timeout=5) is None


def event_stream_grace() -> float:
    """Less than the server's grace for open connections: the stream must not be what it waits for."""
    from vaultserver.server import GRACE_SECONDS

    return GRACE_SECONDS * 0.75


def test_converting_progress_is_told_at_most_once_a_second_per_item(services):
    told: list[Event] = []
    events = ItemEvents(RecordingHub(told), services.media.access)
    for tick in range(100):
        events.converting("e" * 32, tick / 100)
        events.converting("f" * 32, tick / 100)
    assert [(e.data["id"], e.data["progress"]) for e in told] == [("e" * 32, 0.0), ("f" * 32, 0.0)]


def test_a_failure_to_tell_the_pages_never_undoes_the_change(services, imports, run_pipeline, media,
                                                              make_user, monkeypatch):
    def broken(_event: Event) -> None:
        raise RuntimeError("the hub is broken")
    monkeypatch.setattr(services.events, "publish", broken)
    monkeypatch.setattr(services.media.access, "guests_seeing", broken)
    media.copy_into(media.image("kept.jpg", size=(200, 150)), imports)
    run_pipeline()
    (item,) = services.library.all_items()

    services.library.delete(item.id, actor="test")
    assert services.library.all_items() == []
    account = make_user()
    tokens = services.sessions.create(services.users.get(account.id))
    services.sessions.revoke(tokens.session_id, "logout")
    assert services.sessions.list(account.id) == []


class RecordingHub(EventHub):
    def __init__(self, told: list[Event]) -> None:
        super().__init__()
        self.told = told

    def publish(self, event: Event) -> None:
        self.told.append(event)

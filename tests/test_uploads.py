"""Resumable uploads (tus 1.0.0) driven over real HTTPS with a plain client, into the real pipeline."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from tests.conftest import OWNER, OWNER_PASSWORD, PASSWORD, VIEWER, VIEWER_PASSWORD, start_server, wait_for
from tests.support import ApiClient, plaintext_findings
from vaultserver.db.models import MediaFile, Upload, User, utcnow
from vaultserver.services.uploads import display_name

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_TYPE = {"Content-Type": "application/offset+octet-stream"}


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(client: ApiClient, length: int, filename: str = "photo.jpg", **headers: str):
    described = metadata(filename=filename, filetype="image/jpeg")
    return client.request("POST", "/api/uploads", headers={
        **TUS, "Upload-Length": str(length), "Upload-Metadata": described, **headers})


def patch(client: ApiClient, location: str, offset: int, body: bytes, **headers: str):
    all_headers = {**TUS, **OFFSET_TYPE, "Upload-Offset": str(offset),
                   "Authorization": f"Bearer {client.token}", **headers}
    return client.send("PATCH", location, body, all_headers)


def head(client: ApiClient, location: str):
    return client.request("HEAD", location, headers=TUS)


@pytest.fixture
def viewer(make_client) -> ApiClient:
    client = make_client()
    assert client.login(VIEWER, VIEWER_PASSWORD).status == 200
    return client


@pytest.fixture
def photo(media) -> bytes:
    return media.image("upload.jpg", size=(800, 600)).read_bytes()


def test_options_announce_tus_without_signing_in(make_client):
    reply = make_client().request("OPTIONS", "/api/uploads", token="")
    assert reply.status == 204
    assert reply.headers["Tus-Version"] == "1.0.0" and reply.headers["Tus-Resumable"] == "1.0.0"
    assert set(reply.headers["Tus-Extension"].split(",")) >= {"creation", "termination", "expiration"}
    assert int(reply.headers["Tus-Max-Size"]) == 50 * 1024**3


def test_a_photo_sent_in_pieces_becomes_the_uploaders_item_and_no_plaintext_copy_remains(server, viewer,
                                                                                           photo):
    services = server.services
    created = create(viewer, len(photo), filename="../../Holiday\x07 \u202egpj.jpg")
    assert created.status == 201 and created.headers["Tus-Resumable"] == "1.0.0"
    location = created.headers["Location"]
    assert location.startswith("/api/uploads/") and created.headers["Upload-Expires"].endswith("GMT")
    upload_id = location.rsplit("/", 1)[1]
    assert (services.paths.private / "uploads" / upload_id).stat().st_mode & 0o077 == 0

    first = patch(viewer, location, 0, photo[:1000])
    assert first.status == 204 and first.headers["Upload-Offset"] == "1000"
    state = head(viewer, location)
    assert state.status == 200 and state.headers["Upload-Offset"] == "1000"
    assert state.headers["Upload-Length"] == str(len(photo)) and state.headers["Cache-Control"] == "no-store"
    assert viewer.request("GET", location).json()["status"] == "uploading"

    last = patch(viewer, location, 1000, photo[1000:])
    assert last.status == 204 and last.headers["Upload-Offset"] == str(len(photo))
    done = wait_for(lambda: (s := viewer.request("GET", location).json())["status"] == "added" and s)
    assert done["filename"] == "Holiday gpj.jpg" and done["error"] is None
    with services.db.session() as session:
        item = session.get(MediaFile, done["media_id"])
        assert item is not None and item.uploaded_by == session.get(User, item.uploaded_by).id
        assert session.get(User, item.uploaded_by).username == VIEWER
    assert list((services.paths.private / "uploads").iterdir()) == []
    imports = services.settings.current.import_path(services.paths)
    assert [p for p in imports.rglob("*") if p.is_file()] == []
    assert plaintext_findings(services.paths.library) == []
    entry = services.audit.recent(event="upload_completed")[0]
    assert entry.username == VIEWER

    again = create(viewer, len(photo))
    assert patch(viewer, again.headers["Location"], 0, photo).status == 204
    twin = wait_for(lambda: (s := viewer.request("GET", again.headers["Location"]).json())["status"]
                    in ("duplicate", "failed") and s)
    assert twin["status"] == "duplicate" and twin["media_id"] == done["media_id"]


def test_a_wrong_offset_is_refused_and_the_upload_goes_on_from_the_right_one(server, viewer):
    location = create(viewer, 100).headers["Location"]
    assert patch(viewer, location, 0, b"a" * 40).status == 204
    wrong = patch(viewer, location, 10, b"b" * 40)
    assert wrong.status == 409 and wrong.code == "VALIDATION_001"
    assert wrong.headers["Tus-Resumable"] == "1.0.0"
    assert head(viewer, location).headers["Upload-Offset"] == "40"
    assert patch(viewer, location, 40, b"c" * 61).status == 413  # past the length
    assert patch(viewer, location, 40, b"c" * 30).headers["Upload-Offset"] == "70"


def test_a_tail_lost_to_a_power_cut_is_sent_again(server, viewer):
    location = create(viewer, 100).headers["Location"]
    assert patch(viewer, location, 0, b"a" * 50).status == 204
    os.truncate(server.services.uploads.file_of(location.rsplit("/", 1)[1]), 30)
    assert patch(viewer, location, 50, b"b" * 50).status == 409
    assert head(viewer, location).headers["Upload-Offset"] == "30"
    assert patch(viewer, location, 30, b"c" * 70).headers["Upload-Offset"] == "100"


def test_protocol_mistakes_are_answered_as_tus_says(server, viewer):
    location = create(viewer, 100).headers["Location"]
    wrong_version = viewer.request("POST", "/api/uploads", headers={"Tus-Resumable": "0.2.2",
                                                                    "Upload-Length": "10"})
    assert wrong_version.status == 412 and wrong_version.headers["Tus-Version"] == "1.0.0"
    assert patch(viewer, location, 0, b"x", **{"Content-Type": "application/json"}).status == 415
    assert viewer.request("POST", "/api/uploads", headers=TUS).status == 400  # no Upload-Length
    bad = viewer.request("POST", "/api/uploads", headers={**TUS, "Upload-Length": "5",
                                                          "Upload-Metadata": "filename !!!"})
    assert bad.status == 400 and bad.code == "VALIDATION_001"


def test_a_dropped_connection_keeps_what_arrived_and_resumes_from_there(server, viewer, paths):
    body = bytes(range(256)) * 8192  # 2 MiB
    location = create(viewer, len(body)).headers["Location"]
    context = ssl.create_default_context(cafile=str(paths.private / "tls" / "ca.pem"))
    with socket.create_connection(("127.0.0.1", server.endpoint.port)) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall((f"PATCH {location} HTTP/1.1\r\nHost: localhost\r\nTus-Resumable: 1.0.0\r\n"
                     f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                     f"Authorization: Bearer {viewer.token}\r\nContent-Length: {len(body)}\r\n\r\n").encode())
        tls.sendall(body[:700_000])
        time.sleep(1.0)  # read by the server (a loopback takes milliseconds), then the connection drops
    offset = int(wait_for(lambda: (o := head(viewer, location).headers["Upload-Offset"]) != "0" and o))
    assert offset == 700_000
    finished = patch(viewer, location, offset, body[offset:])
    assert finished.status == 204 and finished.headers["Upload-Offset"] == str(len(body))


def test_a_second_patch_takes_over_from_a_connection_that_went_silent(server, viewer, paths):
    body = b"z" * 300_000
    location = create(viewer, len(body)).headers["Location"]
    context = ssl.create_default_context(cafile=str(paths.private / "tls" / "ca.pem"))
    with socket.create_connection(("127.0.0.1", server.endpoint.port)) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall((f"PATCH {location} HTTP/1.1\r\nHost: localhost\r\nTus-Resumable: 1.0.0\r\n"
                     f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                     f"Authorization: Bearer {viewer.token}\r\nContent-Length: {len(body)}\r\n\r\n").encode())
        tls.sendall(body[:1000])  # then silence, the connection left open (a phone that lost its Wi-Fi)
        time.sleep(1.0)
        assert head(viewer, location).headers["Upload-Offset"] == "0"  # nothing recorded yet
        assert patch(viewer, location, 0, body[:10]).status == 409  # the silent one's bytes count
        offset = int(head(viewer, location).headers["Upload-Offset"])
        assert offset == 1000
        assert patch(viewer, location, offset, body[offset:]).status == 204


def test_limits_refuse_a_file_before_any_byte(server, viewer, monkeypatch):
    too_big = create(viewer, 50 * 1024**3 + 1)
    assert too_big.status == 413 and too_big.code == "VALIDATION_001"
    assert too_big.headers["Tus-Resumable"] == "1.0.0"
    server.services.settings.update(max_upload_gb=10_000)
    from vaultserver.services import uploads

    class Nearly:
        free = 3 * 1024**3

    monkeypatch.setattr(uploads.shutil, "disk_usage", lambda _path: Nearly)
    assert create(viewer, 2 * 1024**3 + 1).status == 413  # the margin stays free
    first = create(viewer, 1536 * 1024**2)
    assert first.status == 201
    assert create(viewer, 1024**3).status == 413  # the first one's bytes are spoken for
    assert list((server.services.paths.private / "uploads").iterdir()) == [
        server.services.paths.private / "uploads" / first.headers["Location"].rsplit("/", 1)[1]]


def test_an_account_holds_only_so_many_unfinished_uploads(server, viewer, make_client, monkeypatch):
    from vaultserver.services import uploads

    monkeypatch.setattr(uploads, "OPEN_PER_ACCOUNT", 3)
    started = [create(viewer, 100).headers["Location"] for _ in range(3)]
    refused = create(viewer, 100)
    assert refused.status == 429 and refused.code == "AUTH_005"
    assert refused.json()["error"]["details"]["limit"] == 3
    owner = make_client()
    owner.login(OWNER, OWNER_PASSWORD)
    assert create(owner, 100).status == 201  # one account's uploads don't hold up another's
    assert patch(viewer, started[0], 0, b"x" * 100).status == 204  # a finished one frees its place
    assert create(viewer, 100).status == 201


def test_a_terminated_upload_is_gone(server, viewer, paths):
    location = create(viewer, 100).headers["Location"]
    patch(viewer, location, 0, b"q" * 50)
    deleted = viewer.request("DELETE", location, headers=TUS)
    assert deleted.status == 204 and deleted.headers["Tus-Resumable"] == "1.0.0"
    assert head(viewer, location).status == 404
    assert patch(viewer, location, 50, b"q").status == 404
    assert list((paths.private / "uploads").iterdir()) == []


def test_a_silent_upload_expires_and_is_swept(server, viewer, paths):
    location = create(viewer, 100).headers["Location"]
    patch(viewer, location, 0, b"s" * 10)
    upload_id = location.rsplit("/", 1)[1]
    with server.services.db.session() as session:
        row = session.get(Upload, upload_id)
        row.updated_at = utcnow() - timedelta(hours=25)
        session.add(row)
    assert head(viewer, location).status == 410
    assert patch(viewer, location, 10, b"s").status == 410
    assert server.services.uploads.sweep() == 1
    assert head(viewer, location).status == 404
    assert not (paths.private / "uploads" / upload_id).exists()


def test_the_runtime_sweeps_expired_uploads_when_it_starts(paths, services):
    user = services.users.create("sender", PASSWORD, "member")
    row = Upload(user_id=user.id, filename="old.mp4", length=10, updated_at=utcnow() - timedelta(hours=30))
    with services.db.session() as session:
        session.add(row)
    left = services.uploads.file_of(row.id)
    left.write_bytes(b"12345")
    runtime = start_server(paths, services)
    try:
        wait_for(lambda: not left.exists())
        with services.db.session() as session:
            assert session.get(Upload, row.id) is None
    finally:
        runtime.stop()


def test_an_upload_is_its_uploaders_alone_and_guests_cannot_upload(server, viewer, make_client):
    location = create(viewer, 100).headers["Location"]
    owner = make_client()
    owner.login(OWNER, OWNER_PASSWORD)
    assert head(owner, location).status == 404
    assert patch(owner, location, 0, b"x").status == 404
    assert owner.request("GET", location).status == 404
    assert owner.request("DELETE", location, headers=TUS).status == 404

    server.services.users.create("guest1", PASSWORD, "guest")
    guest = make_client()
    guest.login("guest1", PASSWORD)
    refused = create(guest, 100)
    assert refused.status == 403 and refused.code == "AUTH_004"
    with server.services.db.session() as session:
        row = session.exec(select(User).where(User.username == OWNER)).one()
        row.can_upload = False
        session.add(row)
    assert create(owner, 100).status == 403
    assert make_client().request("POST", "/api/uploads", headers={**TUS, "Upload-Length": "1"},
                                 token="").status == 401


def test_a_cookie_upload_from_another_site_is_refused(server, viewer):
    viewer.cookies = {}
    viewer.login(VIEWER, VIEWER_PASSWORD)
    headers = {**TUS, "Upload-Length": "1", "Origin": "https://evil.example"}
    reply = viewer.request("POST", "/api/uploads", headers=headers, use_cookies=True)
    assert reply.status == 403 and reply.code == "SEC_002"


def test_a_share_that_reaches_vault_itself_keeps_nothing_and_sends_the_page_to_say_so(server, viewer, paths):
    # The share worker normally takes the Share sheet's POST in the browser; without it the form lands here.
    boundary = "vaultshare"
    part = (f'--{boundary}\r\nContent-Disposition: form-data; name="media"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n")
    form = part.encode() + os.urandom(256 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    viewer.cookies = {}
    viewer.login(VIEWER, VIEWER_PASSWORD)
    cookies = "; ".join(f"{name}={value}" for name, value in viewer.cookies.items())
    reply = viewer.send("POST", "/share", form,
                        {"Content-Type": f"multipart/form-data; boundary={boundary}", "Cookie": cookies})
    assert reply.status == 303 and reply.headers["Location"] == "/?shared=lost"
    kept = [*server.services.settings.current.import_path(paths).rglob("*"),
            *(paths.private / "uploads").rglob("*")]
    assert not [path for path in kept if path.is_file()]
    assert viewer.request("GET", "/share-worker.js").status == 200  # the worker the page installs


@pytest.mark.parametrize(("given", "shown"), [
    ("../../etc/passwd", "passwd"), ("C:\\Users\\me\\IMG_1.HEIC", "IMG_1.HEIC"),
    (".hidden.jpg", "hidden.jpg"),
    ("bad\x00\x1b[31mname\u202e.mp4", "bad[31mname.mp4"), ("", "upload"), ("/", "upload"),
    ("x" * 300 + ".jpeg", "x" * 195 + ".jpeg"),
])
def test_a_file_name_is_only_a_display_name(given, shown):
    assert display_name(given) == shown


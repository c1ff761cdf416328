"""Downloads (`GET /api/media/{id}/download`): a photo as its kept original or its WebP with ranges, a video
as an MP4 remuxed on the fly that ffmpeg decodes whole, the account's download right, the audit entry, and no
ffmpeg left running when a viewer goes away in the middle of a download (over real HTTPS).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import FAST_SETTINGS, PASSWORD, wait_for
from tests.support import AppClient, InProcessApp, play_hls
from vaultserver import ffmpeg as ffmpeg_runs
from vaultserver.config import AppPaths
from vaultserver.crypto.tls import ensure_certificate
from vaultserver.pipeline import Pipeline
from vaultserver.server import HttpsServer, client_context
from vaultserver.services import open_services


@pytest.fixture(scope="module")
def sign_in(library) -> Iterator:
    """Signs a new account of `role` in to the app over the shared library: (client, account)."""
    from vaultserver.api import create_app

    running = InProcessApp(create_app(library.services))

    def signed_in(role: str = "member"):
        account = library.make_user(role)
        client = AppClient(running)
        assert client.login(account.username, account.password).status == 200
        return client, account
    yield signed_in
    running.close()


def test_a_downloaded_video_is_an_mp4_that_ffmpeg_decodes_whole(sign_in, library, tmp_path, ffmpeg_bin):
    member, _ = sign_in()
    video = library.items["video"]
    reply = member.request("GET", f"/api/media/{video.id}/download")
    assert reply.status == 200, reply.body[:300]
    assert reply.headers["Content-Type"] == "video/mp4"
    assert reply.headers["Content-Disposition"] == (
        "attachment; filename=\"clip.mp4\"; filename*=UTF-8''clip.mp4")
    assert reply.headers["Accept-Ranges"] == "none"
    saved = tmp_path / "clip.mp4"
    saved.write_bytes(reply.body)
    checked = subprocess.run([ffmpeg_bin, "-v", "error", "-i", str(saved), "-f", "null", "-"],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr
    decoded = subprocess.run([ffmpeg_bin, "-hide_banner", "-i", str(saved), "-f", "null", "-"],
                             capture_output=True, text=True, timeout=120)
    frames = int(decoded.stderr.rsplit("frame=", 1)[1].split()[0])
    assert "Video: h264" in decoded.stderr and "Audio: aac" in decoded.stderr
    assert frames == play_hls(library.services, video.id, tmp_path / "hls", ffmpeg_bin).frames


def test_a_photo_without_a_kept_original_downloads_as_its_webp_and_ranges_work(sign_in, library):
    member, _ = sign_in()
    photo = library.items["image"]
    whole = member.request("GET", f"/api/media/{photo.id}/download")
    assert whole.status == 200 and whole.headers["Content-Type"] == "image/webp"
    assert whole.body == member.request("GET", f"/api/media/stream/{photo.id}").body
    assert whole.headers["Content-Disposition"].startswith('attachment; filename="api.webp"')
    tail = member.request("GET", f"/api/media/{photo.id}/download", headers={"Range": "bytes=-100"})
    assert tail.status == 206 and tail.body == whole.body[-100:]
    size = len(whole.body)
    assert tail.headers["Content-Range"] == f"bytes {size - 100}-{size - 1}/{size}"


@pytest.fixture(scope="module")
def keeping(tmp_path_factory, media) -> Iterator:
    """A data folder that keeps originals, holding one photo with a name that needs encoding."""
    paths = AppPaths.scratch(tmp_path_factory.mktemp("keeping"), **FAST_SETTINGS, keep_originals=True)
    services = open_services(paths)
    source = media.image("original.jpg", size=(400, 300))
    media.copy_into(source, services.settings.current.import_path(paths), "Été à Nice.jpg")
    assert Pipeline(services).process_once(timeout=300)
    from vaultserver.api import create_app

    running = InProcessApp(create_app(services))
    services.users.create("keeper", PASSWORD, "member")
    client = AppClient(running)
    assert client.login("keeper", PASSWORD).status == 200
    yield client, services.library.all_items()[0], source.read_bytes()
    running.close()
    services.close()


def test_a_photo_downloads_as_the_kept_original_byte_for_byte_with_ranges(keeping):
    client, item, original = keeping
    whole = client.request("GET", f"/api/media/{item.id}/download")
    assert whole.status == 200 and whole.body == original
    assert whole.headers["Content-Type"] == "image/jpeg"
    assert whole.headers["Content-Disposition"] == (
        f"attachment; filename=\"_t_ _ Nice.jpg\"; filename*=UTF-8''{quote('Été à Nice.jpg', safe='')}")
    part = client.request("GET", f"/api/media/{item.id}/download", headers={"Range": "bytes=10-1009"})
    assert part.status == 206 and part.body == original[10:1010]
    assert part.headers["Content-Range"] == f"bytes 10-1009/{len(original)}"


def test_an_account_whose_downloads_are_turned_off_is_refused_until_they_are_turned_on(sign_in, library):
    admin, _ = sign_in("admin")
    member, account = sign_in()
    photo = library.items["image"].id
    assert member.request("GET", "/api/auth/me").json()["user"]["can_download"] is True
    turned = admin.request("PATCH", f"/api/admin/users/{account.id}", {"can_download": False})
    assert turned.status == 200 and turned.json()["user"]["can_download"] is False
    assert turned.json()["user"]["can_upload"] is True
    assert member.request("GET", "/api/auth/me").json()["user"]["can_download"] is False
    for item in library.items.values():
        refused = member.request("GET", f"/api/media/{item.id}/download")
        assert refused.status == 403 and refused.code == "AUTH_004"
        assert refused.json()["error"]["message"] == "Downloads are turned off for this account"
    assert member.request("GET", f"/api/media/stream/{photo}").status == 200  # viewing stays
    bad = admin.request("PATCH", f"/api/admin/users/{account.id}", {"can_download": "no"})
    assert bad.status == 400 and bad.json()["error"]["details"] == {"field": "can_download"}
    assert admin.request("PATCH", f"/api/admin/users/{account.id}", {"can_download": True}).status == 200
    assert member.request("GET", f"/api/media/{photo}/download").status == 200


def test_every_download_is_audited_with_who_and_what(sign_in, library):
    member, account = sign_in()
    photo = library.items["image"].id
    assert member.request("GET", f"/api/media/{photo}/download").status == 200
    entries = library.services.audit.page(limit=20, event="media_downloaded", username=account.username)
    assert [(e.resource, e.details["filename"], e.ip_address) for e in entries] == [
        (photo, "api.webp", "127.0.0.1")]


@pytest.fixture(scope="module")
def served(library) -> Iterator[tuple[HttpsServer, Path]]:
    """The shared library behind a real HTTPS server (no pipeline)."""
    files = ensure_certificate(library.paths)
    server = HttpsServer(library.services, files)
    server.start("127.0.0.1", 0)
    yield server, library.paths.private / "tls" / "ca.pem"
    server.stop()


def test_a_viewer_who_goes_away_mid_download_leaves_no_ffmpeg_running(served, library, monkeypatch):
    server, ca = served
    account = library.make_user()
    started: list[subprocess.Popen] = []
    real_start, real_stream = ffmpeg_runs.start, library.services.library.top_rung_stream
    released = threading.Event()

    def recorded(cmd, **kwargs):
        started.append(real_start(cmd, **kwargs))
        return started[-1]

    def slow_disk(media_id):
        chunks, seconds = real_stream(media_id)

        def held() -> Iterator[bytes]:
            yield from chunks
            released.wait(30)  # the rest of a long film, still being read from disk
        return held(), seconds

    monkeypatch.setattr(ffmpeg_runs, "start", recorded)
    monkeypatch.setattr(library.services.library, "top_rung_stream", slow_disk)
    connection = http.client.HTTPSConnection("localhost", server.endpoint.port,
                                             context=client_context(str(ca)), timeout=30)
    try:
        login = {"username": account.username, "password": account.password}
        connection.request("POST", "/api/auth/login", body=json.dumps(login),
                           headers={"Content-Type": "application/json"})
        token = json.loads(connection.getresponse().read())["access_token"]
        connection.request("GET", f"/api/media/{library.items['video'].id}/download",
                           headers={"Authorization": f"Bearer {token}"})
        wait_for(lambda: started, timeout=30)
        time.sleep(0.5)  # ffmpeg has the whole clip and waits for more
        assert started[0].poll() is None
    finally:
        connection.close()
    try:
        wait_for(lambda: started[0].poll() is not None, timeout=15)
    finally:
        released.set()
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == "remux-feeder"], timeout=15)


def test_a_video_still_converting_is_refused_with_a_clear_reason(services, make_app_client, make_user, media,
                                                                 imports):
    from tests.test_hardening_queue import queue_one
    from tests.test_playable_early import list_as_planned

    media.copy_into(media.video(seconds=2), imports, "soon.mp4")
    job_id = queue_one(services, imports)
    job = services.queue.claim(owner="remote:test")
    list_as_planned(services, job_id, job.lease.token, "a" * 32)
    account = make_user()
    client = make_app_client()
    assert client.login(account.username, account.password).status == 200
    refused = client.request("GET", f"/api/media/{'a' * 32}/download")
    assert refused.status == 400 and refused.code == "VALIDATION_001"
    assert "still converting" in refused.json()["error"]["message"]

"""The worker job routes in this process (no TLS, no worker process): what they accept and refuse.

The whole journey, with real worker processes over HTTPS, is in test_remote_workers.py.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MediaFactory
from tests.support import AppClient, InProcessApp
from vaultserver.api import create_app
from vaultserver.api.worker_jobs import LEASE_HEADER
from vaultserver.pipeline.diskspace import DiskRoom
from vaultserver.pipeline.outcomes import Outcomes
from vaultserver.pipeline.remote_jobs import RemoteJobs
from vaultserver.remote.worker import KNOWN_ENCODERS, detect_encoders
from vaultserver.services import Services

ENCODERS = {"encoders": ["libx264", "libwebp_anim"]}
PIN = "a" * 64


def worker_client(running: InProcessApp, services: Services, name: str) -> AppClient:
    made = services.workers.create(name, actor=None, server_url="https://127.0.0.1:1/", ca_pin=PIN)
    client = AppClient(running)
    client.token = made.token
    return client


@pytest.fixture
def remote_app(services: Services) -> Iterator[InProcessApp]:
    jobs = RemoteJobs(services, Outcomes(services), DiskRoom(services.paths.library))
    running = InProcessApp(create_app(services, jobs))
    yield running
    running.close()


@pytest.fixture
def queued_photo(services: Services, imports: Path, media: MediaFactory) -> Path:
    photo = media.copy_into(media.image("route.jpg"), imports)
    stat = photo.stat()
    assert services.queue.enqueue(photo, imports, stat.st_size, stat.st_mtime)
    return photo


def test_job_routes_answer_503_while_conversion_is_not_running(make_app_client, services: Services) -> None:
    client = make_app_client()
    client.token = services.workers.create("idle", actor=None, server_url="https://127.0.0.1:1/",
                                           ca_pin=PIN).token
    reply = client.request("POST", "/api/workers/lease", ENCODERS)
    assert (reply.status, reply.code) == (503, "SYSTEM_001")


def test_job_routes_refuse_an_unknown_token_and_none(remote_app: InProcessApp, services: Services) -> None:
    client = AppClient(remote_app)
    assert client.request("POST", "/api/workers/lease", ENCODERS, token="").status == 401
    stranger = client.request("POST", "/api/workers/lease", ENCODERS, token="not-a-worker-token")
    assert (stranger.status, stranger.code) == (401, "AUTH_001")


def test_a_worker_without_work_hears_204_and_its_encoders_are_recorded(
        remote_app: InProcessApp, services: Services) -> None:
    client = worker_client(remote_app, services, "lazy")
    assert client.request("POST", "/api/workers/lease", ENCODERS).status == 204
    assert services.workers.list()[0].encoders == ENCODERS["encoders"]


def test_an_upload_larger_than_the_app_body_limit_is_streamed_to_the_job_folder(
        remote_app: InProcessApp, services: Services, queued_photo: Path) -> None:
    client = worker_client(remote_app, services, "uploader")
    granted = client.request("POST", "/api/workers/lease", ENCODERS).json()
    jobs, lease = f"/api/workers/jobs/{granted['job_id']}", {LEASE_HEADER: granted["token"]}
    assert client.request("GET", granted["source"], headers=lease).body == queued_photo.read_bytes()
    ranged = client.request("GET", granted["source"], headers={**lease, "Range": "bytes=0-9"})
    assert (ranged.status, ranged.body) == (206, queued_photo.read_bytes()[:10])
    sha256 = hashlib.sha256(queued_photo.read_bytes()).hexdigest()
    answer = client.request("POST", f"{jobs}/hash", {"sha256": sha256}, headers=lease).json()
    assert answer["duplicate"] is False and answer["assignment"]["sha256"] == sha256

    body = os.urandom(300 * 1024)  # over the app's 64 KiB MAX_CONTENT_LENGTH
    reply = client.send("PUT", f"{jobs}/files/image.vlt",
                        body, {"Authorization": f"Bearer {client.token}", **lease})
    assert reply.status == 204, reply.body
    stored = list(services.paths.staging.rglob("image.vlt"))
    assert [p.read_bytes() == body for p in stored] == [True]
    assert not [p for p in services.paths.staging.rglob("*.part")]


def test_uploads_outside_the_job_or_over_its_size_are_refused(
        remote_app: InProcessApp, services: Services, queued_photo: Path) -> None:
    client = worker_client(remote_app, services, "sloppy")
    granted = client.request("POST", "/api/workers/lease", ENCODERS).json()
    jobs, lease = f"/api/workers/jobs/{granted['job_id']}", {LEASE_HEADER: granted["token"]}
    sha256 = hashlib.sha256(queued_photo.read_bytes()).hexdigest()
    client.request("POST", f"{jobs}/hash", {"sha256": sha256}, headers=lease)
    auth = {"Authorization": f"Bearer {client.token}", **lease}

    for name in ("../escape.vlt", "hls/%2e%2e/x", "notes.txt"):
        assert client.send("PUT", f"{jobs}/files/{name}", b"x", auth).status in (400, 404), name
    huge = {**auth, "Content-Length": str(1 << 40)}
    reply = client.send("PUT", f"{jobs}/files/image.vlt", b"x", huge)
    assert reply.status == 413
    no_lease = client.send("PUT", f"{jobs}/files/image.vlt", b"x", {"Authorization": auth["Authorization"]})
    assert no_lease.status == 400
    stale = client.send("PUT", f"{jobs}/files/image.vlt", b"x", {**auth, LEASE_HEADER: "stale" * 10})
    assert (stale.status, stale.code) == (409, "MEDIA_003")
    assert not [p for p in services.paths.staging.rglob("*") if p.is_file()]


def test_a_worker_reports_the_encoders_vault_needs_from_its_ffmpeg(ffmpeg_bin: str) -> None:
    found = detect_encoders(ffmpeg_bin)
    assert set(RemoteJobs.REQUIRED_ENCODERS) <= set(found)
    assert set(found) <= set(KNOWN_ENCODERS)

"""A video plays while it converts: it is listed at once (status "converting", with progress), its master
playlist comes as soon as every rung has a first segment, its variant playlists grow (EVENT, from the start)
and its segments are AES-128 from the first byte with the key served like any other; the finished item is
the same complete VOD as ever. A conversion that dies leaves no half item behind."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import PurePosixPath

import m3u8
import pytest

from tests.conftest import OWNER, OWNER_PASSWORD, VIEWER, VIEWER_PASSWORD, wait_for
from tests.support import play_hls
from tests.test_hardening_queue import queue_one
from vaultserver import hls
from vaultserver.errors import ValidationError
from vaultserver.pipeline import Pipeline


def resolve(base: str, uri: str) -> str:
    """A playlist URI relative to the playlist's own path, as a player resolves it."""
    parts: list[str] = []
    for part in (str(PurePosixPath(base).parent) + "/" + uri).split("/"):
        if part == "..":
            parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


class HlsClient:
    """An HLS client of our own (not Vault's player): playlists over HTTPS, the key from its URI, segments
    decrypted here."""

    def __init__(self, api) -> None:
        self.api = api

    def get(self, path: str) -> bytes:
        reply = self.api.request("GET", path)
        assert reply.status == 200, (path, reply.status, reply.body[:200])
        return reply.body

    def first_seconds(self, media_id: str, seconds: float, rung_index: int = 0) -> tuple[bytes, str]:
        """The decrypted transport stream of the first `seconds` of one rung, and that rung's playlist."""
        master_path = f"/api/media/stream/{media_id}"
        master = m3u8.loads(self.get(master_path).decode())
        variant_path = resolve(master_path, master.playlists[rung_index].uri)
        text = self.get(variant_path).decode()
        playlist = m3u8.loads(text)
        stream, covered = b"", 0.0
        for segment in playlist.segments:
            key = self.get(resolve(variant_path, segment.key.uri))
            data = self.get(resolve(variant_path, segment.uri))
            stream += hls.decrypt_segment(key, bytes.fromhex(segment.key.iv[2:]), data)
            covered += segment.duration
            if covered >= seconds:
                break
        assert covered >= seconds, f"only {covered} s listed so far"
        return stream, text


def decoded_seconds(ffmpeg: str, stream: bytes, where) -> float:
    path = where / "first.ts"
    path.write_bytes(stream)
    result = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-1000:]
    h, m, s = result.stderr.rsplit("time=", 1)[1].split()[0].split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def converting(api) -> dict | None:
    items = api.request("GET", "/api/media/library").json()["items"]
    return next((item for item in items if item["status"] == "converting"), None)


def play_while_converting(server, make_client, media, imports, tmp_path, ffmpeg_bin, seconds, size):
    api = make_client()
    assert api.login(VIEWER, VIEWER_PASSWORD).status == 200
    media.copy_into(media.video(seconds=seconds, size=size, rate=30), imports, "long.mp4")
    item = wait_for(lambda: converting(api), timeout=300)
    assert item["type"] == "video" and 0.0 <= item["progress"] < 1.0 and item["original_name"] == "long.mp4"
    assert api.request("GET", f"/api/media/thumbnail/{item['id']}").status == 404  # it comes with the commit

    client = HlsClient(api)
    wait_for(lambda: api.request("GET", f"/api/media/stream/{item['id']}").status == 200, timeout=300)
    stream, variant = wait_for(lambda: _try(lambda: client.first_seconds(item["id"], 10)), timeout=300,
                               interval=1.0)
    still = api.request("GET", f"/api/media/{item['id']}").json()
    assert still["status"] == "converting", "the ladder finished before the first 10 s were checked"
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in variant and "#EXT-X-ENDLIST" not in variant
    assert "#EXT-X-START:TIME-OFFSET=0" in variant
    assert decoded_seconds(ffmpeg_bin, stream, tmp_path) >= 9.5
    return api, item


def list_as_planned(services, job_id: str, token: str, media_id: str) -> None:
    """What the server does once a worker has planned a video's ladder and no segment exists yet."""
    keys = [services.keys.new_data_key("file"), services.keys.new_data_key("hls", with_iv=True)]
    rendition = {"name": "360p", "width": 640, "height": 360, "bandwidth": 928000, "codecs": "avc1.640028",
                 "segments": 0}
    services.converting.open(job_id=job_id, token=token, media_id=media_id, original_name="planned.mp4",
                             sha256=media_id[:2] * 32, size=10, keys=keys, duration=2.0,
                             source_format="mov/h264", renditions=[rendition])


def _try(step):
    try:
        return step()
    except AssertionError:
        return None


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a 3-minute 1080p ladder at background priority, then every rung decoded
def test_a_long_video_plays_its_first_ten_seconds_while_it_converts_then_is_the_same_complete_vod(
        server, make_client, media, imports, tmp_path, ffmpeg_bin, services):
    api, item = play_while_converting(server, make_client, media, imports, tmp_path, ffmpeg_bin, 180,
                                      "1920x1080")
    ready = wait_for(lambda: (found := api.request("GET", f"/api/media/{item['id']}").json())["status"]
                     == "ready" and found, timeout=1200, interval=2.0)
    assert ready["progress"] == 1.0 and ready["created_at"] == item["created_at"]
    variant = api.request("GET", f"/api/media/hls/{item['id']}/1080p/index.m3u8").body.decode()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in variant and "#EXT-X-ENDLIST" in variant
    for rendition in ready["renditions"]:
        decoded = play_hls(services, item["id"], tmp_path / rendition["name"], ffmpeg_bin, rendition["name"])
        assert decoded.seconds == pytest.approx(180, abs=0.5)
    assert list(services.paths.staging.iterdir()) == []


def test_a_video_that_is_not_playable_yet_says_so(server, make_client, services, media, imports):
    api = make_client()
    assert api.login(OWNER, OWNER_PASSWORD).status == 200
    server.pause()  # nothing converts: list one by hand as a worker that has only planned would have
    media.copy_into(media.video(seconds=2), imports, "soon.mp4")
    job_id = queue_one(services, imports)
    job = services.queue.claim(owner="remote:test")
    list_as_planned(services, job_id, job.lease.token, "a" * 32)
    reply = api.request("GET", f"/api/media/stream/{'a' * 32}")
    assert (reply.status, reply.code) == (404, "MEDIA_001") and reply.json()["error"]["details"]["converting"]
    with pytest.raises(ValidationError):  # deleting waits until it is ready
        services.library.delete("a" * 32)
    services.queue.put_back(job_id, token=job.lease.token)
    assert services.converting.sweep() == 1
    assert api.request("GET", f"/api/media/{'a' * 32}").status == 404


@pytest.mark.slow
def test_a_worker_killed_mid_conversion_leaves_no_half_item_and_the_video_is_converted_again(
        media, imports, services, tmp_path, ffmpeg_bin):
    media.copy_into(media.video(seconds=40, size="640x360"), imports, "killed.mp4")
    job_id = queue_one(services, imports)
    pipeline = Pipeline(services, local_workers=1)
    pipeline.workers.start()
    try:
        listed = wait_for(lambda: [i for i in services.library.all_items() if i.status == "converting"],
                          timeout=120)
        wait_for(lambda: any(services.converting.folder(listed[0].id).rglob("seg_*.ts")), timeout=120)
        os.kill(pipeline.workers.worker_pids()[0], signal.SIGKILL)
        wait_for(lambda: services.queue.get(job_id).status == "done", timeout=300)
    finally:
        pipeline.workers.stop()
    (item,) = services.library.all_items()
    assert item.id != listed[0].id and item.status == "ready"
    assert play_hls(services, item.id, tmp_path / "play", ffmpeg_bin).seconds == pytest.approx(40, abs=0.5)
    assert list(services.paths.staging.iterdir()) == []


def test_a_restart_removes_a_video_that_was_converting_and_converts_it_again(media, imports, services):
    media.copy_into(media.video(seconds=2), imports, "crash.mp4")
    job_id = queue_one(services, imports)
    job = services.queue.claim()  # this runtime's own worker, then the Mac loses power
    list_as_planned(services, job_id, job.lease.token, "b" * 32)
    services.converting.folder("b" * 32).mkdir(parents=True)
    Pipeline(services).recover()
    assert services.library.all_items() == [] and services.queue.get(job_id).status == "queued"
    assert not services.converting.folder("b" * 32).exists()

"""Worker machines, end to end with real processes on loopback: `vaultserver serve --local-workers 0` and
`vaultserver worker --join` processes, each in its own scratch folder, as a second machine would run them.

One Vault serves the whole module (its lease is short, so a dead worker's job comes back in seconds); each
test makes its own worker tokens and workers and drops its own files, and checks only those.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from tests.conftest import MediaFactory, make_paths, wait_for
from tests.support import plaintext_findings, play_hls
from vaultserver.config import AppPaths
from vaultserver.https_client import HttpsClient, Reply
from vaultserver.join_string import JoinString
from vaultserver.services import Services, open_services
from vaultserver.services.jobs import JobView

pytestmark = pytest.mark.slow

LEASE_SECONDS = 4.0
VAULT = [sys.executable, "-m", "vaultserver"]
_SERVING = re.compile(r"https://localhost:(\d+)/")


@dataclass
class RunningVault:
    paths: AppPaths
    port: int
    services: Services
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*VAULT, "--data-dir", str(self.paths.root), *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done

    def join_string(self, name: str) -> JoinString:
        """A new worker token's join string, its URL pointed at loopback (it names the LAN address)."""
        made = JoinString.decode(self.cli("worker-token", "create", name).stdout.splitlines()[-1])
        return replace(made, url=f"https://127.0.0.1:{self.port}/")

    def worker(self, join: JoinString, scratch: Path) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{scratch.name}.log", "ab")  # noqa: SIM115 - the child holds it
        proc = subprocess.Popen([*VAULT, "worker", "--join", join.encode(), "--scratch", str(scratch)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.workers.append(proc)
        return proc

    def worker_log(self, scratch: Path) -> str:
        return (self.logs / f"{scratch.name}.log").read_text(errors="replace")

    def drop(self, source: Path, name: str) -> Path:
        imports = self.services.settings.current.import_path(self.paths)
        imports.mkdir(parents=True, exist_ok=True)
        dest = imports / name
        dest.write_bytes(source.read_bytes())
        return dest

    def job_of(self, name: str) -> JobView | None:
        return next((j for j in self.services.queue.snapshot(200) if j.original_name == name), None)

    def finished(self, name: str, timeout: float = 90) -> JobView:
        def done() -> JobView | None:
            job = self.job_of(name)
            return job if job and job.status in ("done", "duplicate", "failed") else None
        return wait_for(done, timeout=timeout, interval=0.2)


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def converting_in(scratch: Path) -> Path | None:
    """The job folder once the conversion has begun (its encrypted output folder exists)."""
    return next((d for d in scratch.glob("job-*") if (d / "stage").is_dir()), None)


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningVault]:
    root = tmp_path_factory.mktemp("remote")
    paths = make_paths(root)
    logs = root / "logs"
    logs.mkdir()
    env = {**os.environ, "VAULT_LEASE_SECONDS": str(LEASE_SECONDS)}
    with open(logs / "serve.log", "ab") as err:
        server = subprocess.Popen([*VAULT, "--data-dir", str(paths.root), "serve", "--host", "127.0.0.1",
                                   "--port", "0", "--local-workers", "0"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    assert server.stdout is not None
    port = 0
    for line in server.stdout:
        if found := _SERVING.search(line):
            port = int(found[1])
            break
    assert port, (logs / "serve.log").read_text()[-3000:]
    services = open_services(paths)
    running = RunningVault(paths, port, services, logs)
    try:
        yield running
    finally:
        for proc in running.workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        services.close()


def test_a_wrong_certificate_pin_is_refused_with_a_clear_message(vault: RunningVault, tmp_path: Path) -> None:
    join = vault.join_string("pinless")
    wrong = replace(join, ca_pin="0" * 64)
    done = subprocess.run([*VAULT, "worker", "--join", wrong.encode(), "--scratch", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "The server's certificate is not the one this join string names" in done.stderr


def test_a_video_whose_worker_is_killed_is_finished_by_another_once_the_lease_lapses(
        vault: RunningVault, media: MediaFactory, tmp_path: Path, ffmpeg_bin: str) -> None:
    first_scratch, second_scratch = tmp_path / "first", tmp_path / "second"
    first = vault.worker(vault.join_string("first"), first_scratch)
    vault.drop(media.video(seconds=8, size="480x270"), "killed.mp4")
    job_folder = wait_for(lambda: converting_in(first_scratch), timeout=60, interval=0.05)
    assert (first_scratch.stat().st_mode & 0o777) == 0o700 and (job_folder.stat().st_mode & 0o777) == 0o700
    first.kill()  # kill -9, mid-video
    first.wait()
    killed_at = time.monotonic()
    second = vault.worker(vault.join_string("second"), second_scratch)

    job = vault.finished("killed.mp4")
    assert job.status == "done" and job.attempts == 2
    assert time.monotonic() - killed_at >= LEASE_SECONDS * 0.5  # it waited for the lease, not less
    items = [i for i in vault.services.library.all_items() if i.original_name == "killed.mp4"]
    assert [i.id for i in items] == [job.media_id]
    decoded = play_hls(vault.services, items[0].id, tmp_path / "play", ffmpeg_bin)
    assert decoded.seconds > 7 and decoded.has_audio
    wait_for(lambda: "committed as item" in vault.worker_log(second_scratch), timeout=10)  # after the 201

    # The killed worker could not wipe its job folder; started again, it does, before any new job.
    assert plaintext_findings(first_scratch)
    restarted = vault.worker(vault.join_string("first-again"), first_scratch)
    wait_for(lambda: not any(first_scratch.glob("job-*")), timeout=30)
    assert stop_worker(restarted) == 0 and stop_worker(second) == 0
    assert plaintext_findings(first_scratch) == [] and plaintext_findings(second_scratch) == []
    assert not any(second_scratch.iterdir())


def test_a_result_committed_with_a_stale_lease_token_is_refused(
        vault: RunningVault, media: MediaFactory, tmp_path: Path) -> None:
    stalled = vault.join_string("stalled")
    client = HttpsClient(vault.port, vault.paths.private / "tls" / "ca.pem", check_hostname=False)
    client.token = stalled.token
    vault.drop(media.image("stale.jpg"), "stale.jpg")
    def lease_one() -> Reply | None:  # 204 until the watcher has queued the photo
        reply = client.request("POST", "/api/workers/lease", {"encoders": ["libx264", "libwebp_anim"]})
        return reply if reply.status != 204 else None

    lease = wait_for(lease_one, timeout=30, interval=0.2)
    assert lease.status == 200, lease.body
    granted = lease.json()
    assert granted["original_name"] == "stale.jpg"
    jobs, stale = f"/api/workers/jobs/{granted['job_id']}", {"X-Vault-Lease": granted["token"]}
    original = client.request("GET", granted["source"], headers=stale)
    assert original.body == media.image("stale.jpg").read_bytes()

    # This worker goes silent; a real one takes the job over once the lease lapses and commits it.
    scratch = tmp_path / "taker"
    taker = vault.worker(vault.join_string("taker"), scratch)
    job = vault.finished("stale.jpg")
    assert job.status == "done" and stop_worker(taker) == 0

    result = {"result": {"media_id": job.media_id}}
    for method, path, body in (("POST", f"{jobs}/commit", result), ("PUT", f"{jobs}/files/image.vlt", None),
                               ("POST", f"{jobs}/heartbeat", {"stage": "x", "progress": 0.5})):
        reply = client.request(method, path, body, headers=stale)
        assert (reply.status, reply.code) == (409, "MEDIA_003"), (path, reply.body)
    items = vault.services.library.all_items()
    assert [i.id for i in items if i.original_name == "stale.jpg"] == [job.media_id]
    assert plaintext_findings(scratch) == []


def test_a_revoked_worker_is_refused_and_its_job_goes_to_another(
        vault: RunningVault, media: MediaFactory, tmp_path: Path) -> None:
    revoked_scratch, other_scratch = tmp_path / "revoked", tmp_path / "other"
    revoked = vault.worker(vault.join_string("revoked"), revoked_scratch)
    vault.drop(media.video(seconds=8, size="480x270", rate=24), "revoked.mp4")
    wait_for(lambda: converting_in(revoked_scratch), timeout=60, interval=0.05)
    vault.cli("worker-token", "revoke", "revoked")

    assert revoked.wait(30) == 1  # its next call is refused: it stops, and says why
    assert "revoked" in vault.worker_log(revoked_scratch)
    assert plaintext_findings(revoked_scratch) == [] and not any(revoked_scratch.glob("job-*"))
    other = vault.worker(vault.join_string("other"), other_scratch)
    job = vault.finished("revoked.mp4")
    assert job.status == "done" and job.attempts == 2
    wait_for(lambda: "committed as item" in vault.worker_log(other_scratch), timeout=10)  # after the 201
    assert stop_worker(other) == 0
    assert plaintext_findings(other_scratch) == []

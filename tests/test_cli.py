"""The command line other tools drive Vault through: exact commands, exit codes and JSON shapes.

The entry point itself, and whatever crosses processes (a second processor, a running Vault told about a
new certificate), run `python -m vaultserver.cli` for real; the other commands run its `main` in this
process, with the same arguments, standard input, output and exit code, and without a second of start-up each.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from PIL import Image

from vaultserver import __version__, cli


def vault(data_dir, *args, env_extra=None, check=True):
    """`vaultserver --data-dir DATA_DIR ARGS…` as its own process."""
    env = {**os.environ, **(env_extra or {})}
    result = subprocess.run([sys.executable, "-m", "vaultserver.cli", "--data-dir", str(data_dir), *args],
                            capture_output=True, text=True, timeout=600, env=env)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def command(capsys, monkeypatch) -> Callable[..., Ran]:
    """`vaultserver --data-dir DATA_DIR ARGS…` through `cli.main` in this process; `stdin` is what it reads.

    The log set-up is left out: it is once per process and would send every later test's log to this
    test's data folder (the subprocess tests run it).
    """
    monkeypatch.setattr(cli, "setup_logging", lambda paths, verbose: None)

    def run(data_dir, *args: str, stdin: str = "", env_extra: dict[str, str] | None = None,
            check: bool = True) -> Ran:
        for name, value in (env_extra or {}).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            returncode = cli.main(["--data-dir", str(data_dir), *args])
        except SystemExit as exit_:  # argparse's usage errors
            returncode = exit_.code if isinstance(exit_.code, int) else 1
        out, err = capsys.readouterr()
        if check:
            assert returncode == 0, err
        return Ran(returncode, out, err)
    return run


def test_version():
    result = subprocess.run([sys.executable, "-m", "vaultserver.cli", "--version"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"vaultserver {__version__}"


@pytest.mark.slow
def test_process_list_and_export_round_trip(media, paths, tmp_path, ffmpeg_bin):
    imports = paths.default_imports
    media.copy_into(media.image("cli.jpg"), imports)
    media.copy_into(media.video(seconds=2), imports, "clip.mp4")
    (imports / "broken.mp4").write_bytes(b"nope")
    result = vault(paths.root, "process", "--once")
    assert "3 file(s): 2 added, 0 duplicate(s) skipped, 1 failed" in result.stdout
    listing = json.loads(vault(paths.root, "library", "list", "--json").stdout)
    assert {i["type"] for i in listing} == {"image", "video"}
    required = {"id", "type", "original_name", "sha256", "width", "height", "duration", "size", "created_at",
                "status"}
    assert all(required <= set(i) for i in listing)
    by_type = {i["type"]: i for i in listing}
    assert by_type["video"]["duration"] == pytest.approx(2, abs=0.1) and by_type["image"]["duration"] is None

    vault(paths.root, "library", "export", by_type["image"]["id"], str(tmp_path / "out.webp"))
    assert Image.open(tmp_path / "out.webp").size == (640, 480)
    vault(paths.root, "library", "export", by_type["video"]["id"], str(tmp_path / "out.mp4"))
    probe = subprocess.run([ffmpeg_bin, "-hide_banner", "-i", str(tmp_path / "out.mp4"), "-f", "null", "-"],
                           capture_output=True, text=True)
    assert probe.returncode == 0 and "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr
    assert "Duration: 00:00:02" in probe.stderr


def test_export_of_an_unknown_id_is_a_clear_error(paths, command):
    result = command(paths.root, "library", "export", "0123abcd", "/tmp/x.webp", check=False)
    assert result.returncode == 1 and "MEDIA_001" in result.stderr and "No such media item" in result.stderr
    result = command(paths.root, "library", "export", "../../etc/passwd", "/tmp/x.webp", check=False)
    assert result.returncode == 1 and "MEDIA_001" in result.stderr


def test_keys_status_and_rotate(paths, command):
    status = json.loads(command(paths.root, "keys", "status", "--json").stdout)
    assert status["backend"] == "file" and status["rotation_overdue"] is False
    assert "rotation_due_at" in status
    rotated = command(paths.root, "keys", "rotate").stdout
    assert "New master key" in rotated
    assert json.loads(command(paths.root, "keys", "status", "--json").stdout)["master_key_id"] != \
        status["master_key_id"]


def test_doctor_passes_on_a_healthy_install(paths, command):
    result = command(paths.root, "doctor")
    assert "All checks passed." in result.stdout and "[ok] ffmpeg" in result.stdout


@pytest.mark.parametrize("ffmpeg", ["/nonexistent/ffmpeg", "/bin/false"])
def test_doctor_explains_a_missing_or_broken_ffmpeg(paths, ffmpeg, command):
    result = command(paths.root, "doctor", env_extra={"VAULT_FFMPEG": ffmpeg}, check=False)
    assert result.returncode == 1 and "[FAIL] ffmpeg" in result.stdout and "Traceback" not in result.stderr


def test_process_refuses_to_start_with_a_broken_ffmpeg_and_touches_nothing(paths, media, command):
    photo = media.copy_into(media.image("cli.jpg"), paths.default_imports)
    result = command(paths.root, "process", "--once", env_extra={"VAULT_FFMPEG": "/nonexistent/ffmpeg"},
                     check=False)
    assert result.returncode == 1 and "VAULT_FFMPEG" in result.stderr
    assert photo.exists() and list(paths.failed.iterdir()) == []


def test_a_second_processor_on_the_same_data_dir_is_refused(paths):
    from vaultserver.runtime import VaultRuntime

    runtime = VaultRuntime(paths)
    runtime._acquire()
    try:
        result = vault(paths.root, "process", "--once", check=False)
        assert result.returncode == 1 and "already running" in result.stderr
    finally:
        runtime._release()
        runtime.services.close()


def test_user_and_session_commands(paths, command):
    def with_password(*args, password="Sup3r!pass"):
        return command(paths.root, *args, stdin=password + "\n", check=False)

    created = with_password("user", "add", "owner", "--admin", "--password-stdin")
    assert "Created admin owner" in created.stdout
    weak = with_password("user", "add", "kid", "--password-stdin", password="weak")
    assert weak.returncode == 1 and "VALIDATION_001" in weak.stderr and "a digit" in weak.stderr
    from vaultserver.services import open_services

    services = open_services(paths)
    try:
        user = services.users.by_name("owner")
        session = services.sessions.create(user, device_name="phone").session_id
    finally:
        services.close()
    assert "phone" in command(paths.root, "sessions", "list").stdout
    assert "Signed out session" in command(paths.root, "sessions", "revoke", session).stdout
    assert "phone" not in command(paths.root, "sessions", "list").stdout
    changed = with_password("user", "passwd", "owner", "--password-stdin", password="An0ther!pass")
    assert changed.returncode == 0, changed.stderr
    refused = command(paths.root, "user", "disable", "owner", check=False)  # the only administrator
    assert refused.returncode == 1 and "at least one active administrator" in refused.stderr
    assert with_password("user", "add", "spare", "--admin", "--password-stdin").returncode == 0
    assert "Disabled owner" in command(paths.root, "user", "disable", "owner").stdout
    assert "disabled" in command(paths.root, "user", "list").stdout


def served_fingerprint(port: int) -> str:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest().hex(":")


def test_cert_regenerate_against_a_running_vault_is_served_without_a_restart(server, paths):
    port = server.endpoint.port
    before = served_fingerprint(port)
    result = vault(paths.root, "cert", "regenerate")
    assert "no restart needed" in result.stdout and "Restart Vault" not in result.stdout
    fingerprint = result.stdout.split("SHA-256:")[1].split()[0]
    assert fingerprint != before
    deadline = time.monotonic() + 20

    def serving_the_new_one() -> bool:
        try:
            return served_fingerprint(port) == fingerprint
        except ConnectionRefusedError:  # the listener is between the old certificate and the new one
            return False
    while not serving_the_new_one():
        assert time.monotonic() < deadline, "the running Vault kept serving the old certificate"
        time.sleep(0.2)
    assert server.endpoint.port == port and server.health().server


def test_cert_show_and_regenerate_without_a_running_vault(paths, command):
    shown = command(paths.root, "cert", "show").stdout
    assert "SHA-256:" in shown and "ca.pem" in shown
    regenerated = command(paths.root, "cert", "regenerate").stdout
    assert regenerated.split("SHA-256:")[1].split()[0] != shown.split("SHA-256:")[1].split()[0]
    assert "from its next start" in regenerated


def test_launching_the_app_is_the_vault_command_not_a_vaultserver_one(paths, command):
    result = command(paths.root, "launch", check=False)
    assert result.returncode == 2 and "invalid choice: 'launch'" in result.stderr


def test_worker_token_create_prints_the_join_string_last_then_lists_and_revokes(paths, command):
    from vaultserver.join_string import JoinString, ca_pin

    created = command(paths.root, "worker-token", "create", "studio-mac")
    join = JoinString.decode(created.stdout.strip().splitlines()[-1])
    assert join.ca_pin == ca_pin((paths.private / "tls" / "ca.pem").read_bytes())
    assert "vaultserver worker --join" in created.stdout
    listed = command(paths.root, "worker-token", "list").stdout
    assert "studio-mac" in listed and "active" in listed and join.token not in listed
    taken = command(paths.root, "worker-token", "create", "Studio-Mac", check=False)
    assert taken.returncode == 1 and "already a worker named studio-mac" in taken.stderr
    assert "Revoked worker studio-mac" in command(paths.root, "worker-token", "revoke", "studio-mac").stdout
    assert "revoked" in command(paths.root, "worker-token", "list").stdout
    again = command(paths.root, "worker-token", "revoke", "studio-mac", check=False)
    assert again.returncode == 1 and "No worker named studio-mac" in again.stderr
    bad = command(paths.root, "worker-token", "create", "no spaces please", check=False)
    assert bad.returncode == 1 and "VALIDATION_001" in bad.stderr

"""The data folder under attack or bad luck: a damaged database is explained, never a traceback; the folder
and what Vault writes in it are the owner's alone; the local CA can vouch only for home names and addresses,
and its key is sealed by the master key."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vaultserver.config import AppPaths
from vaultserver.services import open_services

RESTORE_ADVICE = "restore vault.db from a backup"


def vault(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vaultserver.cli", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=timeout, env=os.environ)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))[2:]


# --- a damaged library database ----------------------------------------------------------------------------


def damage(paths: AppPaths, how: str) -> bytes:
    """Ruin vault.db the way a bad disk or a half-finished copy does; returns the bytes left on disk."""
    if how == "random bytes":
        paths.database.write_bytes(os.urandom(64 * 1024))
    else:  # a real library database cut short
        services = open_services(paths)
        services.users.create("owner", "Own3r!pass", "admin")
        services.close()
        whole = paths.database.read_bytes()
        paths.database.write_bytes(whole[: len(whole) // 2])
    return paths.database.read_bytes()


@pytest.mark.parametrize("how", ["random bytes", "truncated"])
def test_serve_on_a_damaged_database_says_what_is_wrong_and_what_to_do(paths, how):
    left = damage(paths, how)
    result = vault(paths.root, "serve", "--host", "127.0.0.1", "--port", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"error [SYSTEM_002]: The library database ({paths.database}) is damaged" in result.stderr
    assert ("file is not a database" if how == "random bytes" else "malformed") in result.stderr
    assert "Your media files are safe" in result.stderr and RESTORE_ADVICE in result.stderr
    assert paths.database.read_bytes() == left  # nothing was "repaired" over what a backup could save


@pytest.mark.parametrize("how", ["random bytes", "truncated"])
def test_doctor_reports_a_damaged_database_as_one_failed_check_and_runs_the_others(paths, how):
    damage(paths, how)
    result = vault(paths.root, "doctor")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = {line.split("]")[1].split(":")[0].strip(): line for line in result.stdout.splitlines()
             if line.startswith("[")}
    assert lines["database"].startswith("[FAIL]") and "is damaged" in lines["database"]
    assert RESTORE_ADVICE in lines["database"]
    assert all(lines[name].startswith("[ok]") for name in ("ffmpeg", "data dir", "key store")), lines
    assert "1 check(s) failed." in result.stdout


def test_opening_a_damaged_database_raises_the_error_the_app_shows(paths, qtbot, monkeypatch):
    from gui import app as gui_app
    from vaultserver.db import DatabaseDamaged

    damage(paths, "random bytes")
    with pytest.raises(DatabaseDamaged) as raised:
        open_services(paths)
    assert raised.value.code == "SYSTEM_002" and RESTORE_ADVICE in raised.value.message
    shown: list[str] = []
    monkeypatch.setattr(gui_app.QMessageBox, "critical", lambda _parent, _title, text: shown.append(text))
    monkeypatch.setattr(gui_app, "setup_logging", lambda *_args: None)  # keep this process's logging as is
    assert gui_app.run_app(str(paths.root)) == 1
    assert shown == [raised.value.message]


# --- an owner-only data folder -----------------------------------------------------------------------------


def test_a_real_start_leaves_the_data_folder_and_its_files_owner_only_whatever_the_umask(tmp_path):
    previous = os.umask(0o022)  # the usual umask: files 0644, folders 0755, unless Vault says otherwise
    try:
        paths = AppPaths.scratch(tmp_path)
        serve = subprocess.Popen(
            [sys.executable, "-m", "vaultserver.cli", "--data-dir", str(paths.root), "serve",
             "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    finally:
        os.umask(previous)
    try:
        assert serve.stdout is not None
        for line in serve.stdout:
            if "Press Ctrl-C" in line:
                break
        else:
            pytest.fail(f"serve did not start: {serve.stderr.read() if serve.stderr else ''}")
        assert mode(paths.root) == "700"
        created = [paths.database, paths.settings_file, paths.logs / "vault.log"]
        created += [p for p in paths.root.glob("vault.db-*")]  # SQLite's -wal and -shm follow the database
        assert {str(p.relative_to(paths.root)): mode(p) for p in created} == {
            str(p.relative_to(paths.root)): "600" for p in created}
        assert all(mode(folder) == "700" for folder in (paths.failed, paths.logs, paths.private))
    finally:
        serve.terminate()
        serve.wait(30)


def test_a_data_folder_opened_to_others_is_closed_again_at_start(paths):
    paths.root.chmod(0o755)
    paths.ensure()
    assert mode(paths.root) == "700"


def test_doctor_says_how_to_close_a_data_folder_open_to_other_users(paths):
    paths.root.chmod(0o755)
    result = vault(paths.root, "doctor")
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "data dir" in line)
    assert line.startswith("[FAIL]") and "mode 755" in line and f"chmod 700 '{paths.root}'" in line

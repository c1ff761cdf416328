"""Deleting an item takes every row that points at it along: a watched video can be deleted and its keys
are shredded, whether the position was saved by a player or the database was upgraded with positions in it."""

from __future__ import annotations

import subprocess
import sys

from alembic import command
from sqlalchemy import create_engine, text

from tests.conftest import VIEWER, VIEWER_PASSWORD
from vaultserver.db import Database
from vaultserver.db.engine import alembic_config

USER_ROW = ("INSERT INTO users (id, username, password_hash, role, is_active, failed_attempts, created_at,"
            " updated_at) VALUES ('u1', 'viewer', 'x', 'viewer', 1, 0, '2026-01-01', '2026-01-01')")
MEDIA_ROW = ("INSERT INTO media_files (id, media_type, original_name, sha256, size, stored_size, mime_type,"
             " source_format, width, height, animated, status, renditions, has_original, created_at,"
             " updated_at) VALUES (:id, 'video', 'v.mp4', :id, 1, 1, '', '', 1, 1, 0, 'ready', '[]', 0,"
             " '2026-01-01', '2026-01-01')")
KEY_ROW = ("INSERT INTO encryption_keys (id, media_id, purpose, wrapped_key, master_key_id, created_at)"
           " VALUES ('k' || :id, :id, 'file', x'00', 'mk', '2026-01-01')")
POSITION_ROW = ("INSERT INTO playback_positions (user_id, media_id, position, updated_at)"
                " VALUES ('u1', :id, 1.0, '2026-01-01')")


def rows_pointing_at(db: Database, media_id: str) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT count(*) FROM {table} WHERE media_id = :id"),
                                    {"id": media_id}).scalar_one()
                for table in ("encryption_keys", "playback_positions")}


def test_a_watched_video_is_deleted_from_the_command_line_and_its_keys_are_shredded(
        media, imports, run_pipeline, services, paths, request):
    media.copy_into(media.image("kept.jpg"), imports)
    media.copy_into(media.video(seconds=2), imports, "watched.mp4")
    run_pipeline()
    items = {item.type: item for item in services.library.all_items()}
    video = items["video"]
    server = request.getfixturevalue("server")
    viewer = request.getfixturevalue("make_client")()
    assert viewer.login(VIEWER, VIEWER_PASSWORD).status == 200
    assert viewer.request("PUT", f"/api/media/{video.id}/position", {"position": 1.5}).status == 200
    assert rows_pointing_at(services.db, video.id) == {"encryption_keys": 2, "playback_positions": 1}
    server.stop()  # the command line takes the data folder's lock, as the owner would after quitting

    command_line = [sys.executable, "-m", "vaultserver.cli", "--data-dir", str(paths.root), "library"]
    result = subprocess.run([*command_line, "delete", video.id], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert rows_pointing_at(services.db, video.id) == {"encryption_keys": 0, "playback_positions": 0}
    assert not (paths.library / video.id).exists()
    assert [item.id for item in services.library.all_items()] == [items["image"].id]


def test_a_position_saved_before_the_upgrade_no_longer_blocks_deleting_its_video_or_its_viewer(tmp_path):
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    command.upgrade(alembic_config(url), "0004")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(USER_ROW))
        for media_id in ("m1", "m2"):
            for row in (MEDIA_ROW, KEY_ROW, POSITION_ROW):
                conn.execute(text(row), {"id": media_id})
    engine.dispose()

    db = Database(url)
    db.migrate()
    with db.engine.begin() as conn:  # foreign keys are on in Vault's connections
        conn.execute(text("DELETE FROM media_files WHERE id = 'm1'"))
        conn.execute(text("DELETE FROM users WHERE id = 'u1'"))
    assert rows_pointing_at(db, "m1") == {"encryption_keys": 0, "playback_positions": 0}
    assert rows_pointing_at(db, "m2") == {"encryption_keys": 1, "playback_positions": 0}
    db.dispose()
